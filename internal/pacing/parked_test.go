package pacing

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/consumer"
	"github.com/heraldrelay/herald/internal/fake"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/internal/testkit/relay"
)

// Issue 17's first measurement, on a pool with the consumer's defaults where
// they matter (32 workers, an ack-pending window of 256, a 10 s send
// timeout) and the real Pacer: jobs that Herald holds back for one
// destination, more of them than the window, must not stop the others.
// Before parking, every held-back job kept its window slot while it waited,
// and the other tenants' jobs were not handed out for as long as the
// destination's wait lasted: minutes, or an hour.

// defaultPool is the consumer configuration of these tests.
func defaultPool() consumer.Config {
	return consumer.Config{Workers: 32, SendTimeout: 10 * time.Second, AckWait: 30 * time.Second, DrainTimeout: time.Second}
}

// victims queues one job for each of n healthy webhooks (ids from 500) and
// waits for all of them to be delivered; it returns how long that took.
func victims(e *relay.Env, f *fake.Discord, n int) time.Duration {
	e.T.Helper()
	start := time.Now()
	ids := make([]string, n)
	for i := range n {
		ids[i] = e.Publish(e.DiscordJob(fmt.Sprint(500+i), "VictimToken", fmt.Sprintf("another tenant's alert %d", i)))
	}
	// Generous: the other tenants' jobs are queued behind the held-back
	// ones, which the workers must first take and park (a few milliseconds
	// each, far more under the race detector).
	testkit.WaitFor(e.T, time.Minute, "the other tenants' jobs delivered", func() bool {
		for _, id := range ids {
			st, err := e.Status.Get(e.T.Context(), id)
			if err != nil || st.State != herald.StateDelivered {
				return false
			}
		}
		return true
	})
	return time.Since(start)
}

func parked(e *relay.Env) uint64 { return testkit.StreamMsgs(e.T, e.JS, herald.ParkedStream) }

// TestBurstAtDiscordsPaceLeavesOthersTheirDelivery: one backend queues 1,000
// alerts for its one webhook, which allows 5 per 2 s (Discord's usual
// webhook limit, with its rate-limit headers). Three other tenants' alerts
// queued meanwhile are delivered at once, while the burst drains at the
// webhook's pace.
func TestBurstAtDiscordsPaceLeavesOthersTheirDelivery(t *testing.T) {
	const burst, burstID = 1000, "777777777777777777"
	e := relay.New(t)
	f := e.Discord()
	f.Limit(5, 2*time.Second, 0)
	runPaced(e, Config{}, defaultPool())

	for i := range burst {
		e.Publish(e.DiscordJob(burstID, "BurstToken", fmt.Sprintf("burst %d", i)))
	}
	testkit.WaitFor(t, time.Minute, "more of the burst held back than the window holds", func() bool { return parked(e) > 300 })
	took := victims(e, f, 3)
	n := 0
	for _, r := range f.Requests() {
		if r.WebhookID == burstID {
			n++
		}
	}
	t.Logf("burst: 1,000 jobs for one webhook at 5 per 2 s; 3 other tenants delivered %s after being queued, with %d of the burst parked and %d sent",
		took.Round(time.Millisecond), parked(e), n)
}

// TestLongRetryAfterLeavesOthersTheirDelivery: 300 jobs for a webhook that
// answered one 429 with retry_after 3600 (a limit on a resource can ask
// for an hour) wait their hour parked; other tenants' alerts are delivered
// at once, and the webhook is not asked again meanwhile.
func TestLongRetryAfterLeavesOthersTheirDelivery(t *testing.T) {
	const jobs, slowID = 300, "888888888888888888"
	e := relay.New(t)
	f := e.Discord()
	f.Script(func(r fake.DiscordRequest, n int) fake.Response {
		if r.WebhookID == slowID && n == 1 {
			return fake.Respond429(3600)
		}
		return fake.Response{}
	})
	runPaced(e, Config{}, defaultPool())

	for i := range jobs {
		e.Publish(e.DiscordJob(slowID, "SlowToken", fmt.Sprintf("waits an hour %d", i)))
	}
	testkit.WaitFor(t, time.Minute, "every job waiting its hour", func() bool { return parked(e) == jobs })
	took := victims(e, f, 20)
	asked := 0
	for _, r := range f.Requests() {
		if r.WebhookID == slowID {
			asked++
		}
	}
	t.Logf("retry_after 3600: %d jobs parked for the hour; 20 other tenants delivered %s after being queued", jobs, took.Round(time.Millisecond))
	if asked != 1 {
		t.Errorf("the webhook that asked for an hour was called %d times, want once", asked)
	}
}

// TestManyJobsForAHungWebhookLeaveOthersTheirDelivery: 600 jobs for a
// webhook that never answers (twice the window). Two workers wait on it;
// the others are given back and return a few at a time, and 20 healthy
// jobs are delivered at once.
func TestManyJobsForAHungWebhookLeaveOthersTheirDelivery(t *testing.T) {
	const jobs, hungID = 600, "999999999999999998"
	e := relay.New(t)
	f := e.Discord()
	f.Script(func(r fake.DiscordRequest, _ int) fake.Response {
		if r.WebhookID == hungID {
			return fake.Response{Hang: true}
		}
		return fake.Response{}
	})
	runPaced(e, Config{}, defaultPool())
	for i := range jobs {
		e.Publish(e.DiscordJob(hungID, "HungToken", fmt.Sprintf("hung %d", i)))
	}
	testkit.WaitFor(t, time.Minute, "more jobs for the hung webhook waiting than the window holds", func() bool { return parked(e) > 300 })
	took := victims(e, f, 20)
	t.Logf("hung webhook: %d jobs for it; 20 other tenants delivered %s after being queued, %d parked", jobs, took.Round(time.Millisecond), parked(e))
}

// TestVerificationsWaitingForTheirShareLeaveDeliveries: 600 verification
// messages from /register (twice the window) to webhooks answering 401
// spend the verification share of the invalid-request budget and then wait
// for it, parked. A verified tenant's delivery is never behind them.
func TestVerificationsWaitingForTheirShareLeaveDeliveries(t *testing.T) {
	const registrations = 600
	e := relay.New(t)
	f := e.Discord()
	f.Script(func(r fake.DiscordRequest, _ int) fake.Response {
		if r.Token == "StrangerToken" {
			return fake.RespondDiscordError(http.StatusUnauthorized, 50027, "Invalid Webhook Token")
		}
		return fake.Response{}
	})
	p := runPaced(e, Config{Discord: DiscordConfig{InvalidBudget: 50, InvalidWindow: time.Hour}}, defaultPool())
	for i := range registrations {
		job := e.DiscordJob(fmt.Sprint(1000+i), "StrangerToken", "Herald verification code: 123456")
		job.Source = herald.SourceVerification
		e.Publish(job)
	}
	testkit.WaitFor(t, time.Minute, "the share spent and the registrations waiting", func() bool { return p.UnverifiedWait() > 0 && parked(e) > 300 })
	took := victims(e, f, 20)
	t.Logf("registrations: %d verification messages, share spent, %d parked; 20 verified tenants delivered %s after being queued",
		registrations, parked(e), took.Round(time.Millisecond))
}
