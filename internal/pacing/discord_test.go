package pacing

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/channels"
	"github.com/heraldrelay/herald/consumer"
	"github.com/heraldrelay/herald/internal/fake"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const (
	hookA = "discord:1000000000000000001"
	hookB = "discord:1000000000000000002"
)

// headers returns the rate-limit headers of a 5-per-2-s bucket with
// remaining requests left and the window resetting after resetAfter.
func headers(remaining int, resetAfter time.Duration) channels.RateLimit {
	return channels.RateLimit{
		Bucket: fake.DiscordBucket, Limit: 5, Remaining: remaining, ResetAfter: resetAfter, Present: true,
	}
}

// discordDelivery is a Delivery of a Discord notification whose webhook URL
// is the destination key (the tests' dest func returns it as is).
func discordDelivery(key string) *consumer.Delivery {
	return &consumer.Delivery{Notification: herald.Notification{
		JobID: "job", Channel: herald.ChannelDiscord, Target: herald.Target{WebhookURL: key},
	}}
}

func keyOfTarget(n herald.Notification) string {
	if n.Channel == herald.ChannelTelegram {
		return n.Target.BotToken
	}
	return n.Target.WebhookURL
}

// sendVia runs one send to key through the middleware; respond plays the
// destination: it may call ObserveDiscord and returns the send's error.
func (tp *testPacer) sendVia(t *testing.T, key string, respond func() error) (called bool, err error) {
	t.Helper()
	h := tp.Middleware(keyOfTarget)(func(context.Context, *consumer.Delivery) error {
		called = true
		if respond == nil {
			return nil
		}
		return respond()
	})
	err = h(context.Background(), discordDelivery(key))
	return called, err
}

// answer returns a respond func that observes rl and status for key.
func (tp *testPacer) answer(key string, rl channels.RateLimit, status int, err error) func() error {
	return func() error {
		tp.ObserveDiscord(key, rl, status)
		return err
	}
}

// pacedAfter returns the After of a pacing RetryAfterError, failing the test
// for any other error.
func pacedAfter(t *testing.T, err error) time.Duration {
	t.Helper()
	var ra *herald.RetryAfterError
	if !errors.As(err, &ra) || !errors.Is(err, herald.ErrPaced) {
		t.Fatalf("err = %v, want a RetryAfterError wrapping herald.ErrPaced", err)
	}
	return ra.After
}

func TestDiscordFirstSendAloneUntilLearned(t *testing.T) {
	tp := newTestPacer(t, Config{MaxInFlight: 10}) // the cap is TestDiscordInFlightCap's
	now := tp.clock.Now()
	g := tp.acquireDiscord(hookA, now, time.Second)
	if !g.ok || g.wait != 0 {
		t.Fatalf("first send: %+v, want ok at once", g)
	}
	// While the first is in flight nothing is known: the second waits for
	// its answer, at no known time.
	g2 := tp.acquireDiscord(hookA, now, time.Second)
	if g2.ok || !g2.unknown || g2.wake == nil {
		t.Fatalf("second send: %+v, want an unknown wait", g2)
	}
	// Another webhook is independent, although Discord gives it the same
	// bucket hash.
	if g3 := tp.acquireDiscord(hookB, now, time.Second); !g3.ok {
		t.Fatalf("other webhook: %+v, want ok", g3)
	}
	tp.ObserveDiscord(hookA, headers(4, 2*time.Second), http.StatusNoContent)
	select {
	case <-g2.wake:
	default:
		t.Fatal("waiting send not woken by the response")
	}
	tp.releaseDiscord(g, true, nil, now, false)
	// Learned: 4 left in this window.
	for i := range 4 {
		if g := tp.acquireDiscord(hookA, now, time.Second); !g.ok {
			t.Fatalf("send %d after learning: %+v, want ok", i+2, g)
		}
	}
	g = tp.acquireDiscord(hookA, now, time.Second)
	if g.ok || g.unknown || g.wait != 2*time.Second+resetMargin {
		t.Fatalf("sixth send: %+v, want a wait until the reset", g)
	}
}

