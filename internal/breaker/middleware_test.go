package breaker

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/channels"
	"github.com/heraldrelay/herald/consumer"
)

func TestOpensAfterConsecutiveFailures(t *testing.T) {
	t.Parallel()
	x := newTestSet(t, Config{Failures: 3, OpenTimeout: 10 * time.Second})
	k := []string{"discord:1"}

	x.fail(k...)
	x.fail(k...)
	// A success resets the count: two more failures leave it closed.
	if err, called := x.call(k, func() error { return nil }); err != nil || !called {
		t.Fatalf("success: err %v, called %v", err, called)
	}
	x.fail(k...)
	x.fail(k...)
	if st := x.State(k[0]); st.String() != "closed" {
		t.Fatalf("state after 2 failures = %s, want closed", st)
	}
	x.fail(k...)
	if st := x.State(k[0]); st.String() != "open" {
		t.Fatalf("state after 3 failures = %s, want open", st)
	}

	// Open: the send is not made, the job waits without an attempt.
	for range 5 {
		err, called := x.call(k, func() error { return nil })
		if called {
			t.Fatal("handler called while open")
		}
		after := wantCircuitOpen(t, err)
		// Until the breaker may half-open (10 s from now), plus up to 20%.
		if after < 9*time.Second || after > 12*time.Second {
			t.Errorf("After = %s, want about the 10 s open timeout", after)
		}
		if strings.Contains(err.Error(), "discord:1") == false {
			t.Errorf("error %q does not name the destination", err)
		}
	}
	// Other destinations are unaffected.
	if _, called := x.call([]string{"discord:2"}, func() error { return nil }); !called {
		t.Error("another destination's send was not made")
	}
}

func TestOutcomesThatNeverOpen(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
	}{
		{"permanent", errPermanent},
		{"wrapped permanent", fmt.Errorf("discord: %w", errPermanent)},
		{"429", err429},
		{"paced", &herald.RetryAfterError{After: time.Second, Err: herald.ErrPaced}},
		{"canceled", fmt.Errorf("discord: send: %w", context.Canceled)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			x := newTestSet(t, Config{Failures: 2, OpenTimeout: 10 * time.Second})
			k := []string{"discord:1"}
			for i := range 20 {
				err, called := x.call(k, func() error { return tt.err })
				if !called {
					t.Fatalf("call %d not made", i+1)
				}
				if err != tt.err {
					t.Fatalf("err = %v, want the handler's own", err)
				}
			}
			if st := x.State(k[0]); st.String() != "closed" {
				t.Errorf("state = %s, want closed", st)
			}
			if n := x.changes("discord", labelOpen); n != 0 {
				t.Errorf("open transitions = %d", n)
			}
		})
	}
}

func TestPermanentResetsFailures(t *testing.T) {
	t.Parallel()
	x := newTestSet(t, Config{Failures: 3, OpenTimeout: 10 * time.Second})
	k := []string{"discord:1"}
	x.fail(k...)
	x.fail(k...)
	// A permanent error is the destination answering: a success.
	x.call(k, func() error { return errPermanent })
	x.fail(k...)
	x.fail(k...)
	// 429s count neither way: still two in a row.
	x.call(k, func() error { return err429 })
	if st := x.State(k[0]); st.String() != "closed" {
		t.Fatalf("state = %s, want closed", st)
	}
	x.fail(k...)
	if st := x.State(k[0]); st.String() != "open" {
		t.Fatalf("state = %s, want open", st)
	}
}

func TestTimeoutCountsAsFailure(t *testing.T) {
	t.Parallel()
	x := newTestSet(t, Config{Failures: 2, OpenTimeout: 10 * time.Second})
	k := []string{"telegram:1:ab"}
	for range 2 {
		x.call(k, func() error { return fmt.Errorf("telegram: send: %w", context.DeadlineExceeded) })
	}
	if st := x.State(k[0]); st.String() != "open" {
		t.Fatalf("state = %s, want open", st)
	}
}

func TestHalfOpenProbes(t *testing.T) {
	t.Parallel()
	x := newTestSet(t, Config{Failures: 1, OpenTimeout: 100 * time.Millisecond, HalfOpenProbes: 2})
	k := []string{"discord:1"}
	x.open(k...)
	x.waitHalfOpen(k[0])

	// Two probes go through at once; a third send waits a short while.
	release := make(chan struct{})
	var wg sync.WaitGroup
	started := make(chan struct{}, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err, called := x.call(k, func() error {
				started <- struct{}{}
				<-release
				return nil
			})
			if err != nil || !called {
				t.Errorf("probe: err %v, called %v", err, called)
			}
		}()
	}
	<-started
	<-started
	err, called := x.call(k, func() error { return nil })
	if called {
		t.Fatal("third send made while both probes are out")
	}
	if after := wantCircuitOpen(t, err); after < minDelay || after > maxProbeWait*6/5 {
		t.Errorf("After = %s, want a short wait for the probes", after)
	}
	close(release)
	wg.Wait()
	if st := x.State(k[0]); st.String() != "closed" {
		t.Fatalf("state after 2 successful probes = %s, want closed", st)
	}
	if _, called := x.call(k, func() error { return nil }); !called {
		t.Error("send not made once closed")
	}
}

