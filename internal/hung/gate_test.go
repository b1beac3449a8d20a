package hung

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/consumer"
	"github.com/heraldrelay/herald/internal/metrics"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// testGate is a Gate on a settable clock, with its metrics.
type testGate struct {
	*Gate
	clock *testkit.Clock
	m     *metrics.Metrics
	mw    consumer.Middleware
}

func newTestGate(t *testing.T, cfg Config) *testGate {
	t.Helper()
	m := metrics.New(prometheus.NewRegistry())
	g, err := New(cfg, m)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	c := testkit.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	g.now = c.Now
	return &testGate{Gate: g, clock: c, m: m, mw: g.Middleware(testDest)}
}

// testDest keys a test notification by its webhook URL (Discord) or chat id
// (Telegram), which the tests set to the key itself.
func testDest(n herald.Notification) string {
	if n.Channel == herald.ChannelTelegram {
		return n.Target.ChatID
	}
	return n.Target.WebhookURL
}

func delivery(ch herald.Channel, key string) *consumer.Delivery {
	n := herald.Notification{JobID: "job", Channel: ch}
	if ch == herald.ChannelTelegram {
		n.Target.ChatID = key
	} else {
		n.Target.WebhookURL = key
	}
	return &consumer.Delivery{Notification: n}
}

// send runs one send to the Discord destination key through the gate; next
// runs in its place.
func (g *testGate) send(key string, next consumer.Handler) error {
	return g.mw(next)(context.Background(), delivery(herald.ChannelDiscord, key))
}

// answer sends to key and lets the destination answer with err after took.
func (g *testGate) answer(key string, took time.Duration, err error) error {
	return g.send(key, func(context.Context, *consumer.Delivery) error {
		g.clock.Advance(took)
		return err
	})
}

// hang starts a send to key whose destination does not answer until the
// returned release is called with the answer; release returns the gate's
// result. When the gate refuses the send, hang returns that error and a nil
// release.
func (g *testGate) hang(t *testing.T, key string) (release func(error) error, refused error) {
	t.Helper()
	entered, answer, done := make(chan struct{}), make(chan error), make(chan error, 1)
	go func() {
		done <- g.send(key, func(context.Context, *consumer.Delivery) error {
			close(entered)
			return <-answer
		})
	}()
	select {
	case <-entered:
		return func(err error) error { answer <- err; return <-done }, nil
	case err := <-done:
		return nil, err
	case <-time.After(10 * time.Second):
		t.Fatalf("send to %s neither entered nor refused", key)
		return nil, nil
	}
}

// state is what the gate knows of key: "new", "trusted" or "suspect".
func (g *testGate) state(key string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	v, ok := g.known.Peek(g.hash(key))
	switch {
	case !ok:
		return "new"
	case v == trusted:
		return "trusted"
	case v > g.clock.Now().UnixNano():
		return "suspect"
	}
	return "new (suspicion over)"
}

func (g *testGate) refusedCount(ch herald.Channel) float64 {
	return testutil.ToFloat64(g.m.SuspectRefused.WithLabelValues(string(ch)))
}

func (g *testGate) unansweredCount(ch herald.Channel) float64 {
	return testutil.ToFloat64(g.m.UnansweredSends.WithLabelValues(string(ch)))
}

// wantRefused checks that err is the gate's refusal: a RetryAfterError
// matching herald.ErrPaced, After at least refusedWait and, with the
// returns of the refusals before it spread at Limit a second, under a
// minute.
func wantRefused(t *testing.T, err error, sendTimeout time.Duration) {
	t.Helper()
	var ra *herald.RetryAfterError
	if !errors.As(err, &ra) || !errors.Is(err, herald.ErrPaced) || !errors.Is(err, ErrShareFull) {
		t.Fatalf("err = %v, want a *herald.RetryAfterError wrapping herald.ErrPaced and ErrShareFull", err)
	}
	if ra.Global {
		t.Errorf("refusal is Global, want per destination")
	}
	_ = sendTimeout
	if ra.After < refusedWait || ra.After >= time.Minute {
		t.Errorf("After = %s, want in [%s, 1m)", ra.After, refusedWait)
	}
}

