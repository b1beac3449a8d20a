package ratelimit

import (
	"strconv"
	"sync"
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