func TestDiscordHoldsUntilResetThenSends(t *testing.T) {
	tp := newTestPacer(t, Config{})
	// Learn a bucket with one request left, resetting in 1.5 s.
	if _, err := tp.sendVia(t, hookA, tp.answer(hookA, headers(1, 1500*time.Millisecond), 204, nil)); err != nil {
		t.Fatal(err)
	}
	if called, err := tp.sendVia(t, hookA, tp.answer(hookA, headers(0, 1500*time.Millisecond), 204, nil)); !called || err != nil {
		t.Fatalf("second send: called %v, err %v", called, err)
	}
	if s := tp.clock.slept(); len(s) != 0 {
		t.Fatalf("slept %v before the limit was reached", s)
	}
	// The bucket is empty: the third is held in-process until the reset
	// (1.5 s + margin is within MaxHold), then sent.
	called, err := tp.sendVia(t, hookA, tp.answer(hookA, headers(4, 2*time.Second), 204, nil))
	if !called || err != nil {
		t.Fatalf("third send: called %v, err %v", called, err)
	}
	if s := tp.clock.slept(); len(s) != 1 || s[0] != 1500*time.Millisecond+resetMargin {
		t.Errorf("slept %v, want [%s]", s, 1500*time.Millisecond+resetMargin)
	}
	if got := tp.waits("discord", "destination"); got != 1 {
		t.Errorf("pacing waits{discord,destination} = %v, want 1", got)
	}
	if n := testutil.CollectAndCount(tp.m.PacingWait); n != 2 {
		t.Errorf("pacing wait histogram series = %d, want 2 (discord, telegram)", n)
	}
}

func TestDiscordLongWaitReturnsPaced(t *testing.T) {
	tp := newTestPacer(t, Config{MaxHold: time.Second})
	if _, err := tp.sendVia(t, hookA, tp.answer(hookA, headers(0, 3*time.Second), 204, nil)); err != nil {
		t.Fatal(err)
	}
	called, err := tp.sendVia(t, hookA, nil)
	if called {
		t.Fatal("send went out although the bucket is empty for longer than MaxHold")
	}
	if after := pacedAfter(t, err); after != 3*time.Second+resetMargin {
		t.Errorf("After = %s, want %s", after, 3*time.Second+resetMargin)
	}
	if errors.Is(err, herald.ErrPermanent) {
		t.Error("a paced wait must not be permanent")
	}
	if s := tp.clock.slept(); len(s) != 0 {
		t.Errorf("slept %v for a wait longer than MaxHold", s)
	}
	// A send that finds the bucket still waiting for a response gives the
	// job back at once: it never holds the worker. The jobs given back
	// return spread out, MaxInFlight per unknownRetry, not all together.
	tp.clock.Advance(3*time.Second + resetMargin)
	g := tp.acquireDiscord(hookA, tp.clock.Now(), time.Second) // opens the next window, in flight
	var afters []time.Duration
	for range 4 {
		if g := tp.acquireDiscord(hookA, tp.clock.Now(), time.Second); !g.ok {
			afters = append(afters, g.wait)
		}
	}
	// The last one first waits answerWait for an answer (the fake clock
	// moves on meanwhile), then goes back for its place in the spread.
	_, err = tp.sendVia(t, hookA, nil)
	afters = append(afters, pacedAfter(t, err)+answerWait)
	step := unknownRetry / DefaultMaxInFlight
	for i, after := range afters {
		if want := unknownRetry + time.Duration(i)*step; after != want {
			t.Errorf("job %d given back for %s, want %s", i+1, after, want)
		}
	}
	tp.releaseDiscord(g, true, nil, tp.clock.Now(), false)
}

func TestDiscordOutOfOrderResponses(t *testing.T) {
	tp := newTestPacer(t, Config{})
	now := tp.clock.Now()
	first := tp.acquireDiscord(hookA, now, 0)
	tp.ObserveDiscord(hookA, headers(4, 2*time.Second), 204)
	tp.releaseDiscord(first, true, nil, now, false)
	// Two sends in flight; Discord counts both (3 and 2 left), but the
	// answers arrive in the other order.
	a := tp.acquireDiscord(hookA, now, 0)
	b := tp.acquireDiscord(hookA, now, 0)
	tp.ObserveDiscord(hookA, headers(2, 2*time.Second), 204)
	tp.releaseDiscord(b, true, nil, now, false)
	tp.ObserveDiscord(hookA, headers(3, 2*time.Second), 204) // stale
	tp.releaseDiscord(a, true, nil, now, false)
	// Exactly two are left: the stale answer neither adds nor loses one.
	for i := range 2 {
		if g := tp.acquireDiscord(hookA, now, 0); !g.ok {
			t.Fatalf("send %d: %+v, want ok", i+4, g)
		}
	}
	if g := tp.acquireDiscord(hookA, now, 0); g.ok {
		t.Fatal("sixth send in a 5-request window allowed")
	}
}

