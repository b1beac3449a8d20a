package pacing

import (
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/channels"
)

// liveHeap is the heap in use after a collection.
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// TestCacheBytesCoverHeap checks the byte accounting of each kind of state
// against the heap: n entries, added the way sends add them (keys made as
// channels' Destination makes them, Discord buckets learned from headers),
// must take no more of the heap than the cache accounts for them. Several n
// are tried, since a map's share per entry is largest right after it grew.
// Not parallel: it reads the heap of the whole test binary.
func TestCacheBytesCoverHeap(t *testing.T) {
	now := time.Now()
	rl := channels.RateLimit{Present: true, Limit: 5, Remaining: 4, ResetAfter: 2 * time.Second, Bucket: "41f9cd5d28af77da04563bcb1d67fdfd"}
	kinds := []struct {
		name string
		// fill adds n entries and returns the bytes accounted for them;
		// keep holds the cache alive until the heap is read.
		fill func(n int, keep *any) int64
	}{
		{"discord webhook", func(n int, keep *any) int64 {
			c := newCache[discordDest](1<<30, 1<<40, discordDestBytes)
			*keep = c
			for i := range n {
				key := fmt.Sprintf("discord:discord.com/%d:%016x", 1_200_000_000_000_000_000+i, i)
				sh := c.shard(key)
				sh.mu.Lock()
				e := sh.add(key, discordDest{})
				e.sent, e.inflight = 1, 1
				e.observe(rl, now)
				e.release(true)
				sh.mu.Unlock()
			}
			return c.bytes()
		}},
		{"telegram chat", func(n int, keep *any) int64 {
			c := newCache[tgChat](1<<30, 1<<40, tgChatBytes)
			*keep = c
			for i := range n {
				key := fmt.Sprintf("telegram:%d.%016x:%016x", 7_000_000_000+i%100, i%100, i)
				sh := c.shard(key)
				sh.mu.Lock()
				e := sh.add(key, tgChat{tgLimit: newTGLimit(1)})
				e.lim.ReserveN(now, 1)
				sh.mu.Unlock()
			}
			return c.bytes()
		}},
		{"telegram bot", func(n int, keep *any) int64 {
			c := newCache[tgBot](1<<30, 1<<40, tgBotBytes)
			*keep = c
			for i := range n {
				key := fmt.Sprintf("telegram:%d.%016x", 7_000_000_000+i, i)
				sh := c.shard(key)
				sh.mu.Lock()
				e := sh.add(key, tgBot{tgLimit: newTGLimit(30)})
				e.lim.ReserveN(now, 1)
				sh.mu.Unlock()
			}
			return c.bytes()
		}},
		{"bad destination", func(n int, keep *any) int64 {
			c := expirable.NewLRU[string, struct{}](n, nil, time.Hour)
			*keep = c
			for i := range n {
				c.Add(fmt.Sprintf("discord:discord.com/%d:%016x", 1_200_000_000_000_000_000+i, i), struct{}{})
			}
			return int64(n) * (badDestBytes + keyBytes)
		}},
	}
	for _, k := range kinds {
		worst := 0.0
		for _, n := range []int{3000, 7000, 13000, 25000} {
			var keep any
			h0 := liveHeap()
			accounted := k.fill(n, &keep)
			heap := liveHeap() - h0
			runtime.KeepAlive(keep)
			per, acc := float64(heap)/float64(n), float64(accounted)/float64(n)
			worst = max(worst, per)
			t.Logf("%s: %d entries take %.0f B each on the heap, accounted %.0f", k.name, n, per, acc)
			if per > acc {
				t.Errorf("%s: %d entries take %.0f B each on the heap, more than the %.0f accounted", k.name, n, per, acc)
			}
		}
		t.Logf("%s: at most %.0f B per entry", k.name, worst)
	}
}

