package breaker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/internal/testkit/relay"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/consumer"
	"github.com/heraldrelay/herald/internal/fake"
	"github.com/heraldrelay/herald/internal/status"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// recordingDLQ is a consumer.DeadLetterer that keeps what it is given.
type recordingDLQ struct {
	mu    sync.Mutex
	infos []consumer.DeadLetterInfo
}

func (r *recordingDLQ) DeadLetter(_ context.Context, _ jetstream.Msg, info consumer.DeadLetterInfo) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.infos = append(r.infos, info)
	return nil
}

func (r *recordingDLQ) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.infos)
}

// TestDestinationDownThenRecovers is the breaker test: a webhook
// answers 503 for a while. Its breaker opens after Failures calls, the fake
// then sees only the half-open probes, no job is dead-lettered or uses up
// its attempts waiting, and all jobs are delivered once it recovers.
func TestDestinationDownThenRecovers(t *testing.T) {
	t.Parallel()
	const (
		jobs     = 20
		failures = 3
		probes   = 1
		// workers bounds the sends already on their way when the breaker
		// opens: at most workers-1 besides the one that trips it.
		workers = 3
	)

	// NATS, the jobs stream and the status bucket.
	e := relay.New(t)
	store := e.Status

	// The destination: down (503) until the flag is cleared.
	var down atomic.Bool
	var downRequests atomic.Int64
	down.Store(true)
	f := e.Discord()
	f.Script(func(fake.DiscordRequest, int) fake.Response {
		if down.Load() {
			downRequests.Add(1)
			return fake.Response{Status: http.StatusServiceUnavailable, Body: `{"message": "503: Service Unavailable", "code": 0}`}
		}
		return fake.Response{}
	})
	discord := relay.DiscordChannel(t, nil)

	// The breakers and the pool.
	x := newTestSet(t, Config{Failures: failures, OpenTimeout: 500 * time.Millisecond, HalfOpenProbes: probes})
	dlq := &recordingDLQ{}
	cfg := relay.Config()
	cfg.Workers, cfg.MaxAttempts = workers, 100
	deps := e.Deps(map[herald.Channel]consumer.Sender{herald.ChannelDiscord: discord})
	deps.DeadLetters, deps.Logger, deps.Metrics = dlq, x.log, x.metrics
	deps.Middlewares = []consumer.Middleware{
		x.Middleware(Keys(func(n herald.Notification) string { return discord.Destination(n.Target) })),
	}
	e.StartPool(cfg, deps)

	// Twenty jobs to one webhook.
	var ids []string
	for i := range jobs {
		ids = append(ids, e.Publish(e.DiscordJob(webhookID, webhookToken, fmt.Sprintf("job %d", i))))
	}

	// Down for a while: until the breaker has opened and three probes have
	// failed (about 1.5 s).
	key := discord.Destination(herald.Target{WebhookURL: f.WebhookURL(webhookID, webhookToken)})
	start := time.Now()
	testkit.WaitFor(t, 20*time.Second, "three failed probes", func() bool {
		return x.changes("discord", labelHalfOpen) >= 3 && x.State(key).String() == "open"
	})
	down.Store(false)
	downFor := time.Since(start)
	seen := int(downRequests.Load())
	halfOpens := x.changes("discord", labelHalfOpen)
	t.Logf("breaker figure: the fake saw %d requests in %s down (%d jobs queued, breaker opens after %d failures, %d half-open periods of at most %d probe)",
		seen, downFor.Round(time.Millisecond), jobs, failures, halfOpens, probes)
	if limit := failures + halfOpens*probes + 2; seen > limit {
		t.Errorf("requests while down = %d, want at most %d (failures %d + probes %d + 2)", seen, limit, failures, halfOpens*probes)
	}
	if seen < failures {
		t.Errorf("requests while down = %d, fewer than the %d failures that open the breaker", seen, failures)
	}
	if n := x.changes("discord", labelOpen); n < 1 {
		t.Error("the breaker never opened")
	}

	// Recovered: every job is delivered, none dead-lettered.
	for _, id := range ids {
		var st herald.Status
		var err error
		testkit.WaitFor(t, 20*time.Second, "job "+id+" delivered", func() bool {
			st, err = store.Get(context.Background(), id)
			if err != nil && !errors.Is(err, status.ErrNotFound) {
				t.Fatalf("status: %v", err)
			}
			return err == nil && st.State.Final()
		})
		if st.State != herald.StateDelivered {
			t.Errorf("job %s: %s (%s), want delivered", id, st.State, st.LastError)
		}
	}
	t.Logf("recovered: all %d jobs delivered %s after the destination came back", jobs, (time.Since(start) - downFor).Round(time.Millisecond))
	if n := dlq.count(); n != 0 {
		t.Errorf("%d jobs dead-lettered", n)
	}
	if n := testutil.ToFloat64(x.metrics.Deliveries.WithLabelValues("discord", "dead")) + testutil.ToFloat64(x.metrics.Deliveries.WithLabelValues("discord", "failed")); n != 0 {
		t.Errorf("%v deliveries dead or failed", n)
	}
	if st := x.State(key); st.String() != "closed" {
		t.Errorf("breaker = %s after recovery, want closed", st)
	}
	delivered := f.Count() - seen
	if delivered < jobs {
		t.Errorf("successful requests = %d, want %d", delivered, jobs)
	}
	if n := testutil.ToFloat64(x.metrics.Retries.WithLabelValues("discord", "breaker_open")); n == 0 {
		t.Error("no retry was labelled breaker_open")
	}
}
