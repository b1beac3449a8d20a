package channels

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/fake"
)

// harness adapts one channel and its fake to the conformance suite.
type harness struct {
	// send sends n with the channel built around client (nil: default client).
	send func(ctx context.Context, client *http.Client, n herald.Notification) error
	// n is a valid notification for the fake; invalid one whose target
	// CheckTarget refuses.
	n, invalid herald.Notification
	// respond makes the fake answer every request with r (zero r: default).
	respond func(r fake.Response)
	// count is the number of requests the fake received.
	count func() int
	// close stops the fake, so that connections are refused.
	close func()
	// secrets must never appear in an error.
	secrets []string
	// rateLimit answers 429 asking to wait wantAfter.
	rateLimit fake.Response
	wantAfter time.Duration
	// permanent and transient answers, by name.
	permanent, transient map[string]fake.Response
}

// testConformance is the suite every channel passes.
func testConformance(t *testing.T, newHarness func(t *testing.T) *harness) {
	ctx := context.Background()

	t.Run("delivered", func(t *testing.T) {
		h := newHarness(t)
		if err := h.send(ctx, nil, h.n); err != nil {
			t.Fatalf("Send: %v", err)
		}
		if got := h.count(); got != 1 {
			t.Fatalf("fake received %d requests, want 1", got)
		}
	})

	t.Run("invalid target is permanent and sends nothing", func(t *testing.T) {
		h := newHarness(t)
		err := h.send(ctx, nil, h.invalid)
		if !errors.Is(err, ErrInvalidTarget) || !errors.Is(err, herald.ErrPermanent) {
			t.Fatalf("err = %v, want ErrInvalidTarget and ErrPermanent", err)
		}
		if h.count() != 0 {
			t.Fatalf("fake received %d requests, want 0", h.count())
		}
		t.Logf("error: %v", err)
		assertNoSecrets(t, err, h.secrets...)
	})

	t.Run("429 asks to retry after the destination's wait", func(t *testing.T) {
		h := newHarness(t)
		h.respond(h.rateLimit)
		err := h.send(ctx, nil, h.n)
		var ra *herald.RetryAfterError
		if !errors.As(err, &ra) {
			t.Fatalf("err = %v (%T), want *herald.RetryAfterError", err, err)
		}
		if ra.After != h.wantAfter {
			t.Errorf("After = %v, want %v", ra.After, h.wantAfter)
		}
		if errors.Is(err, herald.ErrPermanent) {
			t.Error("a 429 must not be permanent")
		}
		if got := herald.StatusCode(err); got != http.StatusTooManyRequests {
			t.Errorf("StatusCode = %d, want 429", got)
		}
		t.Logf("error: %v", err)
		assertNoSecrets(t, err, h.secrets...)
	})

	for name := range newHarness(t).permanent {
		t.Run("permanent/"+name, func(t *testing.T) {
			h := newHarness(t)
			resp := h.permanent[name]
			h.respond(resp)
			err := h.send(ctx, nil, h.n)
			if !errors.Is(err, herald.ErrPermanent) {
				t.Fatalf("err = %v, want errors.Is(err, herald.ErrPermanent)", err)
			}
			var ra *herald.RetryAfterError
			if errors.As(err, &ra) {
				t.Errorf("permanent error is also a RetryAfterError: %v", err)
			}
			if got := herald.StatusCode(err); got != resp.Status {
				t.Errorf("StatusCode = %d, want %d", got, resp.Status)
			}
			t.Logf("error: %v", err)
			assertNoSecrets(t, err, h.secrets...)
		})
	}

	for name := range newHarness(t).transient {
		t.Run("transient/"+name, func(t *testing.T) {
			h := newHarness(t)
			resp := h.transient[name]
			h.respond(resp)
			err := h.send(ctx, nil, h.n)
			if err == nil {
				t.Fatal("Send succeeded on an error answer")
			}
			var ra *herald.RetryAfterError
			if errors.Is(err, herald.ErrPermanent) || errors.As(err, &ra) {
				t.Fatalf("err = %v, want a transient error (neither permanent nor RetryAfter)", err)
			}
			if got := herald.StatusCode(err); got != resp.Status {
				t.Errorf("StatusCode = %d, want %d", got, resp.Status)
			}
			t.Logf("error: %v", err)
			assertNoSecrets(t, err, h.secrets...)
		})
	}

	t.Run("hanging server and context deadline", func(t *testing.T) {
		h := newHarness(t)
		h.respond(fake.Response{Hang: true})
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		err := h.send(ctx, nil, h.n)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want errors.Is(err, context.DeadlineExceeded)", err)
		}
		var ra *herald.RetryAfterError
		if errors.Is(err, herald.ErrPermanent) || errors.As(err, &ra) {
			t.Fatalf("a timeout must be transient: %v", err)
		}
		t.Logf("error: %v", err)
		assertNoSecrets(t, err, h.secrets...)
	})

	t.Run("hanging server and client timeout", func(t *testing.T) {
		h := newHarness(t)
		h.respond(fake.Response{Hang: true})
		err := h.send(ctx, NewHTTPClient(200*time.Millisecond), h.n)
		if err == nil {
			t.Fatal("Send succeeded against a hanging server")
		}
		var te interface{ Timeout() bool }
		if !errors.As(err, &te) || !te.Timeout() {
			t.Errorf("err = %v, want a timeout", err)
		}
		if errors.Is(err, herald.ErrPermanent) {
			t.Fatalf("a timeout must be transient: %v", err)
		}
		t.Logf("error: %v", err)
		assertNoSecrets(t, err, h.secrets...)
	})

	t.Run("canceled context", func(t *testing.T) {
		h := newHarness(t)
		ctx, cancel := context.WithCancel(ctx)
		cancel()
		err := h.send(ctx, nil, h.n)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		t.Logf("error: %v", err)
		assertNoSecrets(t, err, h.secrets...)
	})

	t.Run("connection refused", func(t *testing.T) {
		h := newHarness(t)
		h.close()
		err := h.send(ctx, nil, h.n)
		if err == nil {
			t.Fatal("Send succeeded against a closed server")
		}
		if errors.Is(err, herald.ErrPermanent) {
			t.Fatalf("a refused connection must be transient: %v", err)
		}
		t.Logf("error: %v", err)
		assertNoSecrets(t, err, h.secrets...)
	})
}

