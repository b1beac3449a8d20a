package pacing

import (
	"fmt"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/channels"
	"github.com/heraldrelay/herald/consumer"
	"github.com/heraldrelay/herald/internal/fake"
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
	e := newPoolEnv(t)
	f := fake.NewDiscord(t)
	f.Limit(1_000_000, time.Second, 0)
	f.Script(func(r fake.DiscordRequest, _ int) fake.Response {
		if r.WebhookID == hungID {
			return fake.Response{Hang: true}
		}
		return fake.Response{}
	})
	// The consumer's defaults where they matter: 32 workers, a 10 s send
	// timeout that the hung sends run into.
	e.runPaced(t, Config{}, consumer.Config{Workers: 32, SendTimeout: 10 * time.Second, AckWait: 30 * time.Second, DrainTimeout: time.Second})

	for i := range hungJobs {
		e.publish(herald.ChannelDiscord, fmt.Sprintf("hung %d", i), herald.Credentials{Webhook: f.WebhookURL(hungID, "HungToken")})
	}
	start := time.Now()
	for i := range healthy {
		e.publish(herald.ChannelDiscord, fmt.Sprintf("healthy %d", i), herald.Credentials{Webhook: f.WebhookURL(fmt.Sprint(100+i), "HealthyToken")})
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

// runPaced runs a pool whose Discord sends go through a Pacer with cfg (and
// the real channel, which the Pacer observes) until the test ends.
func (e *poolEnv) runPaced(t *testing.T, cfg Config, pool consumer.Config) *Pacer {
	t.Helper()
	p, err := New(cfg, e.Log, e.Metrics)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := channels.NewDiscord(channels.DiscordConfig{
		AllowedHosts: []string{"127.0.0.1"}, AllowHTTP: true, Observe: p.ObserveDiscord,
	}, channels.NewHTTPClient(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	deps := e.Deps(map[herald.Channel]consumer.Sender{herald.ChannelDiscord: dc})
	deps.Middlewares = []consumer.Middleware{p.Middleware(func(n herald.Notification) string { return dc.Destination(n.Target) })}
	e.StartPool(pool, deps)
	return p
}
