package hung

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/consumer"
)

// BenchmarkMemoryPerDestination fills a Gate with MaxDestinations
// destinations and reports the heap each takes (bytes/destination).
func BenchmarkMemoryPerDestination(b *testing.B) {
	const n = DefaultMaxDestinations
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("discord:discord.com/%d:%032x", 100000000000000000+i, i)
	}
	var perEntry float64
	for b.Loop() {
		g, err := New(Config{MaxDestinations: n}, nil)
		if err != nil {
			b.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		now := time.Now()
		g.mu.Lock()
		for i, k := range keys {
			o := outcomeAnswered
			if i%2 == 0 {
				o = outcomeUnanswered
			}
			g.learnLocked(g.hash(k), o, now)
		}
		g.mu.Unlock()
		runtime.GC()
		runtime.ReadMemStats(&after)
		perEntry = float64(after.HeapAlloc-before.HeapAlloc) / n
		runtime.KeepAlive(g)
	}
	b.ReportMetric(perEntry, "bytes/destination")
}

// BenchmarkSend is the Gate's cost per send: to a trusted destination, and
// to a new one (which takes and gives back a place; its send is refused
// further in, so it stays new).
func BenchmarkSend(b *testing.B) {
	refused := &herald.RetryAfterError{After: time.Second, Err: herald.ErrPaced}
	for _, tc := range []struct {
		name string
		next consumer.Handler
	}{
		{"trusted", func(context.Context, *consumer.Delivery) error { return nil }},
		{"new", func(context.Context, *consumer.Delivery) error { return refused }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			g, err := New(Config{}, nil)
			if err != nil {
				b.Fatal(err)
			}
			h := g.Middleware(func(herald.Notification) string { return "discord:discord.com/1:abc" })(tc.next)
			d := &consumer.Delivery{Notification: herald.Notification{Channel: herald.ChannelDiscord}}
			ctx := context.Background()
			_ = h(ctx, d)
			b.ReportAllocs()
			for b.Loop() {
				_ = h(ctx, d)
			}
		})
	}
}
