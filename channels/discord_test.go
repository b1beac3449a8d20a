package channels

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/fake"
)

func TestParseWebhook(t *testing.T) {
	const tok = "SeCrEt_Tok-123"
	prod := newTestDiscord(t, DiscordConfig{}, nil)
	local := newTestDiscord(t, testDiscordConfig(), nil)

	tests := []struct {
		name       string
		d          *Discord
		raw        string
		wantID     string
		wantThread string
		wantErr    string // substring of the error; "" means success
	}{
		{name: "discord.com", d: prod, raw: "https://discord.com/api/webhooks/123456/" + tok, wantID: "123456"},
		{name: "discordapp.com", d: prod, raw: "https://discordapp.com/api/webhooks/1/" + tok, wantID: "1"},
		{name: "ptb", d: prod, raw: "https://ptb.discord.com/api/webhooks/2/" + tok, wantID: "2"},
		{name: "canary", d: prod, raw: "https://canary.discord.com/api/webhooks/3/" + tok, wantID: "3"},
		{name: "host case-insensitive", d: prod, raw: "HTTPS://DisCord.COM/api/webhooks/4/" + tok, wantID: "4"},
		{name: "explicit port", d: prod, raw: "https://discord.com:443/api/webhooks/5/" + tok, wantID: "5"},
		{name: "versioned v10", d: prod, raw: "https://discord.com/api/v10/webhooks/6/" + tok, wantID: "6"},
		{name: "versioned v6", d: prod, raw: "https://discord.com/api/v6/webhooks/7/" + tok, wantID: "7"},
		{name: "thread_id kept", d: prod, raw: "https://discord.com/api/webhooks/8/" + tok + "?thread_id=99", wantID: "8", wantThread: "99"},
		{name: "trailing slash", d: prod, raw: "https://discord.com/api/webhooks/11/" + tok + "/", wantID: "11"},
		{name: "trailing slash and thread", d: prod, raw: "https://discord.com/api/webhooks/12/" + tok + "/?thread_id=7", wantID: "12", wantThread: "7"},
		{name: "wait=true normalised away", d: prod, raw: "https://discord.com/api/webhooks/13/" + tok + "?wait=true", wantID: "13"},
		{name: "wait and thread", d: prod, raw: "https://discord.com/api/webhooks/14/" + tok + "?wait=TRUE&thread_id=5", wantID: "14", wantThread: "5"},
		{name: "loopback allowed by config", d: local, raw: "http://127.0.0.1:8080/api/webhooks/9/" + tok, wantID: "9"},
		{name: "https on loopback", d: local, raw: "https://127.0.0.1/api/webhooks/10/" + tok, wantID: "10"},

		{name: "empty", d: prod, raw: "", wantErr: "empty"},
		{name: "http refused", d: prod, raw: "http://discord.com/api/webhooks/1/" + tok, wantErr: "webhook URL must use https"},
		{name: "ftp", d: prod, raw: "ftp://discord.com/api/webhooks/1/" + tok, wantErr: "webhook URL must use https"},
		{name: "no scheme", d: prod, raw: "//discord.com/api/webhooks/1/" + tok, wantErr: "must use https"},
		{name: "not a URL", d: prod, raw: "discord webhook " + tok, wantErr: "not a Discord webhook URL"},
		{name: "bad escape", d: prod, raw: "https://discord.com/api/webhooks/1/%zz" + tok, wantErr: "not a Discord webhook URL"},
		{name: "suffix host", d: prod, raw: "https://discord.com.evil.com/api/webhooks/1/" + tok, wantErr: "webhook host is not an allowed Discord host"},
		{name: "prefix host", d: prod, raw: "https://evildiscord.com/api/webhooks/1/" + tok, wantErr: "not an allowed Discord host"},
		{name: "subdomain", d: prod, raw: "https://x.discord.com/api/webhooks/1/" + tok, wantErr: "not an allowed Discord host"},
		{name: "trailing dot", d: prod, raw: "https://discord.com./api/webhooks/1/" + tok, wantErr: "not an allowed Discord host"},
		{name: "other host", d: prod, raw: "https://evil.com/api/webhooks/1/" + tok, wantErr: "not an allowed Discord host"},
		{name: "userinfo trick", d: prod, raw: "https://discord.com@evil.com/api/webhooks/1/" + tok, wantErr: "user info"},
		{name: "other port", d: prod, raw: "https://discord.com:18081/api/webhooks/1/" + tok, wantErr: "must not carry a port"},
		{name: "port zero", d: prod, raw: "https://discord.com:0/api/webhooks/1/" + tok, wantErr: "must not carry a port"},
		{name: "canary on smtp port", d: prod, raw: "https://canary.discord.com:25/api/webhooks/1/" + tok, wantErr: "must not carry a port"},
		{name: "userinfo", d: prod, raw: "https://alice:hunter2@discord.com/api/webhooks/1/" + tok, wantErr: "user info"},
		{name: "loopback not allowed in prod", d: prod, raw: "https://127.0.0.1/api/webhooks/1/" + tok, wantErr: "not an allowed Discord host"},
		{name: "localhost not in list", d: local, raw: "http://localhost:8080/api/webhooks/1/" + tok, wantErr: "not an allowed Discord host"},
		{name: "missing token", d: prod, raw: "https://discord.com/api/webhooks/1", wantErr: "not a Discord webhook URL"},
		{name: "slack form", d: prod, raw: "https://discord.com/api/webhooks/1/" + tok + "/slack", wantErr: "ending in /slack take that service's message format"},
		{name: "github form", d: prod, raw: "https://discord.com/api/webhooks/1/" + tok + "/github/", wantErr: "ending in /github take that service's message format"},
		{name: "extra segment", d: prod, raw: "https://discord.com/api/webhooks/1/" + tok + "/messages", wantErr: "not a Discord webhook URL"},
		{name: "two trailing slashes", d: prod, raw: "https://discord.com/api/webhooks/1/" + tok + "//", wantErr: "not a Discord webhook URL"},
		{name: "no /api", d: prod, raw: "https://discord.com/webhooks/1/" + tok, wantErr: "not a Discord webhook URL"},
		{name: "other endpoint", d: prod, raw: "https://discord.com/api/channels/1/messages", wantErr: "not a Discord webhook URL"},
		{name: "dot segments", d: prod, raw: "https://discord.com/api/webhooks/../channels/1/" + tok, wantErr: "not a Discord webhook URL"},
		{name: "non-numeric id", d: prod, raw: "https://discord.com/api/webhooks/abc/" + tok, wantErr: "not a Discord webhook URL"},
		{name: "id too long", d: prod, raw: "https://discord.com/api/webhooks/123456789012345678901/" + tok, wantErr: "not a Discord webhook URL"},
		{name: "token bad char", d: prod, raw: "https://discord.com/api/webhooks/1/" + tok + "!x", wantErr: "not a Discord webhook URL"},
		{name: "encoded slash", d: prod, raw: "https://discord.com/api/webhooks/1/" + tok + "%2Fx", wantErr: "not a Discord webhook URL"},
		{name: "other query", d: prod, raw: "https://discord.com/api/webhooks/1/" + tok + "?username=x", wantErr: "thread_id and wait"},
		{name: "wait not a boolean", d: prod, raw: "https://discord.com/api/webhooks/1/" + tok + "?wait=sometimes", wantErr: "wait parameter must be true or false"},
		{name: "two waits", d: prod, raw: "https://discord.com/api/webhooks/1/" + tok + "?wait=true&wait=false", wantErr: "repeats its wait parameter"},
		{name: "non-numeric thread", d: prod, raw: "https://discord.com/api/webhooks/1/" + tok + "?thread_id=x", wantErr: "thread_id must be"},
		{name: "two threads", d: prod, raw: "https://discord.com/api/webhooks/1/" + tok + "?thread_id=1&thread_id=2", wantErr: "repeats its thread_id parameter"},
		{name: "fragment", d: prod, raw: "https://discord.com/api/webhooks/1/" + tok + "#frag", wantErr: "fragment"},
		{name: "too long", d: prod, raw: "https://discord.com/api/webhooks/1/" + tok + strings.Repeat("a", 3000), wantErr: "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := tt.d.ParseWebhook(tt.raw)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseWebhook: %v", err)
				}
				if w.ID != tt.wantID || w.Token != tok || w.threadID != tt.wantThread {
					t.Fatalf("got id %q token %q thread %q, want %q %q %q", w.ID, w.Token, w.threadID, tt.wantID, tok, tt.wantThread)
				}
				if err := tt.d.CheckTarget(herald.Target{WebhookURL: tt.raw}); err != nil {
					t.Fatalf("CheckTarget: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseWebhook accepted %q", tt.raw)
			}
			if !errors.Is(err, ErrInvalidTarget) || !errors.Is(err, herald.ErrPermanent) {
				t.Errorf("err = %v, want ErrInvalidTarget and ErrPermanent", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %q, want it to mention %q", err, tt.wantErr)
			}
			if c := tt.d.CheckTarget(herald.Target{WebhookURL: tt.raw}); c == nil || c.Error() != err.Error() {
				t.Errorf("CheckTarget = %v, want the ParseWebhook error", c)
			}
			assertNoSecrets(t, err, tok, "evil", "alice", "hunter2")
			if tt.raw != "" && strings.Contains(err.Error(), tt.raw) {
				t.Errorf("error echoes the URL: %v", err)
			}
		})
	}
}