func TestDiscordOtherSendersCounted(t *testing.T) {
	tp := newTestPacer(t, Config{})
	now := tp.clock.Now()
	// Another process used 3 of the window: our first answer says 1 left.
	g := tp.acquireDiscord(hookA, now, 0)
	tp.ObserveDiscord(hookA, headers(1, 2*time.Second), 204)
	tp.releaseDiscord(g, true, nil, now, false)
	if g := tp.acquireDiscord(hookA, now, 0); !g.ok {
		t.Fatal("the one request left refused")
	}
	if g := tp.acquireDiscord(hookA, now, 0); g.ok {
		t.Fatal("a request beyond what Discord reported left allowed")
	}
}

func TestDiscordUnsentReleaseGivesSlotBack(t *testing.T) {
	tp := newTestPacer(t, Config{})
	if _, err := tp.sendVia(t, hookA, tp.answer(hookA, headers(1, 2*time.Second), 204, nil)); err != nil {
		t.Fatal(err)
	}
	// An inner middleware (a breaker) refuses without sending: the last slot
	// stays available.
	open := &herald.RetryAfterError{After: 5 * time.Second, Err: herald.ErrCircuitOpen}
	if _, err := tp.sendVia(t, hookA, func() error { return open }); !errors.Is(err, herald.ErrCircuitOpen) {
		t.Fatalf("err = %v, want the breaker's error unchanged", err)
	}
	if g := tp.acquireDiscord(hookA, tp.clock.Now(), 0); !g.ok {
		t.Fatalf("slot not given back: %+v", g)
	}
	// ... and the breaker's wait did not block the webhook.
	tp.clock.Advance(2*time.Second + resetMargin)
	if called, err := tp.sendVia(t, hookA, nil); !called || err != nil {
		t.Fatalf("after the reset: called %v, err %v", called, err)
	}
}

func TestDiscord429BlocksWebhook(t *testing.T) {
	tp := newTestPacer(t, Config{})
	limited := &herald.RetryAfterError{After: 1500 * time.Millisecond, Err: &herald.DestinationError{Channel: herald.ChannelDiscord, StatusCode: 429}}
	rl := channels.RateLimit{Bucket: fake.DiscordBucket, Limit: 5, Remaining: 0, ResetAfter: 1500 * time.Millisecond, Scope: "user", Present: true}
	if _, err := tp.sendVia(t, hookA, tp.answer(hookA, rl, http.StatusTooManyRequests, limited)); err != limited {
		t.Fatalf("err = %v, want the 429 unchanged", err)
	}
	// The webhook waits out the 429; another does not.
	g := tp.acquireDiscord(hookA, tp.clock.Now(), 0)
	if g.ok || g.wait < 1500*time.Millisecond {
		t.Fatalf("after a 429: %+v, want a wait of at least 1.5s", g)
	}
	if g := tp.acquireDiscord(hookB, tp.clock.Now(), 0); !g.ok {
		t.Fatalf("other webhook blocked by a per-webhook 429: %+v", g)
	}
	if called, err := tp.sendVia(t, hookA, nil); !called || err != nil {
		t.Fatalf("held send: called %v, err %v", called, err)
	}
}

