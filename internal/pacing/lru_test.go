package pacing

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
)

type testEntry struct {
	n      int
	pinned bool
}

func (e *testEntry) busy() bool { return e.pinned }

func getOrAdd(c *cache[testEntry, *testEntry], key string) *testEntry {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.get(key); e != nil {
		return e
	}
	return s.add(key, testEntry{})
}

func TestCacheBound(t *testing.T) {
	for _, max := range []int{1, 10, 1000, cacheShards * minPerShard, 10_000} {
		c := newCache[testEntry](max, 1<<40, 100)
		for i := range 5 * max {
			getOrAdd(c, fmt.Sprintf("discord:%d", i)).n = i
		}
		if n := c.len(); n > max {
			t.Errorf("max %d: %d entries", max, n)
		}
		if n := c.len(); n < max*9/10 {
			t.Errorf("max %d: only %d entries kept", max, n)
		}
	}
}

func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	c := newCache[testEntry](3, 1<<40, 100)
	a := getOrAdd(c, "a")
	a.n = 1
	getOrAdd(c, "b")
	getOrAdd(c, "c")
	getOrAdd(c, "a") // a is now the most recently used
	getOrAdd(c, "d") // evicts b
	s := c.shard("b")
	if s.get("b") != nil {
		t.Error("b, least recently used, not evicted")
	}
	if e := s.get("a"); e == nil || e.n != 1 {
		t.Error("a, recently used, lost")
	}
}

func TestCacheKeepsBusyEntries(t *testing.T) {
	c := newCache[testEntry](2, 1<<40, 100)
	getOrAdd(c, "a").pinned = true
	getOrAdd(c, "b")
	getOrAdd(c, "c") // a is least recently used but busy: b goes
	s := c.shard("a")
	if s.get("a") == nil {
		t.Error("busy entry evicted")
	}
	if s.get("b") != nil {
		t.Error("idle entry kept instead of the busy one")
	}
	// All busy: the bound is exceeded rather than losing state in use.
	getOrAdd(c, "a").pinned = true
	getOrAdd(c, "c").pinned = true
	getOrAdd(c, "d").pinned = true
	if n := c.len(); n != 3 {
		t.Errorf("%d entries, want 3 (all busy)", n)
	}
}

func TestPacerStateBounded(t *testing.T) {
	const max = 50
	tp := newTestPacer(t, Config{MaxDestinations: max, Discord: DiscordConfig{GlobalRate: 1e6}, Telegram: TelegramConfig{PerBot: 1e6}})
	for i := range 10 * max {
		if called, err := tp.sendVia(t, fmt.Sprintf("discord:%d", i), nil); !called || err != nil {
			t.Fatalf("send %d: called %v, err %v", i, called, err)
		}
		key := fmt.Sprintf("telegram:%d:%016x", i, i)
		if called, err := tp.sendTelegramVia(t, key, "1", nil); !called || err != nil {
			t.Fatalf("telegram send %d: called %v, err %v", i, called, err)
		}
	}
	for name, n := range map[string]int{"discord": tp.dests.len(), "chats": tp.chats.len(), "bots": tp.bots.len()} {
		if n > max {
			t.Errorf("%s: %d entries, more than %d", name, n, max)
		}
	}
}

// BenchmarkCache measures the cache alone, as a send uses it (lock the
// shard, get or add): destinations seen before, and new ones that evict,
// serially and from many goroutines.
func BenchmarkCache(b *testing.B) {
	keys := make([]string, 1<<16)
	for i := range keys {
		keys[i] = "discord:" + strconv.Itoa(i)
	}
	for _, bc := range []struct {
		name      string
		size, set int // cache bound, keys cycled through
	}{
		{"hit", DefaultMaxDestinations, 1000},
		{"miss-evict", 4096, len(keys)},
	} {
		b.Run(bc.name+"/serial", func(b *testing.B) {
			c := newCache[testEntry](bc.size, 1<<40, 100)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				getOrAdd(c, keys[i%bc.set])
				i++
			}
		})
		b.Run(bc.name+"/parallel", func(b *testing.B) {
			c := newCache[testEntry](bc.size, 1<<40, 100)
			var next atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					getOrAdd(c, keys[next.Add(1)%int64(bc.set)])
				}
			})
		})
	}
}
