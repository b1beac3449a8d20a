package breaker

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// liveHeap is the heap in use after a collection.
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// destKey is a destination key as channels' Destination makes it.
func destKey(i int) string {
	return fmt.Sprintf("discord:discord.com/%d:%016x", 1_200_000_000_000_000_000+i, i)
}

// TestBreakerBytesCoverHeap checks the byte accounting against the heap: n
// breakers, each created by a failure as sends create them, must take no
// more of the heap than the Set accounts for them. Several n are tried,
// since a map's share per entry is largest right after it grew. Not
// parallel: it reads the heap of the whole test binary.
func TestBreakerBytesCoverHeap(t *testing.T) {
	worst := 0.0
	for _, n := range []int{3000, 7000, 13000, 25000} {
		h0 := liveHeap()
		x := newTestSet(t, Config{Failures: 5, MaxMemory: 1 << 40})
		for i := range n {
			x.fail(destKey(i))
		}
		heap := liveHeap() - h0
		if x.Len() != n {
			t.Fatalf("%d breakers, want %d", x.Len(), n)
		}
		per, acc := float64(heap)/float64(n), float64(x.Bytes())/float64(n)
		runtime.KeepAlive(x)
		worst = max(worst, per)
		t.Logf("%d breakers take %.0f B each on the heap, accounted %.0f", n, per, acc)
		if per > acc {
			t.Errorf("%d breakers take %.0f B each on the heap, more than the %.0f accounted", n, per, acc)
		}
	}
	t.Logf("at most %.0f B per breaker", worst)
}

// TestMemoryBound sends to far more failing destinations than MaxMemory
// holds: the bytes accounted stay within it, the heap grows by no more,
// and the breakers kept still work (a destination failing again opens).
// Not parallel: it reads the heap of the whole test binary.
func TestMemoryBound(t *testing.T) {
	const (
		budget = 128 << 10
		n      = 20_000 // about 13 MB of breakers without a byte bound
	)
	x := newTestSet(t, Config{Failures: 2, OpenTimeout: time.Hour, MaxMemory: budget})
	h0 := liveHeap()
	for i := range n {
		x.fail(destKey(i))
		if b := x.Bytes(); b > budget {
			t.Fatalf("%d bytes accounted after %d destinations, more than MaxMemory %d", b, i+1, budget)
		}
	}
	grew := liveHeap() - h0
	// The breakers, plus the test's log buffer and metrics: 128 KiB.
	if limit := int64(budget + 128<<10); grew > limit {
		t.Errorf("heap grew %d bytes over %d failing destinations, more than %d", grew, n, limit)
	}
	t.Logf("heap grew %d bytes over %d failing destinations (MaxMemory %d): %d breakers kept", grew, n, budget, x.Len())
	// The latest destination's failure is on record: one more opens it.
	x.fail(destKey(n - 1))
	if st := x.State(destKey(n - 1)); st.String() != "open" {
		t.Errorf("latest destination's breaker is %s after its second failure, want open", st)
	}
	// The first was forgotten: closed, its failure lost.
	if st := x.State(destKey(0)); st.String() != "closed" {
		t.Errorf("first destination's breaker is %s, want forgotten (closed)", st)
	}
	if got := x.gaugeTotal("discord"); got != x.Len() {
		t.Errorf("gauges total %d, Len %d", got, x.Len())
	}
}

// TestDeadDestinationsLeaveNoBreaker: destinations that answer a permanent
// error (404 Unknown Webhook) or succeed have nothing on record and keep no
// breaker; a breaker whose failures a success cleared is forgotten.
func TestDeadDestinationsLeaveNoBreaker(t *testing.T) {
	t.Parallel()
	x := newTestSet(t, Config{Failures: 3})
	for i := range 1000 {
		respond := func() error { return errPermanent }
		if i%2 == 1 {
			respond = func() error { return nil }
		}
		if _, called := x.call([]string{destKey(i)}, respond); !called {
			t.Fatalf("send %d not made", i)
		}
	}
	if n := x.Len(); n != 0 {
		t.Errorf("%d breakers after sends that never failed, want none", n)
	}
	x.fail(destKey(0))
	x.fail(destKey(0))
	if n := x.Len(); n != 1 {
		t.Fatalf("%d breakers after two failures, want 1", n)
	}
	x.call([]string{destKey(0)}, func() error { return nil })
	if n, b := x.Len(), x.Bytes(); n != 0 || b != 0 {
		t.Errorf("%d breakers, %d bytes after a success cleared the failures, want none", n, b)
	}
	// Its count started over: two failures do not open it, a third does.
	x.fail(destKey(0))
	x.fail(destKey(0))
	if st := x.State(destKey(0)); st.String() != "closed" {
		t.Errorf("breaker %s after two new failures, want closed", st)
	}
	x.fail(destKey(0))
	if st := x.State(destKey(0)); st.String() != "open" {
		t.Errorf("breaker %s after three failures in a row, want open", st)
	}
}
