package challenge

import (
	"sync"
	"time"
)

// Bounds of the in-memory offender counts.
const (
	// offenderWindow is how long a client's count of unsolved or failed
	// challenges is remembered after its first one.
	offenderWindow = 10 * time.Minute
	// maxTracked bounds the memory of each tally: a flood of distinct
	// clients evicts arbitrary entries rather than grow without end.
	maxTracked = 10000
	// evictBatch is how many arbitrary entries go when a full tally has
	// nothing expired, so the next inserts are cheap again.
	evictBatch = maxTracked / 100
	// maxUnsolved is how many unsolved challenges one bucket key may hold
	// within the window; past it the 429 carries no new challenge, so a
	// client that never solves cannot turn each refused request into a KV
	// write.
	maxUnsolved = 100
	// failureLogAt is the number of failed verifications from one address
	// within the window that is logged as unusual.
	failureLogAt = 10
)

// tally counts events per key within offenderWindow. Counts are per process:
// with several replicas each keeps its own, which is enough to raise the
// difficulty of a client that keeps coming back. It is safe for concurrent
// use.
type tally struct {
	mu sync.Mutex
	m  map[string]*count
}

type count struct {
	n     int
	start time.Time
}

func newTally() *tally { return &tally{m: make(map[string]*count)} }

// add counts one event for key at now and returns the count within the
// window, this one included.
func (t *tally) add(key string, now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.m[key]
	if !ok {
		if len(t.m) >= maxTracked {
			t.evict(now)
		}
		c = &count{start: now}
		t.m[key] = c
	}
	if now.Sub(c.start) > offenderWindow {
		c.n, c.start = 0, now
	}
	c.n++
	return c.n
}

// get returns key's count within the window at now, and the first moment
// the count is forgotten (zero time when it is 0).
func (t *tally) get(key string, now time.Time) (int, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.m[key]
	if !ok || now.Sub(c.start) > offenderWindow {
		return 0, time.Time{}
	}
	return c.n, c.start.Add(offenderWindow + time.Nanosecond)
}

// reset forgets key.
func (t *tally) reset(key string) {
	t.mu.Lock()
	delete(t.m, key)
	t.mu.Unlock()
}

// evict drops expired entries, or else evictBatch arbitrary ones. t.mu is
// held.
func (t *tally) evict(now time.Time) {
	for k, c := range t.m {
		if now.Sub(c.start) > offenderWindow {
			delete(t.m, k)
		}
	}
	for k := range t.m {
		if len(t.m) <= maxTracked-evictBatch {
			break
		}
		delete(t.m, k)
	}
}
