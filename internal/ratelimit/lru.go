package ratelimit

import (
	"container/list"
	"hash/maphash"
	"sync"
)

// Sharding keeps lock contention low when many requests look up different
// clients at once; small caches use one shard so the bound is exact.
const (
	lruShards   = 16
	minPerShard = 128 // below lruShards*minPerShard entries, one shard
)

// lru is a bounded map from key to *V, sharded, with least recently used
// eviction per shard. It only guards the map: values carry their own locks.
// A value stays valid for whoever holds it after it is evicted.
type lru[V any] struct {
	seed   maphash.Seed
	shards []lruShard[V]
}

type lruShard[V any] struct {
	mu    sync.Mutex
	items map[string]*list.Element // values are *lruItem[V]
	order list.List                // front: most recently used
	max   int
}

type lruItem[V any] struct {
	key string
	val *V
}

// newLRU returns an lru holding at most maxEntries values (at least one per
// shard).
func newLRU[V any](maxEntries int) *lru[V] {
	n := 1
	if maxEntries >= lruShards*minPerShard {
		n = lruShards
	}
	c := &lru[V]{seed: maphash.MakeSeed(), shards: make([]lruShard[V], n)}
	for i := range c.shards {
		c.shards[i].items = make(map[string]*list.Element)
		c.shards[i].max = max(maxEntries/n, 1)
	}
	return c
}

// shard returns key's shard, unlocked.
func (c *lru[V]) shard(key string) *lruShard[V] {
	if len(c.shards) == 1 {
		return &c.shards[0]
	}
	return &c.shards[maphash.String(c.seed, key)%uint64(len(c.shards))]
}

// get returns key's value, marked most recently used; when absent, a new
// zero value is added (evicting the least recently used if the shard is full)
// and returned.
func (c *lru[V]) get(key string) *V {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.items[key]; ok {
		s.order.MoveToFront(el)
		return el.Value.(*lruItem[V]).val
	}
	it := &lruItem[V]{key: key, val: new(V)}
	s.items[key] = s.order.PushFront(it)
	for len(s.items) > s.max {
		old := s.order.Back()
		s.order.Remove(old)
		delete(s.items, old.Value.(*lruItem[V]).key)
	}
	return it.val
}

// peek returns key's value without adding or touching it, or nil.
func (c *lru[V]) peek(key string) *V {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.items[key]; ok {
		return el.Value.(*lruItem[V]).val
	}
	return nil
}

// len returns the number of values held.
func (c *lru[V]) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.items)
		s.mu.Unlock()
	}
	return n
}