func TestHalfOpenProbeFailureReopens(t *testing.T) {
	t.Parallel()
	x := newTestSet(t, Config{Failures: 3, OpenTimeout: 100 * time.Millisecond})
	k := []string{"discord:1"}
	x.open(k...)
	x.waitHalfOpen(k[0])
	x.fail(k...) // one failed probe is enough
	if st := x.State(k[0]); st.String() != "open" {
		t.Fatalf("state = %s, want open", st)
	}
	x.waitHalfOpen(k[0])
	if _, called := x.call(k, func() error { return nil }); !called {
		t.Fatal("probe not made")
	}
	if st := x.State(k[0]); st.String() != "closed" {
		t.Fatalf("state = %s, want closed", st)
	}
	for _, to := range []string{labelOpen, labelHalfOpen, labelClosed} {
		want := map[string]int{labelOpen: 2, labelHalfOpen: 2, labelClosed: 1}[to]
		if n := x.changes("discord", to); n != want {
			t.Errorf("transitions to %s = %d, want %d", to, n, want)
		}
	}
}

func TestOpenWaitEndsWhenHalfOpen(t *testing.T) {
	t.Parallel()
	x := newTestSet(t, Config{Failures: 1, OpenTimeout: 2 * time.Second})
	x.jitter = func() float64 { return 0 }
	k := []string{"discord:1"}
	x.open(k...)
	err, _ := x.call(k, func() error { return nil })
	if after := wantCircuitOpen(t, err); after > 2*time.Second || after < 1500*time.Millisecond {
		t.Errorf("After = %s, want just under 2 s", after)
	}
	x.jitter = func() float64 { return 0.999 }
	err, _ = x.call(k, func() error { return nil })
	if after := wantCircuitOpen(t, err); after > 2400*time.Millisecond || after < 1800*time.Millisecond {
		t.Errorf("After = %s, want at most 20%% over 2 s", after)
	}
	// Just before it may half-open the wait is never below the floor.
	x.Set.now = func() time.Time { return time.Now().Add(2 * time.Second) }
	x.jitter = func() float64 { return 0 }
	err, _ = x.call(k, func() error { return nil })
	if after := wantCircuitOpen(t, err); after != minDelay {
		t.Errorf("After = %s, want the %s floor", after, minDelay)
	}
}

