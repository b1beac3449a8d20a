package pacing

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/channels"
	"github.com/heraldrelay/herald/consumer"
)

// unlimited is a Config under which no send is ever held.
var unlimited = Config{
	Discord:  DiscordConfig{GlobalRate: 1e12},
	Telegram: TelegramConfig{PerChat: 1e12, PerGroup: 1e12, PerBot: 1e12},
}

// BenchmarkMiddlewareUnlimited measures what the middleware adds to a send
// that is never limited: the state lookups, reservations and metrics.
func BenchmarkMiddlewareUnlimited(b *testing.B) {
	noop := func(context.Context, *consumer.Delivery) error { return nil }
	huge := channels.RateLimit{Bucket: "b", Limit: 1 << 30, Remaining: 1 << 30, ResetAfter: time.Hour, Present: true}
	newPacer := func(b *testing.B) *Pacer {
		p, err := New(unlimited, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		return p
	}
	b.Run("none", func(b *testing.B) {
		d := discordDelivery(hookA)
		b.ReportAllocs()
		for b.Loop() {
			_ = noop(context.Background(), d)
		}
	})
	b.Run("discord", func(b *testing.B) {
		p := newPacer(b)
		p.ObserveDiscord(hookA, huge, 204)
		h := p.Middleware(keyOfTarget)(noop)
		d := discordDelivery(hookA)
		b.ReportAllocs()
		for b.Loop() {
			if err := h(context.Background(), d); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("telegram", func(b *testing.B) {
		p := newPacer(b)
		h := p.Middleware(keyOfTarget)(noop)
		d := &consumer.Delivery{Notification: herald.Notification{
			Channel: herald.ChannelTelegram, Target: herald.Target{BotToken: chatKey1, ChatID: "42"},
		}}
		b.ReportAllocs()
		for b.Loop() {
			if err := h(context.Background(), d); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("discord-parallel", func(b *testing.B) {
		// Many workers, each on its own webhook of 64: the shared global
		// state is the contention point.
		p := newPacer(b)
		for i := range 64 {
			p.ObserveDiscord(fmt.Sprintf("discord:%d", i), huge, 204)
		}
		h := p.Middleware(keyOfTarget)(noop)
		var next atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			d := discordDelivery(fmt.Sprintf("discord:%d", next.Add(1)%64))
			for pb.Next() {
				if err := h(context.Background(), d); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}
