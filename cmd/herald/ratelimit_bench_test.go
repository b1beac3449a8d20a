package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/fake"
)

// BenchmarkIngestRateLimit measures what the token buckets cost the ingest:
// the same load (64 concurrent clients posting to the Streaky endpoint, which
// answers as soon as the job is stored) against `serve` with the limiter off,
// on with every request from one API client (a Worker), and on with the
// requests spread over 100 API clients (100 buckets). The buckets are large
// enough that nothing is refused: the figure is the cost of counting.
//
//	go test ./cmd/herald -run '^$' -bench IngestRateLimit -benchtime 5000x -count 3
func BenchmarkIngestRateLimit(b *testing.B) {
	secrets := make([]string, 100)
	for i := range secrets {
		secrets[i] = fmt.Sprintf("bench-client-secret-%03d", i)
	}
	for _, tc := range []struct {
		name    string
		enabled string
		clients int
	}{
		{"off", "false", 1},
		{"on-1-client", "true", 1},
		{"on-100-clients", "true", 100},
	} {
		b.Run(tc.name, func(b *testing.B) {
			discord := fake.NewDiscord(b)
			discord.Limit(1_000_000, time.Second, 0)
			app := newAppFor(b, map[string]string{
				"HERALD_LOG_LEVEL": "warn", "HERALD_LOG_FORMAT": "text", "HERALD_INGEST_STREAKY_WAIT": "0s",
				"HERALD_CHANNELS_DISCORD_GLOBAL_RATE":         "1000000",
				"HERALD_INGEST_API_SECRETS":                   strings.Join(secrets, ","),
				"HERALD_RATELIMIT_ENABLED":                    tc.enabled,
				"HERALD_RATELIMIT_GROUPS_STREAKY_MAX_TOKENS":  "1000000000",
				"HERALD_RATELIMIT_GROUPS_STREAKY_REFILL_RATE": "1000000000",
			})
			sealed, _ := app.Keys.Seal(discord.WebhookURL("1", "tok"))
			body := []byte(fmt.Sprintf(`{"type":"discord","encrypted_webhook":%q,"message":{"username":"bench","current_streak":1,"message":"m"}}`, sealed))
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
			var next, refused atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range 64 {
				wg.Go(func() {
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						req, _ := http.NewRequest(http.MethodPost, app.URL+"/send-notification", bytes.NewReader(body))
						req.Header.Set("Content-Type", "application/json")
						req.Header.Set("X-API-Secret", secrets[int(i)%tc.clients])
						resp, err := client.Do(req)
						if err != nil {
							refused.Add(1)
							continue
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != http.StatusOK {
							refused.Add(1)
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if n := refused.Load(); n > 0 {
				b.Fatalf("%d requests were not accepted", n)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
		})
	}
}
