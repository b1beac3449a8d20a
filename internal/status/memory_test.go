package status_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/queue"
	"github.com/heraldrelay/herald/internal/status"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/nats-io/nats.go/jetstream"
)

// liveHeap is the heap in use after two collections.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkRetainedMemory measures what each job leaves in an embedded NATS
// server's memory, for as long as it is kept: a delivered job's status record
// (kept nats.delivered_status_ttl), and the duplicate-window entry of a job
// published with a Nats-Msg-Id and then acked (kept
// nats.stream.duplicate_window). Each is measured over 50,000 jobs; multiply
// by the jobs per second and the time kept for a deployment's figure.
//
//	go test ./internal/status -run '^$' -bench RetainedMemory -benchtime 1x
func BenchmarkRetainedMemory(b *testing.B) {
	const n = 50_000
	_, nc, js := testkit.JetStream(b)
	ctx := context.Background()
	kv, err := queue.EnsureStatusBucket(ctx, js, time.Hour, 1)
	if err != nil {
		b.Fatal(err)
	}
	store := status.New(kv, nc, status.WithDeliveredTTL(js, 15*time.Minute))
	jobs, err := queue.EnsureJobsStream(ctx, js, queue.StreamConfig{DuplicateWindow: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	cons, err := jobs.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "mem", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		b.Fatal(err)
	}
	created := time.Now()
	for range b.N {
		h0 := liveHeap()
		for range n {
			rec := herald.Status{ID: herald.NewID(), State: herald.StateDelivered, Channel: herald.ChannelDiscord, CreatedAt: created}
			if err := store.Put(ctx, rec); err != nil {
				b.Fatal(err)
			}
		}
		h1 := liveHeap()
		for range n {
			id := herald.NewID()
			if _, err := js.Publish(ctx, herald.JobIDSubject(herald.ChannelDiscord, id), []byte(`{}`), jetstream.WithMsgID(id)); err != nil {
				b.Fatal(err)
			}
		}
		acked := 0
		for acked < n {
			batch, err := cons.Fetch(1000)
			if err != nil {
				b.Fatal(err)
			}
			for m := range batch.Messages() {
				if err := m.DoubleAck(ctx); err != nil {
					b.Fatal(err)
				}
				acked++
			}
		}
		h2 := liveHeap()
		b.ReportMetric(float64(h1-h0)/n, "B/delivered-record")
		b.ReportMetric(float64(h2-h1)/n, "B/dedupe-entry")
	}
}
