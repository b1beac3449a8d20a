package main

import (
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/fake"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestServeCapsWorkersOnHungDestinations checks the wiring of
// pacing.hung_share: with 2 workers and a share of one half, one of two jobs
// for webhooks that never answer holds a worker and the other is given back,
// so a job for a webhook that answers is delivered on the second worker
// while the first hung send is still on its way.
func TestServeCapsWorkersOnHungDestinations(t *testing.T) {
	discord := fake.NewDiscord(t)
	discord.Limit(1_000_000, time.Second, 0)
	discord.Script(func(r fake.DiscordRequest, _ int) fake.Response {
		if r.WebhookID != "3" {
			return fake.Response{Hang: true}
		}
		return fake.Response{}
	})
	app := newTestApp(t, map[string]string{
		"HERALD_CONSUMER_WORKERS":       "2",
		"HERALD_CONSUMER_SEND_TIMEOUT":  "10s",
		"HERALD_CONSUMER_DRAIN_TIMEOUT": "1s",
		"HERALD_INGEST_STREAKY_WAIT":    "0s",
		"HERALD_PACING_HUNG_SHARE":      "0.5",
	})
	count := func(id string) int {
		n := 0
		for _, r := range discord.Requests() {
			if r.WebhookID == id {
				n++
			}
		}
		return n
	}
	post := func(id string) {
		t.Helper()
		// Stored: delivered (200) or still queued when the wait ended (202).
		if code, reply := postStreakyDiscord(t, app, discord.WebhookURL(id, "token-"+id)); code != 200 && code != 202 {
			t.Fatalf("reply %d %v", code, reply)
		}
	}
	post("3")
	testkit.WaitFor(t, 15*time.Second, "the healthy webhook's first job", func() bool { return count("3") == 1 })

	post("1")
	post("2")
	refused := app.metrics.SuspectRefused.WithLabelValues("discord")
	testkit.WaitFor(t, 15*time.Second, "one hung job given back", func() bool { return testutil.ToFloat64(refused) >= 1 })
	post("3")
	testkit.WaitFor(t, 15*time.Second, "the healthy webhook's second job", func() bool { return count("3") == 2 })
	if hung := count("1") + count("2"); hung != 1 {
		t.Errorf("%d hung webhooks called before the healthy job went, want 1 (the share of 2 workers)", hung)
	}
}
