package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/testkit"
)

// BenchmarkServeDeadDestinations sends b.N jobs, each to a webhook of its
// own that answers 404 Unknown Webhook (code 10015), through the real serve
// wiring, and reports the heap that remains per destination once every job
// is dead-lettered.
//
//	go test ./cmd/herald -run '^$' -bench ServeDeadDestinations -benchtime 20000x
func BenchmarkServeDeadDestinations(b *testing.B) {
	var requests atomic.Int64
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		requests.Add(1)
		// Discord's answer to a deleted webhook, rate-limit headers included.
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("X-RateLimit-Bucket", "41f9cd5d28af77da04563bcb1d67fdfd")
		h.Set("X-RateLimit-Limit", "5")
		h.Set("X-RateLimit-Remaining", "4")
		h.Set("X-RateLimit-Reset-After", "2")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"message": "Unknown Webhook", "code": 10015}`)
	}))
	b.Cleanup(dead.Close)
	// Logs are discarded: kept in the test's buffer they would be counted.
	app := startTestApp(b, roleServe, testAppConfig(b, benchEnv(nil)), nil, slog.New(slog.DiscardHandler))
	bodies := make([]string, b.N)
	for i := range bodies {
		url := fmt.Sprintf("%s/api/webhooks/%d/token-%d", dead.URL, 100000+i, i)
		bodies[i] = fmt.Sprintf(`{"channel":"discord","credentials":{"webhook":%q},"message":{"title":"bench","text":"job"}}`, testkit.Seal(b, app.Keys, url))
	}
	before := liveHeap()
	b.ResetTimer()
	failed := hammer(b.N, app.URL+"/v1/notifications", http.StatusAccepted, func(i int) (string, string) {
		return bodies[i-1], testSecret
	})
	testkit.WaitFor(b, 10*time.Minute, "every job dead-lettered", func() bool {
		return testkit.StreamMsgs(b, app.js, herald.DeadLetterStream) >= uint64(b.N)
	})
	b.StopTimer()
	if failed > 0 {
		b.Fatalf("%d requests failed", failed)
	}
	if got := requests.Load(); got != int64(b.N) {
		b.Fatalf("the webhooks got %d requests, want %d", got, b.N)
	}
	// JetStream's file store drops the message blocks it cached 10 s after
	// their last use: what is left after that is what stays.
	time.Sleep(12 * time.Second)
	after := liveHeap()
	runtime.KeepAlive(bodies)
	b.ReportMetric(float64(after-before)/float64(b.N), "B/destination")
	if p := os.Getenv("HERALD_BENCH_HEAP_PROFILE"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.WriteHeapProfile(f); err != nil {
			b.Fatal(err)
		}
	}
}

func liveHeap() uint64 {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
