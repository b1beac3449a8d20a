package ratelimit

import (
	golru "github.com/hashicorp/golang-lru/v2"
)

// lru is a bounded map from key to *V with least recently used eviction
// (hashicorp/golang-lru's Cache, one lock for the map). Its methods are safe
// for concurrent use; it only guards the map: values carry their own locks.
// Eviction never waits for a value's holders, and a value stays valid for
// whoever holds it after it is evicted; a get after the eviction returns a
// new zero value, so two values of one key may briefly be in use (the store's
// compare-and-swap keeps the Limiter correct then). Entries never expire:
// whatever they cache is checked against the time or the store when used.
type lru[V any] struct {
	c *golru.Cache[string, *V]
}

// newLRU returns an lru holding at most maxEntries values (at least one).
func newLRU[V any](maxEntries int) *lru[V] {
	c, err := golru.New[string, *V](max(maxEntries, 1))
	if err != nil {
		panic(err) // only for a size below one, excluded above
	}
	return &lru[V]{c: c}
}

// get returns key's value, marked most recently used; when absent, a new
// zero value is added (evicting the least recently used if full) and
// returned. Concurrent gets of one absent key return the same value.
func (c *lru[V]) get(key string) *V {
	if v, ok := c.c.Get(key); ok {
		return v
	}
	v := new(V)
	if prev, ok, _ := c.c.PeekOrAdd(key, v); ok {
		c.c.Get(key) // mark it used
		return prev
	}
	return v
}

// peek returns key's value without adding or touching it, or nil.
func (c *lru[V]) peek(key string) *V {
	v, _ := c.c.Peek(key)
	return v
}

// len returns the number of values held.
func (c *lru[V]) len() int { return c.c.Len() }
