package consumer_test

import (
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/internal/testkit/relay"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/consumer"
	"github.com/heraldrelay/herald/internal/dlq"
	"github.com/heraldrelay/herald/internal/fake"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestDeadLetterReplayRoundTrip runs the real pieces end to end: a webhook
// answers 404/10015, the job lands in the dead letters through dlq.Writer;
// the webhook is fixed, dlq.Store.Replay republishes it, and it is
// delivered with a fresh retry budget.
func TestDeadLetterReplayRoundTrip(t *testing.T) {
	t.Parallel()
	e := relay.New(t)
	js, statuses := e.JS, e.Status
	ctx := testkit.Context(t, 30*time.Second)
	if _, err := dlq.EnsureStream(ctx, js, dlq.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	f := e.Discord()
	f.Script(func(fake.DiscordRequest, int) fake.Response { return fake.Respond404UnknownWebhook() })
	m := e.Metrics
	deps := e.Deps(map[herald.Channel]consumer.Sender{herald.ChannelDiscord: relay.DiscordChannel(t, nil)})
	deps.DeadLetters = dlq.NewWriter(js)
	cfg := relay.Config()
	cfg.Workers = 2
	e.StartPool(cfg, deps)

	const token = testkit.WebhookToken
	job := e.DiscordJob(testkit.WebhookID, token, "round trip")
	sealed := job.Credentials.Webhook
	id := e.Publish(job)

	waitState := func(want herald.State) herald.Status {
		t.Helper()
		var st herald.Status
		e.WaitFor("state "+string(want), func() bool {
			var err error
			st, err = statuses.Get(ctx, id)
			return err == nil && st.State == want
		})
		return st
	}
	st := waitState(herald.StateDead)
	if st.Attempts != 1 || !strings.Contains(st.LastError, "Unknown Webhook") {
		t.Errorf("dead status = %+v", st)
	}
	store := dlq.NewStore(js, dlq.WithStatus(statuses))
	letters, err := store.List(ctx, dlq.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(letters) != 1 {
		t.Fatalf("letters = %d, want 1", len(letters))
	}
	l := letters[0]
	if l.JobID != id || l.Cause != consumer.CausePermanent || l.StatusCode != 404 || l.Attempts != 1 ||
		l.Channel != herald.ChannelDiscord || l.Job.Credentials.Webhook != sealed || strings.Contains(string(l.Raw), token) {
		t.Errorf("letter = %+v", l)
	}

	// Fix the webhook, replay: delivered, with no failed attempt.
	f.Script(func(fake.DiscordRequest, int) fake.Response { return fake.Response{} })
	rr, err := store.Replay(ctx, dlq.Filter{All: true}, dlq.ReplayOptions{})
	if err != nil || rr.Replayed != 1 {
		t.Fatalf("replay = %+v, %v", rr, err)
	}
	st = waitState(herald.StateDelivered)
	if st.Attempts != 0 || st.LastError != "" {
		t.Errorf("delivered status = %+v", st)
	}
	// Counted by the worker that took it, where metrics are scraped: the
	// replay itself may have run in a CLI.
	if v := testutil.ToFloat64(m.Replayed.WithLabelValues("discord")); v != 1 {
		t.Errorf("herald_replayed_total = %v, want 1", v)
	}
	if n := f.Count(); n != 2 {
		t.Errorf("requests = %d, want 2 (the 404, then the delivery)", n)
	}
	if letters, err := store.List(ctx, dlq.Filter{}); err != nil || len(letters) != 0 {
		t.Errorf("letters after replay = %d, %v; want none", len(letters), err)
	}
	if got := testutil.ToFloat64(m.DeadLettered.WithLabelValues("discord", consumer.CausePermanent)); got != 1 {
		t.Errorf("dead lettered = %v, want 1", got)
	}
}
