package consumer_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/channels"
	"github.com/heraldrelay/herald/consumer"
	"github.com/heraldrelay/herald/crypto"
	"github.com/heraldrelay/herald/internal/dlq"
	"github.com/heraldrelay/herald/internal/fake"
	"github.com/heraldrelay/herald/internal/metrics"
	"github.com/heraldrelay/herald/internal/queue"
	"github.com/heraldrelay/herald/internal/status"
	"github.com/heraldrelay/herald/publisher"
	natsserver "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestDeadLetterReplayRoundTrip runs the real pieces end to end: a webhook
// answers 404/10015, the job lands in the dead letters through dlq.Writer;
// the webhook is fixed, dlq.Store.Replay republishes it, and it is
// delivered with a fresh retry budget.
func TestDeadLetterReplayRoundTrip(t *testing.T) {
	t.Parallel()
	opts := natsserver.DefaultTestOptions
	opts.Port = -1
	opts.JetStream = true
	opts.StoreDir = t.TempDir()
	s := natsserver.RunServer(&opts)
	t.Cleanup(s.Shutdown)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := queue.EnsureJobsStream(ctx, js, queue.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := dlq.EnsureStream(ctx, js, dlq.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	kv, err := queue.EnsureStatusBucket(ctx, js, time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	statuses := status.New(kv, nc)
	keys, err := crypto.NewKeyring("0123456789abcdef0123456789abcdef-test-key")
	if err != nil {
		t.Fatal(err)
	}
	f := fake.NewDiscord(t)
	f.Script(func(fake.DiscordRequest, int) fake.Response { return fake.Respond404UnknownWebhook() })
	discord, err := channels.NewDiscord(channels.DiscordConfig{AllowedHosts: []string{"127.0.0.1"}, AllowHTTP: true}, channels.NewHTTPClient(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New(prometheus.NewRegistry())
	pool, err := consumer.New(consumer.Config{
		Workers: 2, AckWait: 5 * time.Second, SendTimeout: 2 * time.Second,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, DrainTimeout: 5 * time.Second,
	}, consumer.Deps{
		JS: js, Keys: keys, Status: statuses, Metrics: m,
		Senders:     map[herald.Channel]consumer.Sender{herald.ChannelDiscord: discord},
		DeadLetters: dlq.NewWriter(js),
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pool.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	const token = "WebhookSecretTokenAbcDef_123-xyz"
	sealed, err := keys.Seal(f.WebhookURL("112233445566778899", token))
	if err != nil {
		t.Fatal(err)
	}
	res, err := publisher.New(js).Publish(ctx, &herald.Job{
		Channel: herald.ChannelDiscord, Credentials: herald.Credentials{Webhook: sealed},
		Message: herald.Message{Text: "round trip"},
	})
	if err != nil {
		t.Fatal(err)
	}
	id := res.ID

	waitState := func(want herald.State) herald.Status {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			st, err := statuses.Get(ctx, id)
			if err == nil && st.State == want {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("status = %+v, %v; want %s", st, err, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
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