// TestPacerStateBoundedInBytes floods a Pacer with far more destinations
// than its MaxMemory holds, each of them learned (a Discord webhook that
// answered with rate-limit headers, a Telegram chat and bot that were sent
// to): the bytes accounted stay within MaxMemory per kind, the heap grows by
// no more than that, and the most recently used destinations keep what they
// learned. Not parallel: it reads the heap of the whole test binary.
func TestPacerStateBoundedInBytes(t *testing.T) {
	const (
		budget = 128 << 10
		n      = 20_000 // about 7 MB of state without a byte bound
	)
	tp := newTestPacer(t, Config{MaxMemory: budget, Discord: DiscordConfig{GlobalRate: 1e6}, Telegram: TelegramConfig{PerBot: 1e6}})
	key := func(i int) string { return fmt.Sprintf("discord:discord.com/%d:%016x", 1_200_000_000_000_000_000+i, i) }
	h0 := liveHeap()
	for i := range n {
		k := key(i)
		called, err := tp.sendVia(t, k, func() error {
			tp.ObserveDiscord(k, headers(0, 1500*time.Millisecond), http.StatusNoContent)
			return nil
		})
		if !called || err != nil {
			t.Fatalf("send %d: called %v, err %v", i, called, err)
		}
		tk := fmt.Sprintf("telegram:%d.%016x:%016x", 7_000_000_000+i, i, i)
		if called, err := tp.sendTelegramVia(t, tk, "1", nil); !called || err != nil {
			t.Fatalf("telegram send %d: called %v, err %v", i, called, err)
		}
	}
	grew := liveHeap() - h0
	for name, c := range map[string]interface{ bytes() int64 }{"discord": tp.dests, "chats": tp.chats, "bots": tp.bots} {
		if b := c.bytes(); b > budget {
			t.Errorf("%s: %d bytes accounted, more than MaxMemory %d", name, b, budget)
		}
	}
	// Three kinds, each within budget, plus the Pacer's fixed state and the
	// test's own (the log buffer, metrics): 256 KiB.
	if limit := int64(3*budget + 256<<10); grew > limit {
		t.Errorf("heap grew %d bytes over %d destinations, more than %d", grew, n, limit)
	}
	t.Logf("heap grew %d bytes over %d destinations of each kind (MaxMemory %d per kind)", grew, n, budget)

	// The latest webhook still knows its bucket is spent: the next send
	// waits for the reset. An early one was forgotten: it starts over, one
	// request at a time, which its first send is.
	tp.clock.slept()
	if called, err := tp.sendVia(t, key(n-1), nil); !called || err != nil || len(tp.clock.slept()) == 0 {
		t.Errorf("send to the latest webhook: called %v, err %v; want it held until its spent bucket resets", called, err)
	}
	if sh := tp.dests.shard(key(0)); sh.get(key(0)) != nil {
		t.Error("the first webhook is still kept")
	}
}

// TestDeadWebhooksLeaveNoState: a webhook that answers 404 Unknown Webhook
// (or 401/403), or answers without rate-limit headers, leaves no pacing
// state once its send is done; one that taught its bucket keeps it.
func TestDeadWebhooksLeaveNoState(t *testing.T) {
	t.Parallel()
	tp := newTestPacer(t, Config{Discord: DiscordConfig{GlobalRate: 1e6}})
	gone := func(status int) func(k string) error {
		return func(k string) error {
			tp.ObserveDiscord(k, headers(4, 2*time.Second), status)
			return herald.Permanent(&herald.DestinationError{Channel: herald.ChannelDiscord, StatusCode: status, Code: 10015})
		}
	}
	for i, respond := range []func(k string) error{
		gone(http.StatusNotFound), gone(http.StatusUnauthorized), gone(http.StatusForbidden),
		func(string) error { return errors.New("timeout") }, // no answer, nothing learned
		func(string) error { return nil },                   // 204 without headers
	} {
		k := fmt.Sprintf("discord:discord.com/%d:0123456789abcdef", i)
		if called, _ := tp.sendVia(t, k, func() error { return respond(k) }); !called {
			t.Fatalf("send %d not made", i)
		}
		if n := tp.dests.len(); n != 0 {
			t.Fatalf("answer %d left %d entries, want none", i, n)
		}
	}
	if b := tp.dests.bytes(); b != 0 {
		t.Errorf("%d bytes accounted with no entry", b)
	}
	// A 400 (a bad message) says nothing about the webhook: what its
	// headers taught is kept.
	k := "discord:discord.com/42:0123456789abcdef"
	tp.sendVia(t, k, func() error {
		tp.ObserveDiscord(k, headers(4, 2*time.Second), http.StatusBadRequest)
		return herald.Permanent(&herald.DestinationError{Channel: herald.ChannelDiscord, StatusCode: http.StatusBadRequest})
	})
	if n := tp.dests.len(); n != 1 {
		t.Errorf("%d entries after a 400 with headers, want 1", n)
	}
}