func TestDiscordGlobal429PausesAll(t *testing.T) {
	tp := newTestPacer(t, Config{})
	global := &herald.RetryAfterError{After: 5 * time.Second, Global: true, Err: &herald.DestinationError{Channel: herald.ChannelDiscord, StatusCode: 429}}
	rl := channels.RateLimit{Global: true, Scope: "global", Present: true}
	if _, err := tp.sendVia(t, hookA, tp.answer(hookA, rl, http.StatusTooManyRequests, global)); err != global {
		t.Fatalf("err = %v", err)
	}
	called, err := tp.sendVia(t, hookB, nil)
	if called {
		t.Fatal("another webhook sent during a global pause")
	}
	if after := pacedAfter(t, err); after != 5*time.Second {
		t.Errorf("After = %s, want 5s", after)
	}
	if got := tp.waits("discord", "global"); got != 1 {
		t.Errorf("pacing waits{discord,global} = %v, want 1", got)
	}
	// The metric shows the pause running out.
	if got := testutil.ToFloat64(tp.m.GlobalPause); got != 5 {
		t.Errorf("herald_global_pause_seconds = %v, want 5", got)
	}
	tp.clock.Advance(2 * time.Second)
	if got := testutil.ToFloat64(tp.m.GlobalPause); got != 3 {
		t.Errorf("herald_global_pause_seconds 2 s later = %v, want 3", got)
	}
	if !strings.Contains(tp.logs.String(), "discord global rate limit") {
		t.Errorf("no log line for the global pause: %s", tp.logs.String())
	}
	tp.clock.Advance(3 * time.Second)
	if called, err := tp.sendVia(t, hookB, nil); !called || err != nil {
		t.Fatalf("after the pause: called %v, err %v", called, err)
	}
	if got := testutil.ToFloat64(tp.m.GlobalPause); got != 0 {
		t.Errorf("herald_global_pause_seconds after the pause = %v, want 0", got)
	}
}

func TestObserveCloudflareBanPauses(t *testing.T) {
	tp := newTestPacer(t, Config{})
	// A 429 without rate-limit headers: Cloudflare banning the IP.
	tp.ObserveDiscord(hookA, channels.RateLimit{Covers: channels.LimitBan}, http.StatusTooManyRequests)
	g := tp.acquireDiscord(hookB, tp.clock.Now(), 0)
	if g.ok || g.scope != scopeGlobal || g.wait != globalPauseGuess {
		t.Fatalf("after a ban answer: %+v, want a global pause of %s", g, globalPauseGuess)
	}
}

func TestDiscordGlobalRate(t *testing.T) {
	tp := newTestPacer(t, Config{Discord: DiscordConfig{GlobalRate: 3}, MaxHold: 2 * time.Second})
	hooks := []string{"discord:11", "discord:12", "discord:13", "discord:14", "discord:15"}
	start := tp.clock.Now()
	for _, h := range hooks[:3] {
		if called, err := tp.sendVia(t, h, nil); !called || err != nil {
			t.Fatalf("send to %s: called %v, err %v", h, called, err)
		}
	}
	if s := tp.clock.slept(); len(s) != 0 {
		t.Fatalf("slept %v within the global rate", s)
	}
	// The fourth in the same second waits for the first to leave the window.
	if called, err := tp.sendVia(t, hooks[3], nil); !called || err != nil {
		t.Fatalf("fourth send: called %v, err %v", called, err)
	}
	if s := tp.clock.slept(); len(s) != 1 || s[0] != time.Second {
		t.Errorf("slept %v, want [1s]", s)
	}
	if got := tp.clock.Now().Sub(start); got != time.Second {
		t.Errorf("fourth send at +%s, want +1s", got)
	}
	if got := tp.waits("discord", "global"); got != 1 {
		t.Errorf("pacing waits{discord,global} = %v, want 1", got)
	}
	// With MaxHold shorter than the wait, the job is given back, and the
	// webhook's reservation with it.
	tp2 := newTestPacer(t, Config{Discord: DiscordConfig{GlobalRate: 1}, MaxHold: 100 * time.Millisecond})
	tp2.sendVia(t, hooks[0], nil)
	called, err := tp2.sendVia(t, hooks[1], nil)
	if called || pacedAfter(t, err) != time.Second {
		t.Fatalf("called %v, err %v; want paced for 1s", called, err)
	}
	if g := tp2.acquireDiscord(hooks[1], tp2.clock.Now(), time.Hour); !g.ok {
		t.Fatalf("webhook reservation not released after a global refusal: %+v", g)
	}
}