// TestRefusedJobsReturnSpread: jobs refused a place come back no sooner than
// refusedWait, and, however many are refused at once, at most Limit a
// second, not all together.
func TestRefusedJobsReturnSpread(t *testing.T) {
	g, err := New(Config{Workers: 8, SendTimeout: 10 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	g.now = func() time.Time { return now }
	step := time.Second / time.Duration(g.Limit())
	for i := range 20 {
		w := g.spreadWait()
		lo := refusedWait + time.Duration(i)*step
		if w < lo || w >= lo+50*time.Millisecond {
			t.Errorf("refusal %d returns in %s, want in [%s, %s)", i, w, lo, lo+50*time.Millisecond)
		}
	}
}

// TestSuspectSendsHoldAtMostTheShare fills the share with sends to new
// destinations that do not answer: the next new destination's job is given
// back without a send, while a destination known to answer goes on; a place
// that frees lets the next suspect send through.
func TestSuspectSendsHoldAtMostTheShare(t *testing.T) {
	t.Parallel()
	const sendTimeout = 4 * time.Second
	g := newTestGate(t, Config{Workers: 5, Share: 0.5, SendTimeout: sendTimeout})
	if g.Limit() != 2 {
		t.Fatalf("Limit = %d, want ⌊0.5 × 5⌋ = 2", g.Limit())
	}
	if err := g.answer("discord:healthy", 100*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	if s := g.state("discord:healthy"); s != "trusted" {
		t.Fatalf("healthy after an answer: %s, want trusted", s)
	}

	r1, err := g.hang(t, "discord:hung-1")
	if err != nil {
		t.Fatal(err)
	}
	r2, err := g.hang(t, "discord:hung-2")
	if err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(g.m.SuspectSends); got != 2 {
		t.Errorf("herald_suspect_sends = %v, want 2", got)
	}
	called := false
	err = g.send("discord:hung-3", func(context.Context, *consumer.Delivery) error { called = true; return nil })
	wantRefused(t, err, sendTimeout)
	if called {
		t.Error("a refused job was sent")
	}
	if got := g.refusedCount(herald.ChannelDiscord); got != 1 {
		t.Errorf("herald_suspect_refused_total = %v, want 1", got)
	}
	// Two healthy sends at once while the share is full: neither waits.
	rh, err := g.hang(t, "discord:healthy")
	if err != nil {
		t.Fatalf("healthy destination refused while the share is full: %v", err)
	}
	if err := g.answer("discord:healthy", 10*time.Millisecond, nil); err != nil {
		t.Fatalf("healthy destination refused while the share is full: %v", err)
	}
	if err := rh(nil); err != nil {
		t.Fatal(err)
	}

	// One hung send times out: its place frees, its destination is suspect.
	g.clock.Advance(sendTimeout)
	timeout := fmt.Errorf("discord: send: %w", context.DeadlineExceeded)
	if err := r1(timeout); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the gate changed next's error: %v", err)
	}
	if s := g.state("discord:hung-1"); s != "suspect" {
		t.Errorf("hung-1 after a timeout: %s, want suspect", s)
	}
	if got := g.unansweredCount(herald.ChannelDiscord); got != 1 {
		t.Errorf("herald_unanswered_sends_total = %v, want 1", got)
	}
	r3, err := g.hang(t, "discord:hung-3")
	if err != nil {
		t.Fatalf("a freed place was not given: %v", err)
	}
	_, err = g.hang(t, "discord:hung-1")
	wantRefused(t, err, sendTimeout)

	_ = r2(timeout)
	_ = r3(timeout)
	if got := testutil.ToFloat64(g.m.SuspectSends); got != 0 {
		t.Errorf("herald_suspect_sends = %v after every send returned, want 0", got)
	}
}

// TestPlacesKeptForNewDestinations: destinations that went unanswered
// lately may take only three of four places; the fourth is kept for new
// destinations, so a new one is sent to while a backlog of unanswered ones
// waits.
func TestPlacesKeptForNewDestinations(t *testing.T) {
	t.Parallel()
	g := newTestGate(t, Config{Workers: 8, Share: 0.5, After: time.Second})
	for i := range 5 {
		_ = g.answer(fmt.Sprintf("discord:hung-%d", i), time.Second, nil)
	}
	var releases []func(error) error
	for i := range 3 {
		r, err := g.hang(t, fmt.Sprintf("discord:hung-%d", i))
		if err != nil {
			t.Fatalf("unanswered destination %d refused with places free: %v", i, err)
		}
		releases = append(releases, r)
	}
	_, err := g.hang(t, "discord:hung-3")
	wantRefused(t, err, consumer.DefaultSendTimeout)
	r, err := g.hang(t, "discord:new")
	if err != nil {
		t.Fatalf("new destination refused the place kept for it: %v", err)
	}
	releases = append(releases, r)
	_, err = g.hang(t, "discord:new-2")
	wantRefused(t, err, consumer.DefaultSendTimeout)
	if got := testutil.ToFloat64(g.m.SuspectSends); got != 4 {
		t.Errorf("herald_suspect_sends = %v, want 4", got)
	}
	// The new destination answers: its place frees, and it is trusted.
	_ = releases[3](nil)
	if s := g.state("discord:new"); s != "trusted" {
		t.Errorf("new destination after an answer: %s, want trusted", s)
	}
	_, err = g.hang(t, "discord:hung-4")
	wantRefused(t, err, consumer.DefaultSendTimeout)
	for _, r := range releases[:3] {
		_ = r(nil)
	}
	if g := testutil.ToFloat64(g.m.SuspectSends); g != 0 {
		t.Errorf("herald_suspect_sends = %v after every send returned, want 0", g)
	}
}

// TestOutcomeTeaches is what one send to a new destination teaches: an
// answer in time makes it trusted, no answer in time suspect, and Herald's
// own refusals and a shutdown nothing.
func TestOutcomeTeaches(t *testing.T) {
	t.Parallel()
	const after = 3 * time.Second
	for _, tc := range []struct {
		name string
		took time.Duration
		err  error
		ctx  func() context.Context
		want string
	}{
		{name: "delivered", took: 200 * time.Millisecond, want: "trusted"},
		{name: "error status", took: 200 * time.Millisecond, err: &herald.DestinationError{Channel: herald.ChannelDiscord, StatusCode: http.StatusBadGateway}, want: "trusted"},
		// A destination that said "never" is forgotten: nothing will be
		// sent to it again, and a flood of dead webhooks must not fill the
		// map.
		{name: "permanent", took: 200 * time.Millisecond, err: herald.Permanent(&herald.DestinationError{Channel: herald.ChannelDiscord, StatusCode: http.StatusNotFound}), want: "new"},
		{name: "429", took: 200 * time.Millisecond, err: &herald.RetryAfterError{After: time.Second, Err: &herald.DestinationError{StatusCode: 429}}, want: "trusted"},
		{name: "connection refused", took: time.Millisecond, err: errors.New("discord: send: connection refused"), want: "trusted"},
		{name: "send timeout", took: after - time.Second, err: fmt.Errorf("discord: send: %w", context.DeadlineExceeded), want: "suspect"},
		{name: "client timeout", took: after - time.Second, err: timeoutError{}, want: "suspect"},
		{name: "answered too late", took: after, want: "suspect"},
		{name: "paced", took: after, err: &herald.RetryAfterError{After: time.Second, Err: herald.ErrPaced}, want: "new"},
		{name: "breaker open", took: 0, err: &herald.RetryAfterError{After: time.Second, Err: herald.ErrCircuitOpen}, want: "new"},
		{name: "invalid target", took: 0, err: herald.Permanent(herald.ErrInvalidTarget), want: "new"},
		{name: "shutdown", took: after, err: context.Canceled, ctx: func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, want: "new"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := newTestGate(t, Config{After: after})
			ctx := context.Background()
			if tc.ctx != nil {
				ctx = tc.ctx()
			}
			err := g.mw(func(context.Context, *consumer.Delivery) error {
				g.clock.Advance(tc.took)
				return tc.err
			})(ctx, delivery(herald.ChannelDiscord, "discord:d"))
			if err != tc.err {
				t.Errorf("err = %v, want next's error %v unchanged", err, tc.err)
			}
			if s := g.state("discord:d"); s != tc.want {
				t.Errorf("state = %s, want %s", s, tc.want)
			}
		})
	}
}

type timeoutError struct{}

func (timeoutError) Error() string { return "discord: send: Client.Timeout exceeded" }
func (timeoutError) Timeout() bool { return true }

// TestSuspicionLastsFor: answers while a destination is suspect do not
// clear it (a destination that answers one send in a few stays gated); once
// Config.For has passed since its last unanswered send it counts as new, and
// its next answer makes it trusted. A trusted destination that goes
// unanswered is suspect again.
func TestSuspicionLastsFor(t *testing.T) {
	t.Parallel()
	const forDur = 10 * time.Minute
	g := newTestGate(t, Config{For: forDur, After: time.Second})
	const key = "discord:flaky"
	_ = g.answer(key, 2*time.Second, nil) // too late
	if s := g.state(key); s != "suspect" {
		t.Fatalf("after a late answer: %s, want suspect", s)
	}
	g.clock.Advance(forDur / 2)
	_ = g.answer(key, time.Millisecond, nil)
	if s := g.state(key); s != "suspect" {
		t.Fatalf("answered while suspect: %s, want still suspect", s)
	}
	g.clock.Advance(forDur / 2)
	if s := g.state(key); s != "new (suspicion over)" {
		t.Fatalf("after For: %s, want new", s)
	}
	_ = g.answer(key, time.Millisecond, nil)
	if s := g.state(key); s != "trusted" {
		t.Fatalf("answered after For: %s, want trusted", s)
	}
	_ = g.answer(key, time.Second, nil)
	if s := g.state(key); s != "suspect" {
		t.Fatalf("trusted, then unanswered in time: %s, want suspect", s)
	}
}

// TestShareCountsEveryChannel: Telegram chats and Discord webhooks share
// one share, since they share the workers; jobs the Gate does not own
// (invalid targets, other channels) are never refused.
func TestShareCountsEveryChannel(t *testing.T) {
	t.Parallel()
	g := newTestGate(t, Config{Workers: 2, Share: 0.5})
	release, err := g.hang(t, "discord:hung")
	if err != nil {
		t.Fatal(err)
	}
	ok := func(context.Context, *consumer.Delivery) error { return nil }
	err = g.mw(ok)(context.Background(), delivery(herald.ChannelTelegram, "telegram:1.abc:def"))
	wantRefused(t, err, consumer.DefaultSendTimeout)
	if got := g.refusedCount(herald.ChannelTelegram); got != 1 {
		t.Errorf("telegram refusals = %v, want 1", got)
	}
	for _, d := range []*consumer.Delivery{
		delivery(herald.ChannelDiscord, "discord:invalid"),
		delivery(herald.ChannelTelegram, "telegram:invalid:token"),
		delivery(herald.ChannelDiscord, ""),
		delivery(herald.Channel("pigeon"), "pigeon:1"),
	} {
		if err := g.mw(ok)(context.Background(), d); err != nil {
			t.Errorf("%s %q: %v, want passed through", d.Notification.Channel, testDest(d.Notification), err)
		}
	}
	_ = release(nil)
}

// TestPanicFreesThePlace: a send that panics gives its place back (the
// consumer's recoverer, further out, turns the panic into an error) and
// teaches nothing.
func TestPanicFreesThePlace(t *testing.T) {
	t.Parallel()
	g := newTestGate(t, Config{Workers: 2, Share: 0.5})
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the panic did not reach the caller")
			}
		}()
		_ = g.send("discord:boom", func(context.Context, *consumer.Delivery) error { panic("boom") })
	}()
	if s := g.state("discord:boom"); s != "new" {
		t.Errorf("state after a panic = %s, want new", s)
	}
	if err := g.answer("discord:next", time.Millisecond, nil); err != nil {
		t.Fatalf("place not given back after a panic: %v", err)
	}
}

