package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrelay/herald/channels/fake"
)

// BenchmarkServeEndToEnd drives b.N jobs through the real `serve` wiring: HTTP
// POST /v1/notifications (64 concurrent clients) → JetStream (file storage) →
// workers → a Discord fake answering 204 at once. It reports jobs/s from the
// first request to the last delivery.
//
//	go test ./cmd/herald -run '^$' -bench ServeEndToEnd -benchtime 10000x
func BenchmarkServeEndToEnd(b *testing.B) {
	discord := fake.NewDiscord(b)
	// Measure Herald, not Discord's limits: buckets and the global rate are
	// set far above what the benchmark sends.
	discord.Limit(1_000_000, time.Second, 0)
	app := newBenchApp(b)
	const hooks = 100
	bodies := make([][]byte, hooks)
	for i := range bodies {
		sealed, _ := app.Keys.Seal(discord.WebhookURL(fmt.Sprint(1000+i), fmt.Sprintf("token-%d", i)))
		bodies[i] = []byte(fmt.Sprintf(`{"channel":"discord","credentials":{"webhook":%q},"message":{"title":"bench","text":"job"}}`, sealed))
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
	var next, failed atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				req, _ := http.NewRequest(http.MethodPost, app.URL+"/v1/notifications", bytes.NewReader(bodies[i%hooks]))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-API-Secret", testSecret)
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				// Drain before closing, or the connection is not reused and
				// every request dials anew.
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	accepted := time.Since(start)
	deadline := time.Now().Add(5 * time.Minute)
	for discord.Count() < b.N-int(failed.Load()) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d requests were not accepted", failed.Load())
	}
	if got := discord.Count(); got != b.N {
		b.Fatalf("delivered %d of %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/accepted.Seconds(), "accepted/s")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "delivered/s")
}

// newBenchApp is newTestApp for benchmarks: quiet logs, the real wiring.
func newBenchApp(b *testing.B) *testApp {
	b.Helper()
	return newAppFor(b, map[string]string{"HERALD_LOG_LEVEL": "warn", "HERALD_LOG_FORMAT": "text", "HERALD_INGEST_STREAKY_WAIT": "0s",
		"HERALD_CHANNELS_DISCORD_GLOBAL_RATE": "1000000"})
}
