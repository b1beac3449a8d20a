package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
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
	dead, requests := deadWebhooks(b)
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
	if p := os.Getenv("HERALD_BENCH_PEAK_PROFILE"); p != "" {
		writeHeapProfile(b, p)
	}
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
		writeHeapProfile(b, p)
	}
}

// writeHeapProfile writes the heap profile to path.
func writeHeapProfile(b *testing.B, path string) {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
}

func liveHeap() uint64 {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkServeDeadDestinationsRSS is BenchmarkServeDeadDestinations
// against the real binary: it starts `herald serve` with its defaults (but
// the Discord global rate and the per-client limit, which would only slow
// the run), sends b.N jobs to b.N webhooks that answer 404 Unknown Webhook,
// and reports the process's resident memory (VmRSS) before, at its peak
// (VmHWM) and 15 s after the last answer. Linux only.
//
//	go test ./cmd/herald -run '^$' -bench ServeDeadDestinationsRSS -benchtime 100000x
func BenchmarkServeDeadDestinationsRSS(b *testing.B) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		b.Skip("needs /proc")
	}
	bin := buildHerald(b)
	dead, requests := deadWebhooks(b)
	dir := b.TempDir()
	addr := testkit.Addr(testkit.FreePort(b))
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(),
		"HERALD_DATA_DIR="+dir, "HERALD_HTTP_ADDR="+addr, "HERALD_NATS_EMBEDDED_LISTEN=127.0.0.1:-1",
		"HERALD_LOG_LEVEL=error", "HERALD_CHANNELS_DISCORD_ALLOWED_HOSTS=127.0.0.1", "HERALD_CHANNELS_DISCORD_ALLOW_HTTP=true",
		"HERALD_CHANNELS_DISCORD_GLOBAL_RATE=1000000", "HERALD_RATELIMIT_ENABLED=false", "HERALD_INGEST_STREAKY_WAIT=0s",
		"ENCRYPTION_KEY="+testkit.Key, "VPS_SECRET="+testSecret)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	url := "http://" + addr
	testkit.WaitFor(b, 30*time.Second, "herald serve ready", func() bool {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	keys := testkit.Keyring(b)
	bodies := make([]string, b.N)
	for i := range bodies {
		hook := fmt.Sprintf("%s/api/webhooks/%d/token-%d", dead.URL, 100000+i, i)
		bodies[i] = fmt.Sprintf(`{"channel":"discord","credentials":{"webhook":%q},"message":{"title":"bench","text":"job"}}`, testkit.Seal(b, keys, hook))
	}
	time.Sleep(2 * time.Second)
	idle := procKB(b, cmd.Process.Pid, "VmRSS:")
	b.ResetTimer()
	failed := hammer(b.N, url+"/v1/notifications", http.StatusAccepted, func(i int) (string, string) { return bodies[i-1], testSecret })
	testkit.WaitFor(b, 30*time.Minute, "every webhook called", func() bool { return requests.Load() >= int64(b.N) })
	b.StopTimer()
	if failed > 0 {
		b.Fatalf("%d requests failed", failed)
	}
	time.Sleep(15 * time.Second)
	rss, peak := procKB(b, cmd.Process.Pid, "VmRSS:"), procKB(b, cmd.Process.Pid, "VmHWM:")
	b.ReportMetric(float64(idle)/1024, "idle-MiB")
	b.ReportMetric(float64(peak)/1024, "peak-MiB")
	b.ReportMetric(float64(rss)/1024, "after-MiB")
	b.ReportMetric(float64(rss-idle)*1024/float64(b.N), "B/destination")
	// A minute after: the process has been quiet long enough to give back
	// what the burst's heap no longer needs (internal/memtrim).
	time.Sleep(45 * time.Second)
	b.ReportMetric(float64(procKB(b, cmd.Process.Pid, "VmRSS:"))/1024, "minute-MiB")
	// Three minutes after: the duplicate window (2 minutes) has let go of
	// the jobs' ids too.
	time.Sleep(2*time.Minute + 15*time.Second)
	settled := procKB(b, cmd.Process.Pid, "VmRSS:")
	b.ReportMetric(float64(settled)/1024, "settled-MiB")
}

// procKB reads a field of /proc/<pid>/status, in kB.
func procKB(b *testing.B, pid int, field string) int64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// deadWebhooks is a Discord stand-in whose every webhook is deleted: it
// answers 404 Unknown Webhook (code 10015) with Discord's rate-limit
// headers, and counts the requests.
func deadWebhooks(b *testing.B) (*httptest.Server, *atomic.Int64) {
	b.Helper()
	requests := new(atomic.Int64)
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
	return dead, requests
}