// TestMemoryIsBounded: the destinations remembered never exceed
// MaxDestinations; the least recently used is forgotten first and counts as
// new again.
// TestDeadDestinationsForgotten: a destination the gate trusted is
// forgotten once it answers "never" (a deleted webhook); one it suspects is
// not cleared by it.
func TestDeadDestinationsForgotten(t *testing.T) {
	t.Parallel()
	g := newTestGate(t, Config{After: 3 * time.Second})
	send := func(err error, took time.Duration) {
		_ = g.mw(func(context.Context, *consumer.Delivery) error {
			g.clock.Advance(took)
			return err
		})(context.Background(), delivery(herald.ChannelDiscord, "discord:d"))
	}
	gone := herald.Permanent(&herald.DestinationError{Channel: herald.ChannelDiscord, StatusCode: http.StatusNotFound})
	send(nil, time.Millisecond)
	if s := g.state("discord:d"); s != "trusted" {
		t.Fatalf("after a delivery: %s, want trusted", s)
	}
	send(gone, time.Millisecond)
	if s := g.state("discord:d"); s != "new" {
		t.Errorf("after a 404: %s, want forgotten (new)", s)
	}
	send(nil, 4*time.Second) // unanswered in time: suspect
	send(gone, time.Millisecond)
	if s := g.state("discord:d"); s != "suspect" {
		t.Errorf("a suspect destination after a 404: %s, want still suspect", s)
	}
}

