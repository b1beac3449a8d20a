package pacing

import (
	"hash/maphash"
	"math"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Sharding keeps lock contention low when many workers pace different
// destinations at once; small caches use one shard so the bound is exact.
const (
	cacheShards       = 16
	minPerShard       = 128 // below cacheShards*minPerShard entries, one shard
	maxEvictionProbes = 8   // busy entries skipped per insert before giving up
)

// busier is per-destination state that may be pinned while a send uses it.
type busier interface{ busy() bool }

// cache is a bounded map of per-destination state, sharded, with least
// recently used eviction per shard (hashicorp/golang-lru's simplelru, which
// the shard's lock guards: the lock covers the entry too, so the library's
// locked Cache would only add a second lock). Callers lock a shard, get or
// add the entry, use it and unlock: an entry is only touched under its
// shard's lock. A busy entry is never evicted (see add), and no entry
// expires by age: what it holds (blocks, windows, rates) is checked against
// the clock when used, so an old entry is merely idle.
type cache[V any, P interface {
	*V
	busier
}] struct {
	seed   maphash.Seed
	shards []cacheShard[V, P]
}

type cacheShard[V any, P interface {
	*V
	busier
}] struct {
	mu  sync.Mutex
	lru *simplelru.LRU[string, P]
	max int
}

// newCache returns a cache holding at most maxEntries entries, except that a
// shard full of busy entries may briefly hold more (at most one per send in
// flight).
func newCache[V any, P interface {
	*V
	busier
}](maxEntries int) *cache[V, P] {
	n := 1
	if maxEntries >= cacheShards*minPerShard {
		n = cacheShards
	}
	c := &cache[V, P]{seed: maphash.MakeSeed(), shards: make([]cacheShard[V, P], n)}
	for i := range c.shards {
		// The shard enforces its bound itself (add), skipping busy entries;
		// the library's own bound is out of the way.
		l, err := simplelru.NewLRU[string, P](math.MaxInt, nil)
		if err != nil {
			panic(err) // only for a size below one
		}
		c.shards[i].lru = l
		c.shards[i].max = max(maxEntries/n, 1)
	}
	return c
}

// shard returns key's shard, unlocked.
func (c *cache[V, P]) shard(key string) *cacheShard[V, P] {
	if len(c.shards) == 1 {
		return &c.shards[0]
	}
	return &c.shards[maphash.String(c.seed, key)%uint64(len(c.shards))]
}

// len returns the number of entries (for tests and sizing).
func (c *cache[V, P]) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += s.lru.Len()
		s.mu.Unlock()
	}
	return n
}

// get returns key's entry, marked most recently used, or nil. s.mu is held.
func (s *cacheShard[V, P]) get(key string) P {
	e, _ := s.lru.Get(key)
	return e
}

// add inserts val under key (absent) and returns a pointer to the stored
// value, which stays valid until the entry is evicted. When the shard is
// over its bound, the least recently used entries that are not busy are
// evicted; a busy one met on the way is marked used (a send holds it) and
// kept. s.mu is held.
func (s *cacheShard[V, P]) add(key string, val V) P {
	e := P(&val)
	s.lru.Add(key, e)
	for probes := 0; probes < maxEvictionProbes && s.lru.Len() > s.max; probes++ {
		k, old, ok := s.lru.GetOldest()
		if !ok || k == key {
			break
		}
		if old.busy() {
			s.lru.Get(k) // to the front: the next probe looks at the next oldest
			continue
		}
		s.lru.RemoveOldest()
	}
	return e
}
