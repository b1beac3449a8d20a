package pacing

import (
	"container/list"
	"hash/maphash"
	"sync"
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
// recently used eviction per shard. Callers lock a shard, get or add the
// entry, use it and unlock: an entry is only touched under its shard's lock.
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
	mu    sync.Mutex
	items map[string]*list.Element // values are *cacheItem[V]
	order list.List                // front: most recently used
	max   int
}

type cacheItem[V any] struct {
	key string
	val V
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
		c.shards[i].items = make(map[string]*list.Element)
		c.shards[i].max = maxEntries / n
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
		n += len(s.items)
		s.mu.Unlock()
	}
	return n
}

// get returns key's entry, marked most recently used, or nil. s.mu is held.
func (s *cacheShard[V, P]) get(key string) P {
	el, ok := s.items[key]
	if !ok {
		return nil
	}
	s.order.MoveToFront(el)
	return &el.Value.(*cacheItem[V]).val
}

// add inserts val under key (absent) and returns a pointer to the stored
// value, which stays valid until the entry is evicted. When the shard is
// over its bound, the least recently used entries that are not busy are
// evicted. s.mu is held.
func (s *cacheShard[V, P]) add(key string, val V) P {
	it := &cacheItem[V]{key: key, val: val}
	s.items[key] = s.order.PushFront(it)
	if len(s.items) > s.max {
		el := s.order.Back()
		for probes := 0; el != nil && probes < maxEvictionProbes && len(s.items) > s.max; probes++ {
			prev := el.Prev()
			old := el.Value.(*cacheItem[V])
			if old != it && !P(&old.val).busy() {
				s.order.Remove(el)
				delete(s.items, old.key)
			}
			el = prev
		}
	}
	return &it.val
}