func TestBotBreakerFailsEveryChat(t *testing.T) {
	t.Parallel()
	tg, err := channels.NewTelegram(channels.TelegramConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	x := newTestSet(t, Config{Failures: 3, OpenTimeout: 10 * time.Second})
	keys := Keys(func(n herald.Notification) string { return tg.Destination(n.Target) })
	mw := x.Middleware(keys)
	var made []string
	send := func(token, chat string, result error) error {
		n := herald.Notification{Channel: herald.ChannelTelegram, Target: herald.Target{BotToken: token, ChatID: chat}}
		return mw(func(context.Context, *consumer.Delivery) error {
			made = append(made, chat)
			return result
		})(context.Background(), &consumer.Delivery{Notification: n})
	}

	// Three chats of one bot fail once each: no chat's breaker opens, the
	// bot's does.
	for _, chat := range []string{"-1001", "-1002", "-1003"} {
		send(botToken, chat, errTransient)
	}
	bot := tg.Destination(herald.Target{BotToken: botToken, ChatID: "-1001"})
	botKey, ok := BotKey(bot)
	if !ok || !strings.HasPrefix(botKey, "telegram:123456789.") || strings.Count(botKey, ":") != 1 {
		t.Fatalf("BotKey(%q) = %q, %v", bot, botKey, ok)
	}
	if st := x.State(botKey); st.String() != "open" {
		t.Fatalf("bot breaker = %s, want open", st)
	}
	if st := x.State(bot); st.String() != "closed" {
		t.Fatalf("chat breaker = %s, want closed", st)
	}
	// Every chat of that bot, even one never sent to, waits.
	made = nil
	for _, chat := range []string{"-1001", chatID, "@somechannel"} {
		wantCircuitOpen(t, send(botToken, chat, nil))
	}
	if len(made) != 0 {
		t.Errorf("sends made through an open bot breaker: %v", made)
	}
	// Another bot is unaffected.
	if err := send(otherBot, chatID, nil); err != nil || len(made) != 1 {
		t.Errorf("other bot: err %v, made %v", err, made)
	}
	if x.gauge("telegram", labelOpen) != 1 || x.changes("telegram", labelOpen) != 1 {
		t.Errorf("telegram open gauge %d, transitions %d, want 1 and 1",
			x.gauge("telegram", labelOpen), x.changes("telegram", labelOpen))
	}
}

func TestOtherBreakerOpenReleasesProbe(t *testing.T) {
	t.Parallel()
	x := newTestSet(t, Config{Failures: 1, OpenTimeout: 100 * time.Millisecond})
	x.open("a")
	x.waitHalfOpen("a")
	// "b" opens for much longer: its breaker is created with this timeout.
	x.cfg.OpenTimeout = 10 * time.Second
	x.open("b")
	x.cfg.OpenTimeout = 100 * time.Millisecond

	// "a" lets this send through as its probe, "b" refuses it: no send, and
	// "a" gets its probe slot back.
	err, called := x.call([]string{"a", "b"}, func() error { return nil })
	if called {
		t.Fatal("send made while b is open")
	}
	wantCircuitOpen(t, err)
	if !strings.Contains(err.Error(), "breaker b:") {
		t.Errorf("err = %v, want it to name b", err)
	}
	if st := x.State("a"); st.String() != "half-open" {
		t.Fatalf("a = %s, want still half-open", st)
	}
	if _, called := x.call([]string{"a"}, func() error { return nil }); !called {
		t.Fatal("a's probe slot was not released")
	}
	if st := x.State("a"); st.String() != "closed" {
		t.Fatalf("a = %s, want closed", st)
	}
}

func TestSeveralOpenWaitsForTheLongest(t *testing.T) {
	t.Parallel()
	x := newTestSet(t, Config{Failures: 1, OpenTimeout: 5 * time.Second})
	x.jitter = func() float64 { return 0 }
	x.open("a")
	x.Set.now = func() time.Time { return time.Now().Add(3 * time.Second) } // "a" opened 3 s ago
	x.open("b")
	x.Set.now = time.Now
	err, _ := x.call([]string{"a", "b"}, func() error { return nil })
	if after := wantCircuitOpen(t, err); after < 6*time.Second {
		t.Errorf("After = %s, want b's (about 8 s)", after)
	}
}

func TestPanicSettlesBreaker(t *testing.T) {
	t.Parallel()
	x := newTestSet(t, Config{Failures: 1, OpenTimeout: 100 * time.Millisecond})
	k := []string{"discord:1"}
	x.open(k...)
	x.waitHalfOpen(k[0])
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Errorf("recovered %v, want the handler's panic", p)
			}
		}()
		x.call(k, func() error { panic("boom") })
	}()
	// The panicking probe failed: open again, not stuck half-open.
	if st := x.State(k[0]); st.String() != "open" {
		t.Fatalf("state = %s, want open", st)
	}
	x.waitHalfOpen(k[0])
	if _, called := x.call(k, func() error { return nil }); !called {
		t.Fatal("probe not made after the panic")
	}
}

func TestNoKeysNoBreaker(t *testing.T) {
	t.Parallel()
	x := newTestSet(t, Config{Failures: 1})
	for range 3 {
		if _, called := x.call(nil, func() error { return errTransient }); !called {
			t.Fatal("send without keys not made")
		}
		if _, called := x.call([]string{""}, func() error { return errTransient }); !called {
			t.Fatal("send with an empty key not made")
		}
	}
	if x.Len() != 0 {
		t.Errorf("Len = %d, want 0", x.Len())
	}
}

func TestDuplicateKeysCountOnce(t *testing.T) {
	t.Parallel()
	x := newTestSet(t, Config{Failures: 2, OpenTimeout: 10 * time.Second})
	x.fail("a", "a", "a")
	if st := x.State("a"); st.String() != "closed" {
		t.Fatalf("state = %s after one failure, want closed", st)
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		dest string
		want []string
	}{
		{"discord:112233", []string{"discord:112233"}},
		{"telegram:123:abcdef", []string{"telegram:123:abcdef", "telegram:123"}},
		{"telegram:invalid:abcdef", []string{"telegram:invalid:abcdef", "telegram:invalid"}},
		{"telegram:", []string{"telegram:"}},
		{"telegram:123", []string{"telegram:123"}},
		{"", nil},
	}
	for _, tt := range tests {
		got := Keys(func(herald.Notification) string { return tt.dest })(herald.Notification{})
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("Keys(%q) = %q, want %q", tt.dest, got, tt.want)
		}
	}
}