func TestWebhookEndpoint(t *testing.T) {
	f := fake.NewDiscord(t)
	d := newTestDiscord(t, testDiscordConfig(), nil)
	base := f.URL() + "/api"
	for _, raw := range []string{
		base + "/webhooks/1/tok",
		base + "/v6/webhooks/1/tok",
		base + "/v10/webhooks/1/tok?thread_id=42",
		base + "/webhooks/1/tok/?wait=true&thread_id=43", // as pasted from Discord's UI
	} {
		if err := d.Send(context.Background(), discordNotification(raw, herald.Message{Text: "hi"})); err != nil {
			t.Fatalf("Send(%s): %v", raw, err)
		}
	}
	reqs := f.Requests()
	if len(reqs) != 4 {
		t.Fatalf("fake got %d requests, want 4", len(reqs))
	}
	for i, r := range reqs {
		// Always the versioned URL, whose 429 retry_after is in seconds.
		if r.Version != "v10" || r.WebhookID != "1" || r.Token != "tok" || r.Method != http.MethodPost {
			t.Errorf("request %d: %s %s (version %q)", i, r.Method, r.Path, r.Version)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("request %d: Content-Type %q", i, ct)
		}
		if ua := r.Header.Get("User-Agent"); !strings.HasPrefix(ua, "DiscordBot (") {
			t.Errorf("request %d: User-Agent %q", i, ua)
		}
	}
	if reqs[2].ThreadID != "42" || reqs[0].ThreadID != "" {
		t.Errorf("thread_id: got %q and %q", reqs[0].ThreadID, reqs[2].ThreadID)
	}
	// The trailing slash and wait are normalised away; thread_id is kept.
	if r := reqs[3]; r.Path != "/api/v10/webhooks/1/tok" || r.ThreadID != "43" || r.Query.Has("wait") {
		t.Errorf("pasted form sent to %s?%s", r.Path, r.Query.Encode())
	}
}

