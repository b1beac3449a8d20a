package faulttest

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/queue"
	"github.com/heraldrelay/herald/internal/status"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/internal/testkit/relay"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/channels"
	"github.com/heraldrelay/herald/crypto"
	"github.com/heraldrelay/herald/internal/fake"
)

// Secrets of the tests; no log line may contain them (nor testkit.Secrets,
// the kit's key and webhook token among them).
const (
	webhookID    = testkit.WebhookID
	webhookToken = testkit.WebhookToken
	hungID       = "998877665544332211"
	hungToken    = "HungWebhookToken_xyz-UVW_987"
)

// newLogger returns the kit's logger: checked for the tests' secrets at
// cleanup and printed when the test failed.
func newLogger(t *testing.T) *slog.Logger {
	t.Helper()
	log, _ := testkit.Logger(t, hungToken)
	return log
}

// newDiscord starts a fake Discord that never rate-limits and the real
// Discord channel pointed at it.
func newDiscord(t *testing.T) (*fake.Discord, *channels.Discord) {
	t.Helper()
	f := fake.NewDiscord(t)
	f.Limit(1_000_000, time.Second, 0)
	return f, relay.DiscordChannel(t, nil)
}

// marker is the text that identifies job n in a delivered message.
func marker(prefix string, n int) string { return fmt.Sprintf("[%s-%05d]", prefix, n) }

// key is how deliveries names job n's marker.
func key(prefix string, n int) string { return fmt.Sprintf("%s-%05d", prefix, n) }

var markerRE = regexp.MustCompile(`\[([a-z]+)-(\d{5})\]`)

// deliveries counts the requests to webhook id per job marker, keyed as key
// does. Only the healthy webhooks are counted by the tests, and the fake
// answers every one of their requests with success.
func deliveries(f *fake.Discord, id string) map[string]int {
	got := make(map[string]int)
	for _, r := range f.Requests() {
		if r.WebhookID != id {
			continue
		}
		for _, m := range markerRE.FindAllSubmatch(r.Raw, 1) {
			got[string(m[1])+"-"+string(m[2])]++
		}
	}
	return got
}

// discordJob is a Discord job to webhookURL whose text carries text.
func discordJob(t *testing.T, keys *crypto.Keyring, webhookURL, text string) *herald.Job {
	t.Helper()
	job := testkit.DiscordJob(t, keys, webhookURL, text)
	job.Source, job.Message.Title = "faulttest", "Fault test"
	return job
}

// connect opens Herald's own reconnecting connection to url, as
// cmd/herald's App.Open does, and ensures the jobs stream and the status
// bucket (one replica).
func connect(t *testing.T, ctx context.Context, url string, log *slog.Logger) (*nats.Conn, jetstream.JetStream, *status.Store) {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	nc, err := queue.Connect(cctx, url, "faulttest", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := queue.EnsureJobsStream(cctx, js, queue.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	kv, err := queue.EnsureStatusBucket(cctx, js, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js, status.New(kv, nc)
}
