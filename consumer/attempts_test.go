package consumer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/consumer"
	"github.com/heraldrelay/herald/internal/dlq"
	"github.com/heraldrelay/herald/internal/fake"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/internal/testkit/relay"
)

// A dead letter's and a status record's attempts count the failed delivery
// attempts, the last one included, for every cause: a 404 at once is 1;
// 500s before it add theirs; a 429 (a wait Discord asked for) adds none; a
// spent budget is the budget; a job that can never be sent (credentials that
// do not open, an invalid destination) is the one attempt that found it so.
func TestDeadLetterAttemptsPerCause(t *testing.T) {
	t.Parallel()
	e := relay.New(t)
	ctx := testkit.Context(t, 60*time.Second)
	if _, err := dlq.EnsureStream(ctx, e.JS, dlq.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	// Each webhook id scripts its own story, by the request's number for it.
	stories := map[string][]fake.Response{
		"1": {fake.Respond404UnknownWebhook()},
		"2": {{Status: 500}, {Status: 500}, fake.Respond404UnknownWebhook()},
		"3": {fake.Respond429(0.05), fake.Respond404UnknownWebhook()},
		"4": {{Status: 500}, {Status: 500}, {Status: 500}, {Status: 500}},
	}
	seen := map[string]int{}
	e.Discord().Script(func(r fake.DiscordRequest, _ int) fake.Response {
		story := stories[r.WebhookID]
		i := min(seen[r.WebhookID], len(story)-1)
		seen[r.WebhookID]++
		return story[i]
	})
	deps := e.Deps(map[herald.Channel]consumer.Sender{herald.ChannelDiscord: relay.DiscordChannel(t, nil)})
	deps.DeadLetters = dlq.NewWriter(e.JS)
	cfg := relay.Config()
	cfg.Workers = 1 // the script's counts are per webhook, in order
	cfg.MaxAttempts = 3
	e.StartPool(cfg, deps)

	want := map[string]int{}
	for id := range stories {
		jobID := e.Publish(e.DiscordJob(id, "story-token-"+id, "story "+id))
		want[jobID] = map[string]int{"1": 1, "2": 3, "3": 1, "4": 3}[id]
	}
	other := testkit.Keyring(t, "another-key-0123456789abcdef0123456789")
	wrongKey := e.Publish(testkit.DiscordJob(t, other, e.WebhookURL("5", "t"), "sealed elsewhere"))
	want[wrongKey] = 1
	invalid := e.Publish(testkit.DiscordJob(t, e.Keys, "https://evil.example/api/webhooks/6/t", "not Discord"))
	want[invalid] = 1

	store := dlq.NewStore(e.JS)
	e.WaitFor(fmt.Sprintf("%d dead letters", len(want)), func() bool {
		letters, err := store.List(context.Background(), dlq.Filter{})
		return err == nil && len(letters) == len(want)
	})
	letters, err := store.List(ctx, dlq.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range letters {
		if l.Attempts != want[l.JobID] {
			t.Errorf("%s (cause %s): dead letter says %d attempts, want %d", l.JobID, l.Cause, l.Attempts, want[l.JobID])
		}
		st, err := e.Status.Get(ctx, l.JobID)
		if err != nil || st.State != herald.StateDead || st.Attempts != want[l.JobID] {
			t.Errorf("%s: status %+v, %v; want dead with %d attempts", l.JobID, st, err, want[l.JobID])
		}
	}
}
