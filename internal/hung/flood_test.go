package hung_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/channels"
	"github.com/heraldrelay/herald/consumer"
	"github.com/heraldrelay/herald/internal/fake"
	"github.com/heraldrelay/herald/internal/hung"
	"github.com/heraldrelay/herald/internal/pacing"
	"github.com/heraldrelay/herald/internal/testkit/relay"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// countingSender wraps the Discord channel and counts the sends on their
// way: to the hung webhooks (now, and the most at once), and the healthy
// webhook's deliveries with the hung sends on their way as each started.
type countingSender struct {
	next consumer.Sender
	hung map[string]bool // webhook URLs that never answer

	mu          sync.Mutex
	hungNow     int
	hungMost    int
	hungCalled  map[string]bool // hung webhooks sent to at least once
	delivered   int             // healthy sends that succeeded
	hungAtStart []int           // hungNow when each healthy send started
}

func (s *countingSender) Send(ctx context.Context, n herald.Notification) error {
	url := n.Target.WebhookURL
	s.mu.Lock()
	if s.hung[url] {
		s.hungNow++
		s.hungMost = max(s.hungMost, s.hungNow)
		s.hungCalled[url] = true
	} else {
		s.hungAtStart = append(s.hungAtStart, s.hungNow)
	}
	s.mu.Unlock()
	err := s.next.Send(ctx, n)
	s.mu.Lock()
	if s.hung[url] {
		s.hungNow--
	} else if err == nil {
		s.delivered++
	}
	s.mu.Unlock()
	return err
}

func (s *countingSender) read(f func(*countingSender)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

// TestHungDestinationsHoldAtMostTheirShare is issue 17's measurement made a
// test: 150 jobs for 150 different webhooks that accept the connection and
// never answer flood a pool of 8 workers with a 1 s send timeout, then 20
// jobs for a webhook that answers are queued behind them. Without the Gate,
// every worker waits on a hung webhook, one new one after another, and the
// healthy jobs are delivered only once the flood has been through every
// hung webhook. With it, sends to the hung webhooks (each new, then each
// suspect after its timeout) never hold more than half the workers, and the
// healthy jobs are delivered while the flood is still going on.
func TestHungDestinationsHoldAtMostTheirShare(t *testing.T) {
	t.Parallel()
	const (
		workers     = 8
		hungHooks   = 150
		healthyJobs = 20
		healthyID   = "100000000000000001"
		sendTimeout = time.Second
	)
	e := relay.New(t)
	f := e.Discord()
	hungURLs := map[string]bool{}
	hungIDs := map[string]bool{}
	for i := range hungHooks {
		id := fmt.Sprint(900000000000000000 + i)
		hungIDs[id] = true
		hungURLs[e.WebhookURL(id, "HungToken")] = true
	}
	f.Script(func(r fake.DiscordRequest, _ int) fake.Response {
		if hungIDs[r.WebhookID] {
			return fake.Response{Hang: true}
		}
		return fake.Response{}
	})

	// Wired as herald serve wires it: the Gate, then pacing, then the
	// channel (whose answers pacing observes).
	pacer, err := pacing.New(pacing.Config{}, e.Log, e.Metrics)
	if err != nil {
		t.Fatal(err)
	}
	gate, err := hung.New(hung.Config{Workers: workers, SendTimeout: sendTimeout}, e.Metrics)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := channels.NewDiscord(channels.DiscordConfig{
		AllowedHosts: []string{"127.0.0.1"}, AllowHTTP: true, Observe: pacer.ObserveDiscord,
	}, channels.NewHTTPClient(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	sender := &countingSender{next: dc, hung: hungURLs, hungCalled: map[string]bool{}}
	dest := func(n herald.Notification) string { return dc.Destination(n.Target) }
	deps := e.Deps(map[herald.Channel]consumer.Sender{herald.ChannelDiscord: sender})
	deps.Middlewares = []consumer.Middleware{gate.Middleware(dest), pacer.Middleware(dest)}
	e.StartPool(consumer.Config{
		Workers: workers, SendTimeout: sendTimeout, AckWait: 5 * time.Second, DrainTimeout: 2 * time.Second,
		MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, MaxAttempts: 1000,
	}, deps)
	limit := gate.Limit()
	if limit != workers/2 {
		t.Fatalf("Limit = %d, want half of %d workers", limit, workers)
	}

	// The healthy webhook has answered before the flood.
	e.Publish(e.DiscordJob(healthyID, "HealthyToken", "before"))
	e.WaitFor("the healthy webhook's first job", func() bool {
		n := 0
		sender.read(func(s *countingSender) { n = s.delivered })
		return n == 1
	})

	for i := range hungHooks {
		e.Publish(e.DiscordJob(fmt.Sprint(900000000000000000+i), "HungToken", fmt.Sprintf("hung %d", i)))
	}
	e.WaitFor("the hung webhooks to hold their share", func() bool {
		n := 0
		sender.read(func(s *countingSender) { n = s.hungNow })
		return n >= limit
	})
	for i := range healthyJobs {
		e.Publish(e.DiscordJob(healthyID, "HealthyToken", fmt.Sprintf("healthy %d", i)))
	}
	// Wait for the healthy jobs, or a minute: without the Gate they may
	// never come, as the hung jobs' retries keep every worker.
	var delivered, called, mostDuring, most int
	deadline := time.Now().Add(time.Minute)
	for {
		sender.read(func(s *countingSender) {
			delivered, called, most = s.delivered-1, len(s.hungCalled), s.hungMost
			mostDuring = 0
			for _, n := range s.hungAtStart[1:] {
				mostDuring = max(mostDuring, n)
			}
		})
		if delivered == healthyJobs || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%d of %d healthy jobs delivered after %d of %d hung webhooks had been called; up to %d hung sends on their way as they went, %d at most",
		delivered, healthyJobs, called, hungHooks, mostDuring, most)
	if most > limit {
		t.Errorf("%d sends to hung webhooks were on their way at once, want at most %d (pacing.hung_share of %d workers)", most, limit, workers)
	}
	if delivered < healthyJobs {
		t.Fatalf("%d of %d healthy jobs delivered in a minute, want all during the flood", delivered, healthyJobs)
	}
	if called >= hungHooks {
		t.Errorf("the healthy jobs were delivered only after every one of the %d hung webhooks had held a worker", hungHooks)
	}
	if mostDuring < 1 {
		t.Errorf("no healthy job was sent while a hung send was on its way, want them delivered during the flood")
	}

	// The hung sends time out, their webhooks turn suspect, and their jobs
	// keep coming back: still within the share.
	e.WaitFor("hung sends to time out and be retried", func() bool {
		return testutil.ToFloat64(e.Metrics.UnansweredSends.WithLabelValues("discord")) >= float64(2*limit)
	})
	if got := testutil.ToFloat64(e.Metrics.SuspectRefused.WithLabelValues("discord")); got == 0 {
		t.Error("herald_suspect_refused_total = 0, want the jobs beyond the share given back")
	}
	if got := testutil.ToFloat64(e.Metrics.SuspectSends); got > float64(limit) {
		t.Errorf("herald_suspect_sends = %v, want at most %d", got, limit)
	}
	sender.read(func(s *countingSender) { most = s.hungMost })
	t.Logf("at most %d of %d workers held by hung webhooks at once (share %d)", most, workers, limit)
	if most > limit {
		t.Errorf("%d sends to hung webhooks were on their way at once, want at most %d (pacing.hung_share of %d workers)", most, limit, workers)
	}
}