func TestMemoryIsBounded(t *testing.T) {
	t.Parallel()
	g := newTestGate(t, Config{MaxDestinations: 10})
	_ = g.answer("discord:first", time.Millisecond, nil)
	for i := range 100 {
		_ = g.answer(fmt.Sprintf("discord:%d", i), time.Millisecond, nil)
	}
	g.mu.Lock()
	n := g.known.Len()
	g.mu.Unlock()
	if n != 10 {
		t.Errorf("%d destinations remembered, want MaxDestinations = 10", n)
	}
	if s := g.state("discord:first"); s != "new" {
		t.Errorf("least recently used destination: %s, want forgotten (new)", s)
	}
	if s := g.state("discord:99"); s != "trusted" {
		t.Errorf("most recent destination: %s, want trusted", s)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // a substring of the error; "" for valid
	}{
		{name: "zero is defaults", cfg: Config{}},
		{name: "share 1 turns it off", cfg: Config{Share: 1}},
		{name: "share above 1", cfg: Config{Share: 1.5}, want: "pacing.hung_share"},
		{name: "negative share", cfg: Config{Share: -0.1}, want: "pacing.hung_share"},
		{name: "negative workers", cfg: Config{Workers: -1}, want: "consumer.workers"},
		{name: "negative after", cfg: Config{After: -time.Second}, want: "pacing.hung_after"},
		{name: "negative for", cfg: Config{For: -time.Second}, want: "pacing.hung_for"},
		{name: "negative send timeout", cfg: Config{SendTimeout: -time.Second}, want: "consumer.send_timeout"},
		{name: "negative max destinations", cfg: Config{MaxDestinations: -1}, want: "pacing.max_destinations"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate: %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate: %v, want an error naming %s", err, tc.want)
			}
		})
	}
	if got := (Config{Workers: 1}).withDefaults().limit(); got != 1 {
		t.Errorf("limit with one worker = %d, want 1", got)
	}
	if got := (Config{}).withDefaults().limit(); got != 16 {
		t.Errorf("default limit = %d, want 16 (half of 32 workers)", got)
	}
	for places, want := range map[int]int{1: 0, 2: 1, 3: 1, 4: 1, 8: 2, 16: 4} {
		if got := (Config{Workers: places, Share: 1}).reserve(); got != want {
			t.Errorf("places kept for new destinations of %d = %d, want %d", places, got, want)
		}
	}
}

