package relay

import (
	"context"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/consumer"
	"github.com/heraldrelay/herald/internal/metrics"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Pool is a consumer.Pool running in the background until Stop or the end
// of the test.
type Pool struct {
	*consumer.Pool
	t      testing.TB
	cancel context.CancelFunc
	done   chan error
}

// StartPool builds a Pool from cfg and deps, runs it until the test ends
// (the cleanup fails the test if Run returns an error or does not return
// within 30 s), and waits until its durable consumer exists, so a job
// published next is picked up at once.
func StartPool(t testing.TB, js jetstream.JetStream, cfg consumer.Config, deps consumer.Deps) *Pool {
	t.Helper()
	if deps.Metrics == nil {
		deps.Metrics = metrics.New(prometheus.NewRegistry())
	}
	p, err := consumer.New(cfg, deps)
	if err != nil {
		t.Fatalf("relay: consumer.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Pool{Pool: p, t: t, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	t.Cleanup(func() {
		if err, _ := r.stop(); err != nil {
			t.Errorf("relay: pool Run: %v", err)
		}
	})
	durable := cfg.Durable
	if durable == "" {
		durable = herald.WorkersConsumer
	}
	testkit.WaitFor(t, 15*time.Second, "the pool's consumer", func() bool {
		_, err := js.Consumer(context.Background(), herald.JobsStream, durable)
		return err == nil
	})
	return r
}

// StartPool runs a pool on the env's stream (see the function StartPool).
func (e *Env) StartPool(cfg consumer.Config, deps consumer.Deps) *Pool {
	e.T.Helper()
	return StartPool(e.T, e.JS, cfg, deps)
}

// Stop cancels Run and returns its result and how long it took to return.
// Stop may be called more than once; later calls return the first result.
func (r *Pool) Stop() (error, time.Duration) {
	r.t.Helper()
	return r.stop()
}

func (r *Pool) stop() (error, time.Duration) {
	start := time.Now()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err
		return err, time.Since(start)
	case <-time.After(30 * time.Second):
		r.t.Errorf("relay: pool Run did not return 30 s after cancel")
		return nil, time.Since(start)
	}
}
