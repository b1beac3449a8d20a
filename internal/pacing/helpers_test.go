package pacing

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"

	"github.com/heraldrelay/herald/internal/metrics"
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
	logs := &testkit.LogBuffer{}
	m := metrics.New(prometheus.NewRegistry())
	p, err := New(cfg, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), m)
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

// assertNoSecrets fails the test if text contains the kit's or any of
// secrets.
func assertNoSecrets(t *testing.T, where, text string, secrets ...string) {
	t.Helper()
	testkit.AssertNoSecrets(t, where, text, secrets...)
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testkit.WaitFor(t, timeout, what, cond)
}