// A first send (a request waiting for its job, holding no worker) to a new
// destination takes no place, even with the share full, and teaches the
// Gate as any send; one to a destination that went unanswered lately is
// refused at once, without waiting for a place, so that its job is stored.
func TestFirstSendsTakeNoPlace(t *testing.T) {
	t.Parallel()
	const sendTimeout = 4 * time.Second
	g := newTestGate(t, Config{Workers: 2, Share: 0.5, SendTimeout: sendTimeout})
	first := func(key string, next consumer.Handler) error {
		d := delivery(herald.ChannelDiscord, key)
		d.First = true
		return g.mw(next)(context.Background(), d)
	}
	r1, err := g.hang(t, "discord:hung-1")
	if err != nil {
		t.Fatal(err)
	}
	// The one place is held: a worker's send to a new destination is refused...
	if _, err := g.hang(t, "discord:new-1"); err == nil {
		t.Fatal("a worker's send took a place beyond the share")
	}
	// ...a first send to one goes, and holds no place.
	err = first("discord:new-2", func(context.Context, *consumer.Delivery) error {
		if got := testutil.ToFloat64(g.m.SuspectSends); got != 1 {
			t.Errorf("herald_suspect_sends = %v during a first send, want 1 (the worker's)", got)
		}
		g.clock.Advance(10 * time.Millisecond)
		return nil
	})
	if err != nil {
		t.Fatalf("first send to a new destination with the share full: %v", err)
	}
	if s := g.state("discord:new-2"); s != "trusted" {
		t.Errorf("new-2 after a first send answered: %s, want trusted", s)
	}
	// A first send that goes unanswered makes its destination suspect.
	err = first("discord:hung-2", func(context.Context, *consumer.Delivery) error {
		g.clock.Advance(sendTimeout)
		return fmt.Errorf("discord: send: %w", context.DeadlineExceeded)
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the gate changed next's error: %v", err)
	}
	if s := g.state("discord:hung-2"); s != "suspect" {
		t.Errorf("hung-2 after an unanswered first send: %s, want suspect", s)
	}
	// Now a first send to it is refused, though a place is free (a
	// worker's send would take it): its job is stored and gated there.
	_ = r1(nil)
	refusedBefore := g.refusedCount(herald.ChannelDiscord)
	called := false
	err = first("discord:hung-2", func(context.Context, *consumer.Delivery) error { called = true; return nil })
	wantRefused(t, err, sendTimeout)
	if called {
		t.Error("a first send to a suspect destination was sent")
	}
	if got := g.refusedCount(herald.ChannelDiscord); got != refusedBefore+1 {
		t.Errorf("herald_suspect_refused_total = %v, want %v", got, refusedBefore+1)
	}
}