func TestDiscordInvalidBudget(t *testing.T) {
	tp := newTestPacer(t, Config{Discord: DiscordConfig{InvalidBudget: 3, InvalidWindow: time.Minute}})
	suspended := func() float64 { return testutil.ToFloat64(tp.m.Suspended.WithLabelValues("discord")) }
	// Not invalid: successes, 404s, 429s of scope shared.
	tp.ObserveDiscord(hookA, headers(4, time.Second), 204)
	tp.ObserveDiscord(hookA, channels.RateLimit{}, http.StatusNotFound)
	tp.ObserveDiscord(hookA, channels.RateLimit{Scope: "shared", Present: true}, http.StatusTooManyRequests)
	// Invalid: 401, 403, a user 429. The 429 lands 30 s later.
	tp.ObserveDiscord(hookA, channels.RateLimit{}, http.StatusUnauthorized)
	tp.ObserveDiscord(hookB, channels.RateLimit{}, http.StatusForbidden)
	if suspended() != 0 {
		t.Fatal("suspended below the budget")
	}
	tp.clock.Advance(30 * time.Second)
	tp.ObserveDiscord(hookB, channels.RateLimit{Scope: "user", Present: true, Limit: 5}, http.StatusTooManyRequests)
	if got := testutil.ToFloat64(tp.m.InvalidResponses.WithLabelValues("discord")); got != 3 {
		t.Errorf("invalid responses = %v, want 3", got)
	}
	spent := func() float64 { return testutil.ToFloat64(tp.m.InvalidSpent) }
	if got, budget := spent(), testutil.ToFloat64(tp.m.InvalidBudget.WithLabelValues("discord")); got != 3 || budget != 3 {
		t.Errorf("herald_invalid_budget_spent = %v of herald_invalid_budget %v, want 3 of 3", got, budget)
	}
	if suspended() != 1 {
		t.Fatal("not suspended at the budget")
	}
	if n := strings.Count(tp.logs.String(), "discord suspended"); n != 1 {
		t.Errorf("%d suspension lines, want 1: %s", n, tp.logs.String())
	}

	// Every webhook waits until the first two leave the window (a minute
	// after they came, at the end of their 1 s bucket).
	called, err := tp.sendVia(t, "discord:3333", nil)
	if called {
		t.Fatal("sent while suspended")
	}
	after := pacedAfter(t, err)
	if after < 29*time.Second || after > 31*time.Second {
		t.Errorf("After = %s, want about 30s", after)
	}
	if got := tp.waits("discord", "invalid_budget"); got != 1 {
		t.Errorf("pacing waits{discord,invalid_budget} = %v, want 1", got)
	}
	tp.sendVia(t, "discord:3333", nil)
	if n := strings.Count(tp.logs.String(), "discord suspended"); n != 1 {
		t.Errorf("%d suspension lines after more refused sends, want 1", n)
	}

	tp.clock.Advance(after)
	if called, err := tp.sendVia(t, "discord:3333", nil); !called || err != nil {
		t.Fatalf("after the window cleared: called %v, err %v", called, err)
	}
	if suspended() != 0 {
		t.Error("still suspended after the window cleared")
	}
	// The first two left the window without an event to set a gauge on.
	if got := spent(); got != 1 {
		t.Errorf("herald_invalid_budget_spent after the window cleared = %v, want 1", got)
	}
	logs := tp.logs.String()
	if n := strings.Count(logs, "discord resumed"); n != 1 {
		t.Errorf("%d resume lines, want 1: %s", n, logs)
	}
	if !strings.Contains(logs, `"level":"WARN","msg":"discord suspended`) || !strings.Contains(logs, `"level":"INFO","msg":"discord resumed`) {
		t.Errorf("want a Warn line at suspension and an Info line at resumption: %s", logs)
	}
}

func TestDiscordCancelDuringHold(t *testing.T) {
	tp := newTestPacer(t, Config{})
	tp.sendVia(t, hookA, tp.answer(hookA, headers(0, time.Second), 204, nil))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	h := tp.Middleware(keyOfTarget)(func(context.Context, *consumer.Delivery) error {
		t.Error("sent after the context ended")
		return nil
	})
	if err := h(ctx, discordDelivery(hookA)); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if g := tp.acquireDiscord(hookA, tp.clock.Now().Add(time.Second+resetMargin), 0); !g.ok {
		t.Fatalf("reservation leaked: %+v", g)
	}
}

