//go:build unix

package consumer

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/metrics"
	"github.com/heraldrelay/herald/internal/queue"
	"github.com/heraldrelay/herald/internal/status"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/publisher"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkParkedJobs parks 10,000 jobs (each told to wait an hour) through
// a Pool on an embedded JetStream server, and reports what parking costs:
// the process CPU per park (worker and server together: they share this
// process), the heap the waiting jobs keep (server and client, after a GC),
// and the bytes the parked stream stores per job. Run it with
//
//	go test -run '^$' -bench BenchmarkParkedJobs -benchtime 1x ./consumer
func BenchmarkParkedJobs(b *testing.B) {
	const jobs = 10000
	for range b.N {
		_, nc, js := testkit.JetStream(b)
		ctx := context.Background()
		if _, err := queue.EnsureJobsStream(ctx, js, queue.StreamConfig{}); err != nil {
			b.Fatal(err)
		}
		kv, err := queue.EnsureStatusBucket(ctx, js, time.Hour, 1)
		if err != nil {
			b.Fatal(err)
		}
		keys := testkit.Keyring(b)
		pub := publisher.New(js)
		for i := range jobs {
			if _, err := pub.Publish(ctx, testkit.DiscordJob(b, keys, testWebhookHost+webhookID+"/"+webhookToken, fmt.Sprintf("held %d", i))); err != nil {
				b.Fatal(err)
			}
		}
		p, err := New(Config{Workers: 32}, Deps{
			JS: js, Keys: keys,
			Senders: map[herald.Channel]Sender{herald.ChannelDiscord: newByText(time.Hour)},
			Status:  status.New(kv, nc),
			Logger:  slog.New(slog.DiscardHandler),
			Metrics: metrics.New(prometheus.NewRegistry()),
		})
		if err != nil {
			b.Fatal(err)
		}
		heapBefore := heapInUse()
		cpuBefore := processCPU()
		start := time.Now()
		b.StartTimer()
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- p.Run(runCtx) }()
		testkit.WaitFor(b, 5*time.Minute, "every job parked", func() bool {
			return testkit.StreamMsgs(b, js, herald.ParkedStream) == jobs && testkit.StreamMsgs(b, js, herald.JobsStream) == 0
		})
		b.StopTimer()
		took, cpu := time.Since(start), processCPU()-cpuBefore
		held := heapInUse() - heapBefore
		// The file store drops its caches of recent message blocks after a
		// few seconds idle: what stays is what a waiting job really costs.
		time.Sleep(15 * time.Second)
		settled := heapInUse() - heapBefore
		s, err := js.Stream(ctx, herald.ParkedStream)
		if err != nil {
			b.Fatal(err)
		}
		stored := s.CachedInfo().State.Bytes
		cancel()
		<-done
		b.ReportMetric(float64(took.Microseconds())/jobs, "µs/park")
		b.ReportMetric(float64(cpu.Microseconds())/jobs, "cpu-µs/park")
		b.ReportMetric(float64(held)/jobs, "heap-B/parked")
		b.ReportMetric(float64(settled)/jobs, "settled-heap-B/parked")
		b.ReportMetric(float64(stored)/jobs, "store-B/parked")
		b.Logf("%d jobs parked in %s: %.0f µs CPU each; %d KiB of heap at once, %d KiB 15 s later, and %d KiB of store held while they wait",
			jobs, took.Round(time.Millisecond), float64(cpu.Microseconds())/jobs, held>>10, settled>>10, stored>>10)
	}
}

func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