func TestMetricsAndLogs(t *testing.T) {
	t.Parallel()
	d, err := channels.NewDiscord(channels.DiscordConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	x := newTestSet(t, Config{Failures: 2, OpenTimeout: 100 * time.Millisecond})
	target := herald.Target{WebhookURL: "https://discord.com/api/webhooks/" + webhookID + "/" + webhookToken}
	mw := x.Middleware(Keys(func(n herald.Notification) string { return d.Destination(n.Target) }))
	send := func(result error) error {
		n := herald.Notification{JobID: "job1", Channel: herald.ChannelDiscord, Target: target}
		return mw(func(context.Context, *consumer.Delivery) error { return result })(context.Background(), &consumer.Delivery{Notification: n})
	}

	send(nil)
	if x.gaugeTotal("discord") != 0 {
		t.Errorf("after a success: total %d, want 0 (no breaker without a failure)", x.gaugeTotal("discord"))
	}
	send(errTransient)
	if x.gauge("discord", labelClosed) != 1 || x.gaugeTotal("discord") != 1 {
		t.Errorf("after a failure: closed %d, total %d", x.gauge("discord", labelClosed), x.gaugeTotal("discord"))
	}
	send(errTransient)
	if x.gauge("discord", labelOpen) != 1 || x.gauge("discord", labelClosed) != 0 || x.changes("discord", labelOpen) != 1 {
		t.Errorf("after opening: open %d closed %d, open transitions %d",
			x.gauge("discord", labelOpen), x.gauge("discord", labelClosed), x.changes("discord", labelOpen))
	}
	key := d.Destination(target)
	x.waitHalfOpen(key)
	if x.gauge("discord", labelHalfOpen) != 1 || x.gauge("discord", labelOpen) != 0 {
		t.Errorf("half-open gauge %d, open %d", x.gauge("discord", labelHalfOpen), x.gauge("discord", labelOpen))
	}
	send(nil)
	// Closed with its counts cleared, the breaker is forgotten.
	if x.gaugeTotal("discord") != 0 || x.changes("discord", labelClosed) != 1 {
		t.Errorf("after closing: total %d, close transitions %d", x.gaugeTotal("discord"), x.changes("discord", labelClosed))
	}
	if x.gaugeTotal("telegram") != 0 {
		t.Errorf("telegram gauges = %d", x.gaugeTotal("telegram"))
	}

	logs := x.logs.String()
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	if len(lines) != 3 {
		t.Fatalf("log lines = %d, want 3 (open, half-open, closed):\n%s", len(lines), logs)
	}
	for i, want := range []struct{ level, to string }{{"WARN", labelOpen}, {"INFO", labelHalfOpen}, {"INFO", labelClosed}} {
		for _, s := range []string{`"level":"` + want.level + `"`, `"msg":"breaker"`, `"to":"` + want.to + `"`, `"channel":"discord"`, `"destination":"` + key + `"`} {
			if !strings.Contains(lines[i], s) {
				t.Errorf("line %d %s lacks %s", i+1, lines[i], s)
			}
		}
	}
	// Keys never reach a metric label.
	if m := x.metricsText(); strings.Contains(m, webhookID) {
		t.Errorf("metrics carry the webhook id:\n%s", m)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"zero", Config{}, ""},
		{"set", Config{Failures: 3, OpenTimeout: time.Minute, HalfOpenProbes: 2, MaxDestinations: 10, IdleTTL: time.Minute}, ""},
		{"negative open timeout", Config{OpenTimeout: -time.Second}, "open timeout"},
		{"tiny open timeout", Config{OpenTimeout: time.Millisecond}, "open timeout"},
		{"negative max destinations", Config{MaxDestinations: -1}, "max destinations"},
		{"negative idle ttl", Config{IdleTTL: -time.Second}, "idle ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate = %v, want an error about %s", err, tt.wantErr)
			}
			if _, err2 := New(tt.cfg, nil, nil); (err2 == nil) != (err == nil) {
				t.Errorf("New err %v, Validate err %v", err2, err)
			}
		})
	}
	c := Config{}.withDefaults()
	if c.Failures != DefaultFailures || c.OpenTimeout != DefaultOpenTimeout || c.HalfOpenProbes != DefaultHalfOpenProbes ||
		c.MaxDestinations != DefaultMaxDestinations || c.IdleTTL != DefaultIdleTTL {
		t.Errorf("defaults = %+v", c)
	}
}

func TestUnknownKeyIsClosed(t *testing.T) {
	t.Parallel()
	x := newTestSet(t, Config{})
	if st := x.State("discord:nope"); st.String() != "closed" {
		t.Errorf("State = %s", st)
	}
	if x.Len() != 0 {
		t.Errorf("State created a breaker: Len = %d", x.Len())
	}
}
