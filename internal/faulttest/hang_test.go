package faulttest

import (
	"context"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/internal/testkit/relay"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/consumer"
	"github.com/heraldrelay/herald/internal/fake"
	"github.com/heraldrelay/herald/publisher"
)

// TestHungDestinationDoesNotStarveOthers sends to one webhook that never
// answers and one that answers at once. The hung sends must time out (and be
// retried later) while the healthy webhook's jobs keep flowing through the
// same workers: no head-of-line blocking.
func TestHungDestinationDoesNotStarveOthers(t *testing.T) {
	const (
		workers     = 8
		sendTimeout = 300 * time.Millisecond
		healthy     = 500
		// hung jobs keep half the workers busy with timeouts, over and over.
		hung = workers / 2
	)
	ns := testkit.NewServer(t)

	ctx := testkit.Context(t, 2*time.Minute)
	log := newLogger(t)
	keys := testkit.Keyring(t)
	fd, discord := newDiscord(t)
	fd.Script(func(r fake.DiscordRequest, _ int) fake.Response {
		if r.WebhookID == hungID {
			return fake.Response{Hang: true}
		}
		return fake.Response{}
	})

	_, js, statuses := connect(t, ctx, ns.URL(), log)
	relay.StartPool(t, js, consumer.Config{
		Workers:      workers,
		AckWait:      5 * time.Second,
		SendTimeout:  sendTimeout,
		MinBackoff:   100 * time.Millisecond,
		MaxBackoff:   400 * time.Millisecond,
		MaxAttempts:  1000, // keep the hung jobs coming back for the whole test
		DrainTimeout: 3 * time.Second,
	}, consumer.Deps{
		JS:      js,
		Keys:    keys,
		Senders: map[herald.Channel]consumer.Sender{herald.ChannelDiscord: discord},
		Status:  statuses,
		Logger:  log,
	})
	pub := publisher.New(js)
	publish := func(webhook, text string) string {
		t.Helper()
		job := discordJob(t, keys, webhook, text)
		if _, err := pub.Publish(ctx, job); err != nil {
			t.Fatal(err)
		}
		return job.ID
	}
	healthyURL := fd.WebhookURL(webhookID, webhookToken)
	hungURL := fd.WebhookURL(hungID, hungToken)

	// deliverHealthy publishes healthy jobs marked prefix and returns how
	// long they took to be delivered.
	deliverHealthy := func(prefix string) time.Duration {
		t.Helper()
		begin := time.Now()
		for i := range healthy {
			publish(healthyURL, "job "+marker(prefix, i))
		}
		testkit.WaitFor(t, 30*time.Second, "every healthy "+prefix+" job delivered", func() bool {
			got := deliveries(fd, webhookID)
			for i := range healthy {
				if got[key(prefix, i)] == 0 {
					return false
				}
			}
			return true
		})
		return time.Since(begin)
	}

	// Baseline: the healthy webhook alone.
	alone := deliverHealthy("a")

	// Now with the hung webhook's jobs taking workers first.
	var hungIDs []string
	for i := range hung {
		hungIDs = append(hungIDs, publish(hungURL, "job "+marker("h", i)))
	}
	testkit.WaitFor(t, 10*time.Second, "the hung webhook to be called", func() bool { return hungRequests(fd) >= hung })
	mixed := deliverHealthy("b")
	hungDuring := hungRequests(fd)

	// The hung sends time out and are retried, over and over.
	testkit.WaitFor(t, 15*time.Second, "the hung jobs to time out and be retried twice", func() bool {
		return hungRequests(fd) >= 3*hung
	})
	for _, id := range hungIDs {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := statuses.Get(sctx, id)
		cancel()
		if err != nil {
			t.Errorf("status of hung job: %v", err)
			continue
		}
		if st.State.Final() || st.Attempts < 1 {
			t.Errorf("hung job status = %s with %d failed attempts, want still retrying after at least one", st.State, st.Attempts)
		}
	}
	rate := func(d time.Duration) float64 { return float64(healthy) / d.Seconds() }
	t.Logf("healthy throughput: alone %.0f jobs/s (%d in %s); with %d hung jobs on %d workers %.0f jobs/s (%d in %s); "+
		"hung webhook calls by the end of the healthy run %d (send timeout %s)",
		rate(alone), healthy, alone.Round(time.Millisecond), hung, workers, rate(mixed), healthy, mixed.Round(time.Millisecond),
		hungDuring, sendTimeout)
}

// hungRequests counts the requests the hung webhook received.
func hungRequests(f *fake.Discord) int {
	n := 0
	for _, r := range f.Requests() {
		if r.WebhookID == hungID {
			n++
		}
	}
	return n
}