func TestConformance(t *testing.T) {
	t.Run("discord", func(t *testing.T) {
		testConformance(t, func(t *testing.T) *harness {
			f := fake.NewDiscord(t)
			webhook := f.WebhookURL(testWebhookID, testWebhookToken)
			msg := streakyMessage("octocat", 5, "Commit today!", nil)
			return &harness{
				send: func(ctx context.Context, c *http.Client, n herald.Notification) error {
					return newTestDiscord(t, testDiscordConfig(), c).Send(ctx, n)
				},
				n:         discordNotification(webhook, msg),
				invalid:   discordNotification("https://discord.com.evil.example/api/webhooks/1/"+testWebhookToken, msg),
				respond:   func(r fake.Response) { f.Script(always(r)) },
				count:     f.Count,
				close:     f.Close,
				secrets:   []string{testWebhookToken, webhook, "/api/v10/webhooks/"},
				rateLimit: fake.Respond429(0.8),
				wantAfter: 800 * time.Millisecond,
				permanent: map[string]fake.Response{
					"404 unknown webhook":  fake.Respond404UnknownWebhook(),
					"401 unauthorized":     fake.RespondDiscordError(401, 0, "401: Unauthorized"),
					"403 bad token":        fake.RespondDiscordError(403, 50027, "Invalid Webhook Token"),
					"400 invalid form":     fake.RespondDiscordError(400, 50035, "Invalid Form Body"),
					"413 too large":        fake.RespondDiscordError(413, 40005, "Request entity too large"),
					"404 echoing the hook": fake.RespondDiscordError(404, 10015, "Unknown Webhook "+webhook+" token "+testWebhookToken),
				},
				transient: map[string]fake.Response{
					"500":              fake.RespondDiscordError(500, 0, "500: Internal Server Error"),
					"502 cloudflare":   {Status: 502, Body: "<html><body>502 Bad Gateway</body></html>"},
					"503":              {Status: 503, Body: "upstream connect error"},
					"408":              {Status: 408},
					"307 not followed": {Status: 307, Header: http.Header{"Location": {"http://127.0.0.1:1/elsewhere"}}},
					"405":              fake.RespondDiscordError(405, 0, "405: Method Not Allowed"),
				},
			}
		})
	})
	t.Run("telegram", func(t *testing.T) {
		testConformance(t, func(t *testing.T) *harness {
			f := fake.NewTelegram(t)
			msg := streakyMessage("octocat", 5, "Commit today!", nil)
			return &harness{
				send: func(ctx context.Context, c *http.Client, n herald.Notification) error {
					return newTestTelegram(t, f.URL(), c).Send(ctx, n)
				},
				n:         telegramNotification(testBotToken, testChatID, msg),
				invalid:   telegramNotification("not-a-token "+testBotToken, testChatID, msg),
				respond:   func(r fake.Response) { f.Script(alwaysTelegram(r)) },
				count:     f.Count,
				close:     f.Close,
				secrets:   []string{testBotToken, "TgTok_SeCrEt", testChatID, "9876543210"},
				rateLimit: fake.RespondTelegram429(3),
				wantAfter: 3 * time.Second,
				permanent: map[string]fake.Response{
					"403 blocked":           fake.RespondTelegramBlocked(),
					"403 kicked":            fake.RespondTelegramError(403, "Forbidden: bot was kicked from the group chat"),
					"400 chat not found":    fake.RespondTelegramChatNotFound(),
					"400 can't parse":       fake.RespondTelegramError(400, "Bad Request: can't parse entities: Unsupported start tag \"x\" at byte offset 0"),
					"401 unauthorized":      fake.RespondTelegramUnauthorized(),
					"404 not found":         fake.RespondTelegramError(404, "Not Found"),
					"400 echoing the chat":  fake.RespondTelegramError(400, "Bad Request: chat "+testChatID+" not found for bot"+testBotToken),
					"403 echoing the token": fake.RespondTelegramError(403, "Forbidden: "+testBotToken+" blocked in "+testChatID),
				},
				transient: map[string]fake.Response{
					"500":              fake.RespondTelegramError(500, "Internal Server Error"),
					"502 nginx":        {Status: 502, Body: "<html><center><h1>502 Bad Gateway</h1></center></html>"},
					"503":              {Status: 503},
					"409 conflict":     fake.RespondTelegramError(409, "Conflict: terminated by other getUpdates request"),
					"302 not followed": {Status: 302, Header: http.Header{"Location": {"http://127.0.0.1:1/elsewhere"}}},
					"200 without ok":   {Status: 200, Body: `{"ok":false,"description":"odd"}`},
				},
			}
		})
	})
}

// channel is the method set every channel offers (the consumer declares its
// own, smaller interfaces over it).
type channel interface {
	Send(ctx context.Context, n herald.Notification) error
	CheckTarget(t herald.Target) error
	Destination(t herald.Target) string
}

var (
	_ channel = (*Discord)(nil)
	_ channel = (*Telegram)(nil)
)
