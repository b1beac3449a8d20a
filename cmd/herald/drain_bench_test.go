package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/crypto"
	"github.com/heraldrelay/herald/internal/fake"
	"github.com/heraldrelay/herald/internal/queue"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/publisher"
)

// BenchmarkWorkerDrain preloads b.N jobs into the jobs stream of a NATS
// server (file storage), then drains them to a Discord fake answering 204 at
// once, and reports jobs/s and the CPU of the whole process per job (the NATS
// server and the fake included, the same in both):
//
//   - herald: `herald worker` (the real wiring: open, pacing, breakers,
//     status records, metrics) with its default workers;
//
//   - bare: the least a relay consuming the stream does, pull → open → POST
//     → ack, with as many workers.
//
//     go test ./cmd/herald -run '^$' -bench WorkerDrain -benchtime 20000x -count 3
func BenchmarkWorkerDrain(b *testing.B) {
	b.Run("herald", func(b *testing.B) {
		srv, discord, _ := preloadedStream(b, b.N)
		env := sharedNATSEnv(srv.URL())
		env["HERALD_LOG_LEVEL"], env["HERALD_LOG_FORMAT"] = "warn", "text"
		env["HERALD_CHANNELS_DISCORD_GLOBAL_RATE"] = "1000000"
		newTestAppAs(b, roleWorker, env)
		measureDrain(b, discord)
	})
	b.Run("bare", func(b *testing.B) {
		srv, discord, keys := preloadedStream(b, b.N)
		_, js := testkit.Connect(b, srv.URL())
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go bareDrain(ctx, b, js, keys, defaultWorkers())
		measureDrain(b, discord)
	})
}

// defaultWorkers is consumer.workers' default.
func defaultWorkers() int {
	n, _ := strconv.Atoi(fmt.Sprint(defaults["consumer.workers"]))
	return n
}

// preloadedStream starts a NATS server holding n Discord jobs for 100
// webhooks of a fake Discord without limits.
func preloadedStream(b *testing.B, n int) (*testkit.Server, *fake.Discord, *crypto.Keyring) {
	b.Helper()
	b.StopTimer()
	srv, _, js := testkit.JetStream(b)
	ctx := context.Background()
	if _, err := queue.EnsureJobsStream(ctx, js, queue.StreamConfig{}); err != nil {
		b.Fatal(err)
	}
	discord := unlimitedDiscord(b)
	keys := testkit.Keyring(b)
	hooks := make([]string, 100)
	for i := range hooks {
		hooks[i] = testkit.Seal(b, keys, discord.WebhookURL(fmt.Sprint(1000+i), fmt.Sprintf("token-%d", i)))
	}
	pub := publisher.New(js)
	for i := range n {
		job := &herald.Job{Channel: herald.ChannelDiscord, Credentials: herald.Credentials{Webhook: hooks[i%len(hooks)]},
			Message: herald.Message{Title: "drain", Text: fmt.Sprintf("job %d", i)}}
		if _, err := pub.Publish(ctx, job); err != nil {
			b.Fatal(err)
		}
	}
	return srv, discord, keys
}

// measureDrain times the drain until the fake saw b.N messages.
func measureDrain(b *testing.B, discord *fake.Discord) {
	b.Helper()
	cpu0, start := cpuTime(), time.Now()
	b.StartTimer()
	deadline := start.Add(5 * time.Minute)
	for discord.Count() < b.N && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	if got := discord.Count(); got < b.N {
		b.Fatalf("delivered %d of %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "jobs/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/job")
}

// bareDrain consumes the jobs stream with workers goroutines: decode, open
// the webhook, POST, ack. Nothing else: no status, no pacing, no retries.
func bareDrain(ctx context.Context, b *testing.B, js jetstream.JetStream, keys *crypto.Keyring, workers int) {
	cons, err := js.CreateOrUpdateConsumer(ctx, herald.JobsStream, jetstream.ConsumerConfig{
		Durable: "bare", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 10_000,
	})
	if err != nil {
		b.Error(err)
		return
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024}}
	msgs := make(chan jetstream.Msg)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case msgs <- m:
		case <-ctx.Done():
		}
	}, jetstream.PullMaxMessages(2*workers))
	if err != nil {
		b.Error(err)
		return
	}
	defer cc.Stop()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				select {
				case m := <-msgs:
					bareSend(client, keys, m)
				case <-ctx.Done():
					return
				}
			}
		})
	}
	wg.Wait()
}

func bareSend(client *http.Client, keys *crypto.Keyring, m jetstream.Msg) {
	job, err := herald.DecodeJob(m.Data())
	if err != nil {
		_ = m.Term()
		return
	}
	url, err := keys.Open(job.Credentials.Webhook)
	if err != nil {
		_ = m.Term()
		return
	}
	body := []byte(`{"embeds":[{"title":` + strconv.Quote(job.Message.Title) + `,"description":` + strconv.Quote(job.Message.Text) + `}]}`)
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		_ = m.Nak()
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	_ = m.Ack()
}
