package consumer

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/metrics"
	"github.com/heraldrelay/herald/internal/queue"
	"github.com/heraldrelay/herald/publisher"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkPool pushes b.N jobs through a Pool to an in-process sender that
// always succeeds, and reports jobs/s: the Pool's own overhead (decode, open,
// ack, status) with a real JetStream, not a destination's speed.
func BenchmarkPool(b *testing.B) {
	_, _, js := testkit.JetStream(b)
	ctx := context.Background()
	if _, err := queue.EnsureJobsStream(ctx, js, queue.StreamConfig{}); err != nil {
		b.Fatal(err)
	}
	keys := testkit.Keyring(b)
	sealed := testkit.Seal(b, keys, testWebhookHost+webhookID+"/"+webhookToken)

	var delivered atomic.Int64
	all := make(chan struct{})
	target := int64(b.N)
	sender := senderFunc(func(context.Context, herald.Notification) error {
		if delivered.Add(1) == target {
			close(all)
		}
		return nil
	})
	p, err := New(Config{Workers: 64}, Deps{
		JS: js, Keys: keys,
		Senders: map[herald.Channel]Sender{herald.ChannelDiscord: sender},
		Status:  newRecordingStatus(),
		Logger:  slog.New(slog.DiscardHandler),
		Metrics: metrics.New(prometheus.NewRegistry()),
	})
	if err != nil {
		b.Fatal(err)
	}

	// Fill the stream first, so the timing covers delivery only.
	pub := publisher.New(js)
	for i := 0; i < b.N; i++ {
		job := &herald.Job{
			Channel:     herald.ChannelDiscord,
			Credentials: herald.Credentials{Webhook: sealed},
			Message:     herald.Message{Title: "bench", Text: fmt.Sprintf("job %d", i)},
		}
		if _, err := pub.Publish(ctx, job); err != nil {
			b.Fatal(err)
		}
	}

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	go func() { done <- p.Run(runCtx) }()
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		b.Fatalf("only %d of %d jobs delivered", delivered.Load(), b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "jobs/s")
}
