package pacing

import (
	"fmt"
	"testing"
	"time"

	"github.com/heraldrelay/herald/consumer"
	"github.com/heraldrelay/herald/internal/fake"
	"github.com/heraldrelay/herald/internal/testkit/relay"
)

// TestHungWebhookHoldsAtMostItsCap is issue 11's hung-destination attack:
// 200 jobs for a webhook that accepts the connection and never answers are
// queued before 20 jobs for 20 healthy webhooks. Only MaxInFlight workers
// wait on the hung webhook; every other job for it goes back to the queue at
// once, so the healthy jobs are delivered within seconds, not after the
// hung jobs have cycled through every worker.
func TestHungWebhookHoldsAtMostItsCap(t *testing.T) {
	t.Parallel()
	const (
		hungJobs = 200
		healthy  = 20
		hungID   = "999999999999999999"
	)
	e := relay.New(t)
	f := e.Discord()
	f.Script(func(r fake.DiscordRequest, _ int) fake.Response {
		if r.WebhookID == hungID {
			return fake.Response{Hang: true}
		}
		return fake.Response{}
	})
	// The consumer's defaults where they matter: 32 workers, a 10 s send
	// timeout that the hung sends run into.
	runPaced(e, Config{}, consumer.Config{Workers: 32, SendTimeout: 10 * time.Second, AckWait: 30 * time.Second, DrainTimeout: time.Second})

	for i := range hungJobs {
		e.Publish(e.DiscordJob(hungID, "HungToken", fmt.Sprintf("hung %d", i)))
	}
	start := time.Now()
	for i := range healthy {
		e.Publish(e.DiscordJob(fmt.Sprint(100+i), "HealthyToken", fmt.Sprintf("healthy %d", i)))
	}
	e.WaitFor("the healthy jobs", func() bool {
		n := 0
		for _, r := range f.Requests() {
			if r.WebhookID != hungID {
				n++
			}
		}
		return n >= healthy
	})
	took := time.Since(start)
	t.Logf("hung webhook: %d healthy webhooks' jobs delivered %s after being queued behind %d jobs for a webhook that never answers",
		healthy, took.Round(time.Millisecond), hungJobs)
	if took > 5*time.Second {
		t.Errorf("healthy jobs took %s behind the hung webhook, want seconds", took)
	}
	hungSends := 0
	for _, r := range f.Requests() {
		if r.WebhookID == hungID {
			hungSends++
		}
	}
	if hungSends > DefaultMaxInFlight {
		t.Errorf("%d sends to the hung webhook are on their way, want at most %d", hungSends, DefaultMaxInFlight)
	}
}