func TestMiddlewarePassesThrough(t *testing.T) {
	tp := newTestPacer(t, Config{Discord: DiscordConfig{GlobalRate: 1}, MaxHold: time.Millisecond})
	for _, key := range []string{"discord:invalid", "", "telegram:invalid:0123"} {
		for range 3 {
			d := discordDelivery(key)
			if strings.HasPrefix(key, "telegram") {
				d.Notification.Channel = herald.ChannelTelegram
				d.Notification.Target = herald.Target{BotToken: key}
			}
			called := false
			err := tp.Middleware(keyOfTarget)(func(context.Context, *consumer.Delivery) error {
				called = true
				return nil
			})(context.Background(), d)
			if !called || err != nil {
				t.Fatalf("key %q: called %v, err %v; want passed through", key, called, err)
			}
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("Middleware(nil) did not panic")
		}
	}()
	tp.Middleware(nil)
}

func TestDiscordPanicReleasesReservation(t *testing.T) {
	tp := newTestPacer(t, Config{})
	h := tp.Middleware(keyOfTarget)(func(context.Context, *consumer.Delivery) error { panic("boom") })
	func() {
		defer func() { _ = recover() }()
		_ = h(context.Background(), discordDelivery(hookA))
	}()
	// Nothing learned yet, so one send at a time: the panicked one must not
	// still count as in flight.
	if g := tp.acquireDiscord(hookA, tp.clock.Now(), 0); !g.ok {
		t.Fatalf("reservation leaked by a panic: %+v", g)
	}
}

func TestDiscordHandsBackToComingWindows(t *testing.T) {
	tp := newTestPacer(t, Config{MaxHold: 100 * time.Millisecond})
	// A 5-per-2-s bucket, all used.
	for i := range 5 {
		if _, err := tp.sendVia(t, hookA, tp.answer(hookA, headers(4-i, 2*time.Second), 204, nil)); err != nil {
			t.Fatal(err)
		}
	}
	// Twelve more: each is handed back to come back when a window has room
	// for it, five per window, rather than all at the next reset.
	next := 2*time.Second + resetMargin
	windowEvery := 2*time.Second + resetMargin
	for i := range 12 {
		called, err := tp.sendVia(t, hookA, nil)
		if called {
			t.Fatalf("send %d went out in a full window", i)
		}
		want := next + time.Duration(i/5)*windowEvery
		if after := pacedAfter(t, err); after != want {
			t.Errorf("send %d: After = %s, want %s", i, after, want)
		}
	}
	// A send that can wait for the next window holds for it, whatever the
	// slots given out.
	tp.clock.Advance(next - 50*time.Millisecond)
	if called, err := tp.sendVia(t, hookA, nil); !called || err != nil {
		t.Fatalf("send just before the reset: called %v, err %v", called, err)
	}
	if s := tp.clock.slept(); len(s) != 1 || s[0] != 50*time.Millisecond {
		t.Errorf("slept %v, want [50ms]", s)
	}
}

// TestObserveRoute429DoesNotPause: a 429 that channels.Classify429 calls a
// route's (Discord's body says "global": false, even with the rate-limit
// headers stripped) holds no other webhook.
func TestObserveRoute429DoesNotPause(t *testing.T) {
	tp := newTestPacer(t, Config{})
	tp.ObserveDiscord(hookA, channels.RateLimit{Covers: channels.LimitRoute}, http.StatusTooManyRequests)
	if g := tp.acquireDiscord(hookB, tp.clock.Now(), 0); !g.ok {
		t.Fatalf("another webhook after a route 429: %+v, want it sent at once", g)
	}
}

