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
//
// The bound is both a number of entries and a number of bytes: each entry
// is accounted entryBytes (what the heap holds for it besides its key: the
// value, the list element, its share of the map) plus its key's length,
// rounded up to the allocator's 16-byte classes. TestCacheBytesCoverHeap
// checks the accounting against the heap.
type cache[V any, P interface {
	*V
	busier
}] struct {
	seed       maphash.Seed
	entryBytes int
	shards     []cacheShard[V, P]
}

type cacheShard[V any, P interface {
	*V
	busier
}] struct {
	mu       sync.Mutex
	lru      *simplelru.LRU[string, P]
	max      int   // entries
	maxBytes int64 // accounted bytes
	bytes    int64 // accounted bytes held
	each     int   // the cache's entryBytes
}

// newCache returns a cache holding at most maxEntries entries and maxBytes
// accounted bytes (entryBytes per entry plus its key), except that a shard
// full of busy entries may briefly hold more (at most one per send in
// flight).
func newCache[V any, P interface {
	*V
	busier
}](maxEntries int, maxBytes int64, entryBytes int) *cache[V, P] {
	n := 1
	if fit := min(int64(maxEntries), maxBytes/int64(entryBytes)); fit >= cacheShards*minPerShard {
		n = cacheShards
	}
	c := &cache[V, P]{seed: maphash.MakeSeed(), entryBytes: entryBytes, shards: make([]cacheShard[V, P], n)}
	for i := range c.shards {
		// The shard enforces its bound itself (add), skipping busy entries;
		// the library's own bound is out of the way.
		l, err := simplelru.NewLRU[string, P](math.MaxInt, nil)
		if err != nil {
			panic(err) // only for a size below one
		}
		c.shards[i].lru = l
		c.shards[i].max = max(maxEntries/n, 1)
		c.shards[i].maxBytes = maxBytes / int64(n)
		c.shards[i].each = entryBytes
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

// bytes returns the accounted bytes held (for tests and sizing).
func (c *cache[V, P]) bytes() int64 {
	var n int64
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += s.bytes
		s.mu.Unlock()
	}
	return n
}

// cost is what an entry under key is accounted.
func (s *cacheShard[V, P]) cost(key string) int64 {
	return int64(s.each + (len(key)+15)&^15)
}

// over reports whether the shard holds more than its bounds. s.mu is held.
func (s *cacheShard[V, P]) over() bool {
	return s.lru.Len() > s.max || s.bytes > s.maxBytes
}

// get returns key's entry, marked most recently used, or nil. s.mu is held.
func (s *cacheShard[V, P]) get(key string) P {
	e, _ := s.lru.Get(key)
	return e
}

// add inserts val under key (absent) and returns a pointer to the stored
// value, which stays valid until the entry is evicted or removed. When the
// shard is over its bounds, the least recently used entries that are not
// busy are evicted; a busy one met on the way is marked used (a send holds
// it) and kept. s.mu is held.
func (s *cacheShard[V, P]) add(key string, val V) P {
	e := P(&val)
	s.lru.Add(key, e)
	s.bytes += s.cost(key)
	for probes := 0; probes < maxEvictionProbes && s.over(); probes++ {
		k, old, ok := s.lru.GetOldest()
		if !ok || k == key {
			break
		}
		if old.busy() {
			s.lru.Get(k) // to the front: the next probe looks at the next oldest
			continue
		}
		s.lru.RemoveOldest()
		s.bytes -= s.cost(k)
	}
	return e
}

// remove forgets key's entry, if any: an entry that holds nothing a fresh
// one would not. s.mu is held.
func (s *cacheShard[V, P]) remove(key string) {
	if s.lru.Remove(key) {
		s.bytes -= s.cost(key)
	}
}
