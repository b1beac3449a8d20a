package publisher_test

import (
	"testing"

	"github.com/heraldrelay/herald/internal/queue"
	"github.com/heraldrelay/herald/publisher"
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
