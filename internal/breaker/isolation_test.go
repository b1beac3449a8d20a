package breaker

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

// TestLookalikeURLsDoNotOpenTheVictimsBreaker is issue 11's attack: URLs
// that share only the webhook id with a victim's (another token on the same
// host, the same token on another port) fail until their breakers open. The
// victim's job, published after, is delivered at once: breakers are keyed
// by the whole destination (channels' Destination), not the id.
func TestLookalikeURLsDoNotOpenTheVictimsBreaker(t *testing.T) {
	t.Parallel()
	e := relay.New(t)
	victimHost := e.Discord()
	otherPort := fake.NewDiscord(t)
	failing := func(fake.DiscordRequest, int) fake.Response {
		return fake.Response{Status: http.StatusServiceUnavailable, Body: `{"message": "503: Service Unavailable", "code": 0}`}
	}
	otherPort.Script(failing)
	victimHost.Script(func(r fake.DiscordRequest, n int) fake.Response {
		if r.Token != testkit.WebhookToken {
			return failing(r, n)
		}
		return fake.Response{}
	})
	discord := relay.DiscordChannel(t, nil)
	x := newTestSet(t, Config{Failures: 3, OpenTimeout: time.Minute, HalfOpenProbes: 1})
	deps := e.Deps(map[herald.Channel]consumer.Sender{herald.ChannelDiscord: discord})
	deps.Metrics = x.metrics
	deps.Middlewares = []consumer.Middleware{
		x.Middleware(Keys(func(n herald.Notification) string { return discord.Destination(n.Target) })),
	}
	cfg := relay.Config()
	cfg.MaxAttempts = 1000
	e.StartPool(cfg, deps)

	lookalikes := []string{
		victimHost.WebhookURL(testkit.WebhookID, "AttackerChosenToken_1"),
		otherPort.WebhookURL(testkit.WebhookID, testkit.WebhookToken),
	}
	for i := range 10 {
		for _, u := range lookalikes {
			e.Publish(testkit.DiscordJob(t, e.Keys, u, fmt.Sprintf("lookalike %d", i)))
		}
	}
	e.WaitFor("both lookalike breakers open", func() bool { return x.changes("discord", labelOpen) >= 2 })

	start := time.Now()
	id := e.Publish(e.DiscordJob(testkit.WebhookID, testkit.WebhookToken, "the victim's job"))
	e.WaitFor("the victim's job delivered", func() bool {
		st, err := e.Status.Get(t.Context(), id)
		return err == nil && st.State == herald.StateDelivered
	})
	t.Logf("victim delivered %s after both lookalike breakers opened", time.Since(start).Round(time.Millisecond))
	if victim := discord.Destination(herald.Target{WebhookURL: victimHost.WebhookURL(testkit.WebhookID, testkit.WebhookToken)}); x.State(victim).String() != "closed" {
		t.Errorf("the victim's breaker is %s, want closed", x.State(victim))
	}
}
