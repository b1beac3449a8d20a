package breaker

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/consumer"
)

// BenchmarkMiddlewareClosed measures the hot path: a send through closed
// breakers (a Telegram destination and its bot), from parallel workers over
// 1,000 destinations.
func BenchmarkMiddlewareClosed(b *testing.B) {
	s, err := New(Config{}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	keys := make([][]string, 1000)
	for i := range keys {
		keys[i] = []string{fmt.Sprintf("telegram:%d:%016x", i%10, i), fmt.Sprintf("telegram:%d", i%10)}
	}
	var next atomic.Uint64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		d := &consumer.Delivery{Notification: herald.Notification{Channel: herald.ChannelTelegram}}
		mw := s.Middleware(func(herald.Notification) []string { return keys[next.Add(1)%uint64(len(keys))] })
		h := mw(func(context.Context, *consumer.Delivery) error { return nil })
		for pb.Next() {
			if err := h(ctx, d); err != nil {
				b.Fatal(err)
			}
		}
	})
}