// TestDiscordStreakyBody checks the body field for field against what
// Streaky's proxy sends (CONTRACT.md §5).
func TestDiscordStreakyBody(t *testing.T) {
	f := fake.NewDiscord(t)
	d := newTestDiscord(t, testDiscordConfig(), nil)
	ts := time.Date(2026, 4, 14, 12, 0, 0, 123456789, time.FixedZone("CEST", 2*3600))
	msg := streakyMessage("octocat", 42, "You haven't committed today! 🔥 Keep it going.", &ts)
	if err := d.Send(context.Background(), discordNotification(f.WebhookURL(testWebhookID, testWebhookToken), msg)); err != nil {
		t.Fatalf("Send: %v", err)
	}
	want := map[string]any{
		"username": "Streaky Bot",
		"embeds": []any{map[string]any{
			"title":       "⚠️ GitHub Streak Alert",
			"description": "You haven't committed today! 🔥 Keep it going.",
			"color":       float64(16739947),
			"fields": []any{
				map[string]any{"name": "GitHub Username", "value": "octocat", "inline": true},
				map[string]any{"name": "Current Streak", "value": "42 days", "inline": true},
			},
			"footer":    map[string]any{"text": "Streaky - Never lose your GitHub streak"},
			"timestamp": "2026-04-14T10:00:00.123Z",
		}},
	}
	got := f.Requests()[0].Body
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("body:\n got %#v\nwant %#v\n raw %s", got, want, f.Requests()[0].Raw)
	}
}

