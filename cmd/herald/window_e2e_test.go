package main

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/fake"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestServeBurstLeavesOtherTenantsTheirOutcome is issue 17's first
// measurement on `herald serve`'s wiring with its defaults: one backend
// queues 1,000 alerts through the API for its one webhook, which allows 5
// per 2 s (Discord's usual limit, with its headers). Three other tenants'
// Streaky requests to healthy webhooks, sent while the burst waits, each get
// their delivered outcome within the wait. Before parking, the held-back
// burst filled the consumer's window and each was answered "queued" after
// the wait, for the six or seven minutes the burst took to drain.
func TestServeBurstLeavesOtherTenantsTheirOutcome(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 1,000 jobs")
	}
	const burst = 1000
	discord := fake.NewDiscord(t)
	discord.Limit(5, 2*time.Second, 0)
	app := newTestApp(t, map[string]string{
		"HERALD_INGEST_STREAKY_WAIT": "10s",
		"HERALD_RATELIMIT_ENABLED":   "false",
		"HERALD_LOG_LEVEL":           "info",
	})
	sealed := testkit.Seal(t, app.Keys, discord.WebhookURL("777777777777777777", "burst-token"))
	body := fmt.Sprintf(`{"channel":"discord","credentials":{"webhook":%q},"message":{"title":"burst","text":"alert"}}`, sealed)
	if failed := hammer(burst, app.URL+"/v1/notifications", 202, func(int) (string, string) { return body, testSecret }); failed > 0 {
		t.Fatalf("%d of the burst's jobs were not accepted", failed)
	}
	testkit.WaitFor(t, time.Minute, "more of the burst held back than the consumer's window", func() bool {
		return testutil.ToFloat64(app.metrics.Retries.WithLabelValues("discord", "paced")) > 300
	})

	var wg sync.WaitGroup
	took := make([]time.Duration, 3)
	for i := range took {
		wg.Go(func() {
			start := time.Now()
			code, reply := postStreakyDiscord(t, app, discord.WebhookURL(fmt.Sprint(500+i), "victim-token"))
			took[i] = time.Since(start)
			if code != 200 || reply["success"] != true || reply["queued"] != nil {
				t.Errorf("tenant %d: reply %d %v after %s, want the delivered outcome", i, code, reply, took[i].Round(time.Millisecond))
			}
		})
	}
	wg.Wait()
	t.Logf("burst of %d for one webhook at 5 per 2 s, %d parked: the other tenants' Streaky requests answered delivered in %v",
		burst, testkit.StreamMsgs(t, app.js, herald.ParkedStream), took)
}
