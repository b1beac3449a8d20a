package main

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/fake"
	"github.com/heraldrelay/herald/internal/testkit"
)

// BenchmarkServeEndToEnd drives b.N jobs through the real `serve` wiring: HTTP
// POST /v1/notifications (64 concurrent clients) → JetStream (file storage) →
// workers → a Discord fake answering 204 at once. It reports jobs/s from the
// first request to the last delivery.
//
//	go test ./cmd/herald -run '^$' -bench ServeEndToEnd -benchtime 10000x
func BenchmarkServeEndToEnd(b *testing.B) {
	accepted, delivered := serveBench(b, nil, "/v1/notifications", http.StatusAccepted, func(sealed string, _ int) string {
		return fmt.Sprintf(`{"channel":"discord","credentials":{"webhook":%q},"message":{"title":"bench","text":"job"}}`, sealed)
	})
	b.ReportMetric(float64(b.N)/accepted.Seconds(), "accepted/s")
	b.ReportMetric(float64(b.N)/delivered.Seconds(), "delivered/s")
}

// BenchmarkServeStreakyWait is BenchmarkServeEndToEnd through the path
// Streaky's Worker takes by default: POST /send-notification, answered once
// the job is delivered (ingest.streaky.wait). Each request waits for its own
// delivery, so delivered/s is also answered/s.
//
//	go test ./cmd/herald -run '^$' -bench ServeStreakyWait -benchtime 10000x
func BenchmarkServeStreakyWait(b *testing.B) {
	_, delivered := serveBench(b, map[string]string{"HERALD_INGEST_STREAKY_WAIT": "10s"}, "/send-notification", http.StatusOK,
		func(sealed string, i int) string {
			return fmt.Sprintf(`{"type":"discord","encrypted_webhook":%q,"message":{"username":"octocat","message":"bench","current_streak":%d}}`, sealed, i)
		})
	b.ReportMetric(float64(b.N)/delivered.Seconds(), "delivered/s")
}

// serveBench drives b.N jobs through the real serve wiring (env added to
// newBenchApp's) from 64 clients: POST path with body(sealed webhook, i) for
// 100 webhooks of a Discord fake without limits, each answered want. It
// returns the time until the last answer and until the last delivery, and
// reports the CPU time of the whole process (Herald, its NATS server, the
// fake and the clients) per job: steadier than rates on a shared machine.
func serveBench(b *testing.B, env map[string]string, path string, want int, body func(sealed string, i int) string) (accepted, delivered time.Duration) {
	b.Helper()
	// Measure Herald, not Discord's limits: buckets and the global rate are
	// set far above what the benchmark sends.
	discord := unlimitedDiscord(b)
	app := newBenchApp(b, env)
	hook := benchWebhooks(b, app, discord)
	bodies := make([]string, len(hook))
	for i, sealed := range hook {
		bodies[i] = body(sealed, i)
	}
	b.ResetTimer()
	cpuStart := cpuTime()
	start := time.Now()
	failed := hammer(b.N, app.URL+path, want, func(i int) (string, string) {
		return bodies[i%len(bodies)], testSecret
	})
	accepted = time.Since(start)
	deadline := time.Now().Add(5 * time.Minute)
	for discord.Count() < b.N-int(failed) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	delivered = time.Since(start)
	cpu := cpuTime() - cpuStart
	b.StopTimer()
	if failed > 0 {
		b.Fatalf("%d requests were not answered %d", failed, want)
	}
	if got := discord.Count(); got != b.N {
		b.Fatalf("delivered %d of %d", got, b.N)
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/job")
	return accepted, delivered
}

// benchWebhooks is 100 webhooks of discord, sealed with the app's keys.
func benchWebhooks(b *testing.B, app *testApp, discord *fake.Discord) []string {
	b.Helper()
	hook := make([]string, 100)
	for i := range hook {
		hook[i] = testkit.Seal(b, app.Keys, discord.WebhookURL(fmt.Sprint(1000+i), fmt.Sprintf("token-%d", i)))
	}
	return hook
}

// BenchmarkServeLatency sends b.N jobs at a steady 1,000 per second (open
// loop: each at its own time, whatever the earlier ones are doing) through
// the real `serve` wiring to a Discord fake answering 204 at once, and
// reports latency percentiles in milliseconds up to each job's arrival at the
// fake: from its POST being sent (send-*) and from its 202 being read
// (accept-*; 0 when the delivery came first).
//
//	go test ./cmd/herald -run '^$' -bench ServeLatency -benchtime 10000x
func BenchmarkServeLatency(b *testing.B) {
	const rate = 1000 // jobs per second
	discord := unlimitedDiscord(b)
	app := newBenchApp(b, nil)
	hook := benchWebhooks(b, app, discord)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	sent := make([]time.Time, b.N)
	accepted := make([]time.Time, b.N)
	var failed atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / rate)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"channel":"discord","credentials":{"webhook":%q},"message":{"title":"bench","text":"lat-%d."}}`, hook[i%len(hook)], i)
			sent[i] = time.Now()
			code, err := send(client, app.URL+"/v1/notifications", testSecret, body)
			if err != nil {
				failed.Add(1)
				return
			}
			accepted[i] = time.Now()
			if code != http.StatusAccepted {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(time.Minute)
	for discord.Count() < b.N && time.Now().Before(deadline) && failed.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d requests were not accepted", failed.Load())
	}
	reqs := discord.Requests()
	if len(reqs) != b.N {
		b.Fatalf("delivered %d of %d", len(reqs), b.N)
	}
	fromSend := make([]time.Duration, 0, b.N)
	fromAccept := make([]time.Duration, 0, b.N)
	seen := make([]bool, b.N)
	for _, r := range reqs {
		_, rest, ok := bytes.Cut(r.Raw, []byte("lat-"))
		num, _, _ := bytes.Cut(rest, []byte("."))
		i, err := strconv.Atoi(string(num))
		if !ok || err != nil || i < 0 || i >= b.N || seen[i] {
			b.Fatalf("unexpected delivery %s", r.Raw)
		}
		seen[i] = true
		fromSend = append(fromSend, r.At.Sub(sent[i]))
		fromAccept = append(fromAccept, max(r.At.Sub(accepted[i]), 0))
	}
	report := func(name string, d []time.Duration) {
		slices.Sort(d)
		at := func(p float64) float64 {
			return float64(d[min(len(d)-1, int(p*float64(len(d))))]) / float64(time.Millisecond)
		}
		b.ReportMetric(at(0.50), name+"-p50-ms")
		b.ReportMetric(at(0.99), name+"-p99-ms")
		b.ReportMetric(at(1), name+"-max-ms")
	}
	report("send", fromSend)
	report("accept", fromAccept)
}
