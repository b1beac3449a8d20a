package ratelimit

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

func TestLRUEvictsLeastRecentlyUsed(t *testing.T) {
	c := newLRU[int](2)
	*c.get("a") = 1
	*c.get("b") = 2
	c.get("a") // a is now the most recent
	*c.get("c") = 3
	if c.len() != 2 {
		t.Fatalf("len = %d, want 2", c.len())
	}
	if c.peek("b") != nil {
		t.Error("b, the least recently used, was kept")
	}
	if v := c.peek("a"); v == nil || *v != 1 {
		t.Error("a was evicted")
	}
	if v := c.get("b"); *v != 0 {
		t.Error("an evicted value came back")
	}
}

func TestLRUConcurrentBound(t *testing.T) {
	const size = 2048
	c := newLRU[int](size)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 3 * size {
				*c.get(strconv.Itoa(g) + "-" + strconv.Itoa(i)) = i
			}
		})
	}
	wg.Wait()
	if n := c.len(); n > size {
		t.Errorf("len = %d over the bound %d", n, size)
	}
}

func TestLRUConcurrentGetsShareOneValue(t *testing.T) {
	c := newLRU[int](16)
	got := make([]*int, 8)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() { got[i] = c.get("k") })
	}
	wg.Wait()
	for i, v := range got {
		if v != got[0] {
			t.Fatalf("get %d returned another value than get 0 for the same key", i)
		}
	}
}

// BenchmarkLRU measures the client cache alone, as Take uses it: clients
// seen before, and new ones that evict, serially and from many goroutines.
// (BenchmarkTake's figures are the store's round trips.)
func BenchmarkLRU(b *testing.B) {
	keys := clientKeys(1 << 16)
	for _, bc := range []struct {
		name      string
		size, set int // cache bound, keys cycled through
	}{
		{"hit", DefaultCacheSize, 1000},
		{"miss-evict", 4096, len(keys)},
	} {
		b.Run(bc.name+"/serial", func(b *testing.B) {
			c := newLRU[entry](bc.size)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				c.get(keys[i%bc.set])
				i++
			}
		})
		b.Run(bc.name+"/parallel", func(b *testing.B) {
			c := newLRU[entry](bc.size)
			var next atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					c.get(keys[next.Add(1)%int64(bc.set)])
				}
			})
		})
	}
}