func TestDiscordTimestampDefaultsToNow(t *testing.T) {
	d := newTestDiscord(t, testDiscordConfig(), nil)
	d.now = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC) }
	p := newDiscordPayload(herald.Message{Text: "x"}, d.now())
	if got := p.Embeds[0].Timestamp; got != "2026-01-02T03:04:05.006Z" {
		t.Fatalf("timestamp = %q", got)
	}
}

func TestDiscordPayloadDropsWhatDiscordRefuses(t *testing.T) {
	bad := -1
	p := newDiscordPayload(herald.Message{
		Text: "x", URL: "javascript:alert(1)", Color: &bad, Username: "My Discord Bot",
	}, time.Now())
	e := p.Embeds[0]
	if e.URL != "" || e.Color != nil || p.Username != "" {
		t.Fatalf("kept url %q color %v username %q", e.URL, e.Color, p.Username)
	}
	p = newDiscordPayload(herald.Message{Text: "x", URL: "https://github.com/octocat", Username: strings.Repeat("n", 100)}, time.Now())
	if p.Embeds[0].URL != "https://github.com/octocat" || utf8.RuneCountInString(p.Username) != 80 {
		t.Fatalf("url %q username %d runes", p.Embeds[0].URL, utf8.RuneCountInString(p.Username))
	}
}

func TestDiscordLimits(t *testing.T) {
	t.Run("each limit, sent to the validating fake", func(t *testing.T) {
		f := fake.NewDiscord(t)
		d := newTestDiscord(t, testDiscordConfig(), nil)
		m := herald.Message{
			Title:  strings.Repeat("T😀", 300),
			Text:   strings.Repeat("é🔥x", 3000),
			Footer: strings.Repeat("f", 3000),
		}
		for i := range 30 {
			m.Fields = append(m.Fields, herald.Field{Name: fmt.Sprintf("%d", i) + strings.Repeat("n", 300), Value: strings.Repeat("v😀", 600)})
		}
		if err := d.Send(context.Background(), discordNotification(f.WebhookURL("1", "t"), m)); err != nil {
			t.Fatalf("Send: %v", err) // the fake answers 400 on any limit broken
		}
		e := f.Requests()[0].Body["embeds"].([]any)[0].(map[string]any)
		fields := e["fields"].([]any)
		if len(fields) != discordMaxFields {
			t.Errorf("%d fields, want %d", len(fields), discordMaxFields)
		}
		title := e["title"].(string)
		if n := utf8.RuneCountInString(title); n > discordMaxTitle || !strings.HasSuffix(title, "…") {
			t.Errorf("title: %d runes, suffix %q", n, title[len(title)-3:])
		}
		desc, _ := e["description"].(string) // omitted when shrunk to nothing
		total := utf8.RuneCountInString(title) + utf8.RuneCountInString(desc)
		for _, fv := range fields {
			fm := fv.(map[string]any)
			total += utf8.RuneCountInString(fm["name"].(string)) + utf8.RuneCountInString(fm["value"].(string))
		}
		if ft, ok := e["footer"].(map[string]any); ok {
			total += utf8.RuneCountInString(ft["text"].(string))
		}
		if total > discordMaxEmbedTotal {
			t.Errorf("embed total %d > %d", total, discordMaxEmbedTotal)
		}
	})

	t.Run("description shrinks first", func(t *testing.T) {
		m := herald.Message{
			Title:  strings.Repeat("t", 200),
			Text:   strings.Repeat("😀", 4000),
			Footer: strings.Repeat("f", 100),
			Fields: []herald.Field{{Name: "a", Value: strings.Repeat("v", 1000)}, {Name: "b", Value: strings.Repeat("w", 1000)}},
		}
		e := newDiscordPayload(m, time.Now()).Embeds[0]
		// 200 + 4000 + 2*(1+1000) + 100 = 6302: 302 over, all from the description.
		if n := utf8.RuneCountInString(e.Description); n != 4000-302 || !strings.HasSuffix(e.Description, "…") {
			t.Errorf("description %d runes, want %d ending in …", n, 4000-302)
		}
		if e.Title != m.Title || e.Footer.Text != m.Footer || e.Fields[1].Value != m.Fields[1].Value {
			t.Error("something other than the description was cut")
		}
		if e.size() != discordMaxEmbedTotal {
			t.Errorf("size %d, want exactly %d", e.size(), discordMaxEmbedTotal)
		}
		if !utf8.ValidString(e.Description) {
			t.Error("cut inside a rune")
		}
	})

	t.Run("fits untouched", func(t *testing.T) {
		m := streakyMessage("octocat", 1, "hello", nil)
		e := newDiscordPayload(m, time.Now()).Embeds[0]
		if e.Description != "hello" || e.Title != m.Title {
			t.Errorf("changed a message within limits: %+v", e)
		}
	})
}

