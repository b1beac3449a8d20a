package publisher_test

import (
	"testing"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/queue"
	"github.com/heraldrelay/herald/publisher"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkPublish measures one synchronous publish, acknowledgement
// included, against an embedded server with file storage.
func BenchmarkPublish(b *testing.B) {
	s := newTestServer(b)
	_, js, _ := newTestJetStream(b, s, queue.StreamConfig{})
	pub := publisher.New(js)
	ctx := testCtx(b)
	b.ReportAllocs()
	for b.Loop() {
		job := discordJob()
		if _, err := pub.Publish(ctx, job); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPublishParallel measures throughput with concurrent publishers,
// as an ingest serving many clients sees it.
func BenchmarkPublishParallel(b *testing.B) {
	s := newTestServer(b)
	_, js, _ := newTestJetStream(b, s, queue.StreamConfig{})
	pub := publisher.New(js)
	ctx := testCtx(b)
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := pub.Publish(ctx, discordJob()); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkJobPath is the whole path of one job through JetStream, one job
// at a time: Publish (complete, validate, encode, publish, acknowledgement),
// fetch from a durable pull consumer, herald.DecodeJob as the consumer
// does, ack. Set against the root package's BenchmarkCodec it gives the
// codec's share of the path (docs/performance.md, "The job codec").
func BenchmarkJobPath(b *testing.B) {
	s := newTestServer(b)
	_, js, _ := newTestJetStream(b, s, queue.StreamConfig{})
	ctx := testCtx(b)
	cons, err := js.CreateOrUpdateConsumer(ctx, herald.JobsStream, jetstream.ConsumerConfig{Durable: "bench", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		b.Fatal(err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(64))
	if err != nil {
		b.Fatal(err)
	}
	defer it.Stop()
	pub := publisher.New(js)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := pub.Publish(ctx, discordJob()); err != nil {
			b.Fatal(err)
		}
		m, err := it.Next()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := herald.DecodeJob(m.Data()); err != nil {
			b.Fatal(err)
		}
		if err := m.Ack(); err != nil {
			b.Fatal(err)
		}
	}
}
