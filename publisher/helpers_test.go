package publisher_test

import (
	"context"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/queue"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// newTestServer runs a JetStream server on a free loopback port.
func newTestServer(tb testing.TB) *server.Server {
	tb.Helper()
	return testkit.NewServer(tb).NATS()
}

// newTestJetStream connects to s and ensures the jobs stream with cfg.
func newTestJetStream(tb testing.TB, s *server.Server, cfg queue.StreamConfig) (*nats.Conn, jetstream.JetStream, jetstream.Stream) {
	tb.Helper()
	nc, js := testkit.Connect(tb, s.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := queue.EnsureJobsStream(ctx, js, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return nc, js, st
}

func testCtx(tb testing.TB) context.Context {
	tb.Helper()
	return testkit.Context(tb, 20*time.Second)
}

func msgCount(tb testing.TB, st jetstream.Stream) uint64 {
	tb.Helper()
	info, err := st.Info(testCtx(tb))
	if err != nil {
		tb.Fatal(err)
	}
	return info.State.Msgs
}

const sealedWebhook = "q2xvc2VkLXdlYmhvb2stbm90LXJlYWxseS1hLXdlYmhvb2stdXJsLWJ1dC1iYXNlNjQ="

func discordJob() *herald.Job {
	color := 0x3366ff
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	return &herald.Job{
		Channel:     herald.ChannelDiscord,
		Source:      "test",
		Credentials: herald.Credentials{Webhook: sealedWebhook},
		Message: herald.Message{
			Title:     "Deploy finished",
			Text:      "api v1.2.3 is live <b>&</b> \"quoted\" – ünïcode",
			URL:       "https://example.com/deploys/42",
			Color:     &color,
			Fields:    []herald.Field{{Name: "env", Value: "prod", Inline: true, Icon: "🚀"}, {Name: "took", Value: "42s"}},
			Footer:    "herald",
			Username:  "Deploy bot",
			Timestamp: &ts,
		},
	}
}