func TestDiscordRateLimited(t *testing.T) {
	ban := fake.RespondCloudflareBan()
	banWithRetry := fake.RespondCloudflareBan()
	banWithRetry.Header = banWithRetry.Header.Clone()
	banWithRetry.Header.Set("Retry-After", "120")
	tests := []struct {
		name       string
		resp       fake.Response
		max        time.Duration
		wantAfter  time.Duration
		wantGlobal bool
	}{
		{name: "body float wins over header", resp: fake.Respond429(0.8), wantAfter: 800 * time.Millisecond},
		{name: "header only", resp: fake.Response{Status: 429, Header: http.Header{"Retry-After": {"2"}, "X-Ratelimit-Limit": {"5"}}}, wantAfter: 2 * time.Second},
		{name: "header float", resp: fake.Response{Status: 429, Header: http.Header{"Retry-After": {"1.5"}, "X-Ratelimit-Scope": {"user"}}}, wantAfter: 1500 * time.Millisecond},
		{name: "reset-after only", resp: fake.Response{Status: 429, Header: http.Header{"X-Ratelimit-Reset-After": {"3.25"}}}, wantAfter: 3250 * time.Millisecond},
		{name: "json without retry_after uses header", resp: fake.Response{Status: 429, Header: http.Header{"Retry-After": {"4"}}, Body: `{"message":"slow down"}`}, wantAfter: 4 * time.Second},
		{name: "clamped to MaxRetryAfter", resp: fake.Respond429(7200), max: time.Minute, wantAfter: time.Minute},
		{name: "clamped to default max", resp: fake.Respond429(1e12), wantAfter: DefaultMaxRetryAfter},
		{name: "zero gets a floor", resp: fake.Respond429(0), wantAfter: minRetryAfter},
		{name: "global body", resp: fake.Respond429Global(0.25), wantAfter: 250 * time.Millisecond, wantGlobal: true},
		{name: "global header", resp: fake.Response{Status: 429, Header: http.Header{"X-Ratelimit-Global": {"true"}}, Body: `{"retry_after":1,"global":false}`}, wantAfter: time.Second, wantGlobal: true},
		{name: "global scope", resp: fake.Response{Status: 429, Header: http.Header{"X-Ratelimit-Scope": {"global"}}, Body: `{"retry_after":1}`}, wantAfter: time.Second, wantGlobal: true},
		{name: "route body without headers is the route's", resp: fake.Response{Status: 429, Body: `{"message":"You are being rate limited.","retry_after":17,"global":false}`}, wantAfter: 17 * time.Second},
		{name: "cloudflare ban", resp: ban, wantAfter: discordBanRetryAfter, wantGlobal: true},
		{name: "cloudflare ban with Retry-After", resp: banWithRetry, wantAfter: 2 * time.Minute, wantGlobal: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fake.NewDiscord(t)
			f.Script(always(tt.resp))
			cfg := testDiscordConfig()
			cfg.MaxRetryAfter = tt.max
			d := newTestDiscord(t, cfg, nil)
			err := d.Send(context.Background(), discordNotification(f.WebhookURL("1", testWebhookToken), herald.Message{Text: "x"}))
			var ra *herald.RetryAfterError
			if !errors.As(err, &ra) {
				t.Fatalf("err = %v, want RetryAfterError", err)
			}
			if ra.After != tt.wantAfter || ra.Global != tt.wantGlobal {
				t.Errorf("After %v Global %v, want %v %v (%v)", ra.After, ra.Global, tt.wantAfter, tt.wantGlobal, err)
			}
			var de *herald.DestinationError
			if !errors.As(err, &de) || de.StatusCode != 429 || de.Channel != herald.ChannelDiscord {
				t.Errorf("no DestinationError inside: %v", err)
			}
			assertNoSecrets(t, err, testWebhookToken)
		})
	}
}

