package ratelimit

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"

	"github.com/heraldrelay/herald/internal/metrics"
	"github.com/heraldrelay/herald/internal/queue"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

func newTestLogger() (*slog.Logger, *testkit.LogBuffer) {
	var b testkit.LogBuffer
	return slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug})), &b
}

// fakeClock is a settable clock shared by the limiters of a test.
type fakeClock = testkit.Clock

func newFakeClock() *fakeClock { return testkit.NewClock(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)) }

// connect opens a connection of its own to the kit's server s, Herald's
// reconnecting one (queue.Connect), as a separate ingest process would.
func connect(tb testing.TB, s *testkit.Server) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	ctx := testkit.Context(tb, 10*time.Second)
	log, _ := newTestLogger()
	nc, err := queue.Connect(ctx, s.URL(), "ratelimit-test", log)
	if err != nil {
		tb.Fatalf("Connect: %v", err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatalf("jetstream.New: %v", err)
	}
	return nc, js
}

// replica is one "ingest instance": its own connection, bucket handle,
// metrics, log and Limiter.
type replica struct {
	lim  *Limiter
	nc   *nats.Conn
	kv   jetstream.KeyValue
	js   jetstream.JetStream
	reg  *prometheus.Registry
	m    *metrics.Metrics
	logs *testkit.LogBuffer
}

// newReplica connects to s and builds a Limiter with cfg on the shared
// bucket. A non-nil clock replaces the real one.
func newReplica(tb testing.TB, s *testkit.Server, cfg Config, clock *fakeClock) *replica {
	tb.Helper()
	nc, js := connect(tb, s)
	kv, err := EnsureBucket(testkit.Context(tb, 10*time.Second), js, cfg, 0)
	if err != nil {
		tb.Fatalf("EnsureBucket: %v", err)
	}
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	log, logs := newTestLogger()
	lim, err := New(cfg, kv, m, log)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	if clock != nil {
		lim.now = clock.Now
	}
	// The tests count exactly, which holds while the store answers; on a
	// loaded machine an answer may take longer than a healthy server's.
	lim.timeout = 10 * time.Second
	return &replica{lim: lim, nc: nc, kv: kv, js: js, reg: reg, m: m, logs: logs}
}

func testCtx(tb testing.TB) context.Context {
	tb.Helper()
	return testkit.Context(tb, 30*time.Second)
}

// take calls Take and fails the test on an error.
func take(tb testing.TB, l *Limiter, group, key string) Decision {
	tb.Helper()
	d, err := l.Take(testCtx(tb), group, key)
	if err != nil {
		tb.Fatalf("Take(%s, %s): %v", group, key, err)
	}
	return d
}
