package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"
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
			discord := unlimitedDiscord(b)
			app := newBenchApp(b, map[string]string{
				"HERALD_INGEST_API_SECRETS":                   strings.Join(secrets, ","),
				"HERALD_RATELIMIT_ENABLED":                    tc.enabled,
				"HERALD_RATELIMIT_GROUPS_STREAKY_MAX_TOKENS":  "1000000000",
				"HERALD_RATELIMIT_GROUPS_STREAKY_REFILL_RATE": "1000000000",
			})
			sealed := testkit.Seal(b, app.Keys, discord.WebhookURL("1", "tok"))
			body := fmt.Sprintf(`{"type":"discord","encrypted_webhook":%q,"message":{"username":"bench","current_streak":1,"message":"m"}}`, sealed)
			b.ResetTimer()
			start := time.Now()
			refused := hammer(b.N, app.URL+"/send-notification", http.StatusAccepted, func(i int) (string, string) {
				return body, secrets[i%tc.clients]
			})
			elapsed := time.Since(start)
			b.StopTimer()
			if refused > 0 {
				b.Fatalf("%d requests were not accepted", refused)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
		})
	}
}