// TestRoute429ThroughTheChannel is the attack in issue 11: a webhook whose
// 429 carries Discord's route body ("global": false) but no rate-limit
// headers must not pause every Discord send. It goes through the real
// channel and the fake, so the one classifier decides for both.
func TestRoute429ThroughTheChannel(t *testing.T) {
	tp := newTestPacer(t, Config{})
	f := fake.NewDiscord(t)
	f.Script(func(r fake.DiscordRequest, _ int) fake.Response {
		return fake.Response{Status: http.StatusTooManyRequests, Body: `{"message":"You are being rate limited.","retry_after":17,"global":false}`}
	})
	dc, err := channels.NewDiscord(channels.DiscordConfig{
		AllowedHosts: []string{"127.0.0.1"}, AllowHTTP: true, Observe: tp.ObserveDiscord,
	}, channels.NewHTTPClient(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	err = dc.Send(context.Background(), herald.Notification{
		Target:  herald.Target{WebhookURL: f.WebhookURL("1111", "attacker-token")},
		Message: herald.Message{Text: "x"},
	})
	var ra *herald.RetryAfterError
	if !errors.As(err, &ra) || ra.Global || ra.After != 17*time.Second {
		t.Fatalf("Send = %v, want a 17 s route retry-after", err)
	}
	if g := tp.acquireDiscord("discord:2222", tp.clock.Now(), 0); !g.ok {
		t.Fatalf("a victim's webhook after the attacker's route 429: %+v, want it sent at once", g)
	}
}

// TestDiscordInFlightCap: with MaxInFlight sends to a webhook on their way,
// the next is given back at once (no worker held) even though its bucket has
// room; other webhooks are untouched, and an answer frees a slot.
func TestDiscordInFlightCap(t *testing.T) {
	tp := newTestPacer(t, Config{MaxInFlight: 2})
	now := tp.clock.Now()
	first := tp.acquireDiscord(hookA, now, time.Second)
	tp.ObserveDiscord(hookA, headers(4, 2*time.Second), http.StatusNoContent) // learned: room for 4 more
	second := tp.acquireDiscord(hookA, now, time.Second)
	if !first.ok || !second.ok {
		t.Fatalf("first two sends: %+v %+v, want both ok", first, second)
	}
	called, err := tp.sendVia(t, hookA, nil)
	if called {
		t.Fatal("a third send went out with two in flight")
	}
	if after := pacedAfter(t, err); after != unknownRetry {
		t.Errorf("After = %s, want %s", after, unknownRetry)
	}
	// It waited a moment for an answer, once, and no longer.
	if s := tp.clock.slept(); len(s) != 1 || s[0] != answerWait {
		t.Errorf("the worker slept %v waiting for a busy destination, want one %s", s, answerWait)
	}
	if g := tp.acquireDiscord(hookB, now, time.Second); !g.ok {
		t.Fatalf("another webhook: %+v, want ok", g)
	}
	tp.releaseDiscord(first, true, nil, now, false)
	if g := tp.acquireDiscord(hookA, now, time.Second); !g.ok {
		t.Fatalf("after an answer: %+v, want ok", g)
	}
}

// A wait that fits MaxHold but ends after ctx's deadline (a job tried
// before it is stored, whose request waits no longer) is not slept: the job
// is given back, and nothing is sent.
func TestDiscordHoldEndsByTheDeadline(t *testing.T) {
	tp := newTestPacer(t, Config{Discord: DiscordConfig{GlobalRate: 1}, MaxHold: 2 * time.Second})
	if called, err := tp.sendVia(t, "discord:21", nil); !called || err != nil {
		t.Fatalf("first send: called %v, err %v", called, err)
	}
	called := false
	h := tp.Middleware(keyOfTarget)(func(context.Context, *consumer.Delivery) error { called = true; return nil })
	// The deadline is on the test's clock; a context.WithDeadline would
	// take it as real time, long past, and be over already.
	ctx := deadlineOnly{Context: context.Background(), at: tp.clock.Now().Add(500 * time.Millisecond)}
	err := h(ctx, discordDelivery("discord:22"))
	if called || pacedAfter(t, err) != time.Second {
		t.Fatalf("called %v, err %v; want paced for 1s, not sent", called, err)
	}
	if s := tp.clock.slept(); len(s) != 0 {
		t.Errorf("slept %v past the deadline", s)
	}
	// Without a deadline the same wait is held, as before.
	if called, err := tp.sendVia(t, "discord:22", nil); !called || err != nil {
		t.Fatalf("without a deadline: called %v, err %v; want held, then sent", called, err)
	}
}

// deadlineOnly is a context that has a deadline but never ends: the pacer
// reads the deadline, on its own clock, and the context stays live.
type deadlineOnly struct {
	context.Context
	at time.Time
}

func (c deadlineOnly) Deadline() (time.Time, bool) { return c.at, true }
