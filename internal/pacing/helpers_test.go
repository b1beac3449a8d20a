package pacing

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/channels"
	"github.com/heraldrelay/herald/consumer"
	"github.com/heraldrelay/herald/internal/metrics"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/internal/testkit/relay"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeClock is the kit's Clock whose sleep advances it at once, like
// gobreaker's pseudoSleep, so tests of waits take no real time.
type fakeClock struct {
	*testkit.Clock
	mu     sync.Mutex
	sleeps []time.Duration
}

func newFakeClock() *fakeClock {
	return &fakeClock{Clock: testkit.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))}
}

func (c *fakeClock) sleep(ctx context.Context, d time.Duration, _ <-chan struct{}) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Advance(d)
	c.sleeps = append(c.sleeps, d)
	return nil
}

// slept returns the sleeps so far and forgets them.
func (c *fakeClock) slept() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sleeps
	c.sleeps = nil
	return s
}

// testPacer is a Pacer on a fake clock, with its log and metrics.
type testPacer struct {
	*Pacer
	clock *fakeClock
	logs  *testkit.LogBuffer
	m     *metrics.Metrics
}

func newTestPacer(t *testing.T, cfg Config) *testPacer {
	t.Helper()
	log, logs := testkit.Logger(t)
	m := metrics.New(prometheus.NewRegistry())
	p, err := New(cfg, log, m)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	c := newFakeClock()
	p.now, p.sleep = c.Now, c.sleep
	// The invalid-request window counts from the clock's start.
	p.dg.invalid.base = c.Now()
	return &testPacer{Pacer: p, clock: c, logs: logs, m: m}
}

// waits returns the PacingWaits counter for channel and scope.
func (tp *testPacer) waits(channel, scope string) float64 {
	return testutil.ToFloat64(tp.m.PacingWaits.WithLabelValues(channel, scope))
}

// runPool starts a Pool on e with the given senders and middlewares until
// the test ends.
func runPool(e *relay.Env, senders map[herald.Channel]consumer.Sender, mws ...consumer.Middleware) {
	e.T.Helper()
	deps := e.Deps(senders)
	deps.Middlewares = mws
	e.StartPool(consumer.Config{
		Workers: 32, AckWait: 10 * time.Second, SendTimeout: 5 * time.Second, DrainTimeout: 5 * time.Second,
		MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second,
	}, deps)
}

// runPaced runs a pool on e whose Discord sends go through a Pacer with cfg
// (and the real channel, which the Pacer observes) until the test ends.
func runPaced(e *relay.Env, cfg Config, pool consumer.Config) *Pacer {
	e.T.Helper()
	p, err := New(cfg, e.Log, e.Metrics)
	if err != nil {
		e.T.Fatal(err)
	}
	dc, err := channels.NewDiscord(channels.DiscordConfig{
		AllowedHosts: []string{"127.0.0.1"}, AllowHTTP: true, Observe: p.ObserveDiscord,
	}, channels.NewHTTPClient(30*time.Second))
	if err != nil {
		e.T.Fatal(err)
	}
	deps := e.Deps(map[herald.Channel]consumer.Sender{herald.ChannelDiscord: dc})
	deps.Middlewares = []consumer.Middleware{p.Middleware(func(n herald.Notification) string { return dc.Destination(n.Target) })}
	e.StartPool(pool, deps)
	return p
}