// TestDiscordFakeLimiter runs against the fake's realistic limiter: the third
// request in a 2-per-minute window gets the wait until the window resets.
func TestDiscordFakeLimiter(t *testing.T) {
	f := fake.NewDiscord(t)
	f.Limit(2, time.Minute, 0)
	var mu sync.Mutex
	var seen []RateLimit
	cfg := testDiscordConfig()
	var d *Discord
	cfg.Observe = func(dest string, rl RateLimit, status int) {
		mu.Lock()
		defer mu.Unlock()
		if dest != d.Destination(herald.Target{WebhookURL: f.WebhookURL("1", testWebhookToken)}) &&
			dest != d.Destination(herald.Target{WebhookURL: f.WebhookURL("2", testWebhookToken)}) {
			t.Errorf("Observe dest = %q", dest)
		}
		seen = append(seen, rl)
	}
	d = newTestDiscord(t, cfg, nil)
	n := discordNotification(f.WebhookURL("1", testWebhookToken), herald.Message{Text: "x"})
	for i := range 2 {
		if err := d.Send(context.Background(), n); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	err := d.Send(context.Background(), n)
	var ra *herald.RetryAfterError
	if !errors.As(err, &ra) || ra.Global {
		t.Fatalf("third send: %v, want a per-webhook RetryAfterError", err)
	}
	if ra.After <= 0 || ra.After > time.Minute {
		t.Errorf("After = %v, want within the 1 min window", ra.After)
	}
	// Another webhook has its own bucket.
	if err := d.Send(context.Background(), discordNotification(f.WebhookURL("2", testWebhookToken), herald.Message{Text: "x"})); err != nil {
		t.Fatalf("other webhook: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 4 || seen[0].Remaining != 1 || seen[1].Remaining != 0 || seen[2].Scope != "user" || seen[3].Remaining != 1 {
		t.Errorf("observed %+v", seen)
	}
}

func TestDiscordObserve(t *testing.T) {
	f := fake.NewDiscord(t)
	var calls atomic.Int32
	var got RateLimit
	var gotStatus int
	cfg := testDiscordConfig()
	var d *Discord
	cfg.Observe = func(dest string, rl RateLimit, status int) {
		calls.Add(1)
		got, gotStatus = rl, status
		if want := d.Destination(herald.Target{WebhookURL: f.WebhookURL(testWebhookID, testWebhookToken)}); dest != want {
			t.Errorf("dest = %q, want %q (Destination's)", dest, want)
		}
	}
	d = newTestDiscord(t, cfg, nil)
	if err := d.Send(context.Background(), discordNotification(f.WebhookURL(testWebhookID, testWebhookToken), herald.Message{Text: "x"})); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 || gotStatus != http.StatusNoContent {
		t.Fatalf("Observe called %d times, status %d", calls.Load(), gotStatus)
	}
	if !got.Present || got.Limit != fake.DefaultDiscordLimit || got.Remaining != fake.DefaultDiscordLimit-1 ||
		got.Bucket != fake.DiscordBucket || got.ResetAfter <= 0 {
		t.Errorf("rate limit = %+v", got)
	}
}

func TestDiscordRedirectNotFollowed(t *testing.T) {
	var evilHits atomic.Int32
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		evilHits.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer evil.Close()
	f := fake.NewDiscord(t)
	f.Script(func(r fake.DiscordRequest, n int) fake.Response {
		return fake.Response{Status: http.StatusTemporaryRedirect, Header: http.Header{"Location": {evil.URL + r.Path}}}
	})
	// Even a client that follows redirects is made not to.
	for _, client := range []*http.Client{nil, {}, http.DefaultClient} {
		d := newTestDiscord(t, testDiscordConfig(), client)
		err := d.Send(context.Background(), discordNotification(f.WebhookURL("1", testWebhookToken), herald.Message{Text: "x"}))
		if herald.StatusCode(err) != http.StatusTemporaryRedirect || errors.Is(err, herald.ErrPermanent) {
			t.Errorf("err = %v, want a transient 307 DestinationError", err)
		}
	}
	if evilHits.Load() != 0 {
		t.Fatalf("redirect followed %d times", evilHits.Load())
	}
	if http.DefaultClient.CheckRedirect != nil {
		t.Fatal("NewDiscord modified the client it was given")
	}
}

// TestDiscordDestination: the key names the whole destination. Forms of one
// webhook share it; a URL that shares only the id with it (another token,
// host or port) does not, so it cannot open the owner's breaker or spend the
// owner's bucket; and the key holds no token.
func TestDiscordDestination(t *testing.T) {
	d := newTestDiscord(t, DiscordConfig{}, nil)
	dest := func(raw string) string { return d.Destination(herald.Target{WebhookURL: raw}) }
	key := dest("https://discord.com/api/webhooks/123/" + testWebhookToken)
	if !strings.HasPrefix(key, "discord:discord.com/123:") || strings.Contains(key, testWebhookToken) {
		t.Fatalf("Destination = %q, want discord:discord.com/123:<hash>, without the token", key)
	}
	for _, same := range []string{
		"https://discord.com/api/v10/webhooks/123/" + testWebhookToken + "?thread_id=5",
		"HTTPS://DISCORD.COM:443/api/webhooks/123/" + testWebhookToken,
	} {
		if got := dest(same); got != key {
			t.Errorf("Destination(%s) = %q, want the same webhook's %q", same, got, key)
		}
	}
	for _, other := range []string{
		"https://discord.com/api/webhooks/123/another-token",
		"https://discordapp.com/api/webhooks/123/" + testWebhookToken,
		"https://discord.com/api/webhooks/124/" + testWebhookToken,
	} {
		if got := dest(other); got == key {
			t.Errorf("Destination(%s) = the victim's key %q", other, key)
		}
	}
	local := newTestDiscord(t, testDiscordConfig(), nil)
	if a, b := local.Destination(herald.Target{WebhookURL: "http://127.0.0.1:1000/api/webhooks/1/" + testWebhookToken}),
		local.Destination(herald.Target{WebhookURL: "http://127.0.0.1:2000/api/webhooks/1/" + testWebhookToken}); a == b {
		t.Errorf("two ports share the key %q", a)
	}
	if got := dest("https://evil.com/api/webhooks/123/" + testWebhookToken); got != "discord:invalid" {
		t.Errorf("Destination of an invalid target = %q", got)
	}
}

func TestWebhookHidesToken(t *testing.T) {
	d := newTestDiscord(t, DiscordConfig{}, nil)
	w, err := d.ParseWebhook("https://discord.com/api/webhooks/123/" + testWebhookToken)
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("send", "webhook", w)
	for _, s := range []string{
		w.String(), fmt.Sprint(w), fmt.Sprintf("%v %+v %#v %s %q %x", w, w, w, w, w, w), fmt.Sprintf("%v", &w), logged.String(),
	} {
		if strings.Contains(s, testWebhookToken) {
			t.Errorf("token leaked: %s", s)
		}
		if !strings.Contains(s, "123") {
			t.Errorf("id missing: %s", s)
		}
	}
}

func TestDiscordConfigValidate(t *testing.T) {
	for _, bad := range []DiscordConfig{
		{MaxRetryAfter: -1},
		{AllowedHosts: []string{""}},
		{AllowedHosts: []string{"https://discord.com"}},
		{AllowedHosts: []string{"discord.com:443"}},
		{AllowedHosts: []string{"*.discord.com"}},
		{AllowedHosts: []string{"discord.com/api"}},
		{AllowedHosts: []string{"user@discord.com"}},
		{AllowedHosts: []string{"disc ord.com"}},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", bad)
		}
		if _, err := NewDiscord(bad, nil); err == nil {
			t.Errorf("NewDiscord(%+v) accepted it", bad)
		}
	}
	for _, ok := range []DiscordConfig{{}, testDiscordConfig(), {AllowedHosts: []string{"::1", "Discord.com"}, MaxRetryAfter: time.Minute}} {
		if err := ok.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", ok, err)
		}
	}
	d := newTestDiscord(t, DiscordConfig{}, nil)
	if d.cfg.MaxRetryAfter != DefaultMaxRetryAfter || !reflect.DeepEqual(d.cfg.AllowedHosts, DefaultDiscordHosts) {
		t.Errorf("defaults not applied: %+v", d.cfg)
	}
}
