package ratelimit

import (
	"errors"
	"fmt"
	"time"
)

// Route groups: each has its own bucket per client (see GroupOf).
const (
	GroupStreaky   = "streaky"   // POST /send-notification
	GroupAPI       = "api"       // /v1/*, /admin/*, /console/*
	GroupRegister  = "register"  // /register*
	GroupChallenge = "challenge" // /challenge/*
)

// Policies of Config.OnStoreError.
const (
	// OnStoreErrorAllow decides with a bucket local to this process while the
	// shared store is unreachable: clients stay limited, per replica.
	OnStoreErrorAllow = "allow"
	// OnStoreErrorDeny refuses every limited request with 503 while the shared
	// store is unreachable.
	OnStoreErrorDeny = "deny"
)

// Defaults of Config.
const (
	// DefaultMaxTokens, DefaultRefillRate and DefaultRefillTime make the
	// bucket of Config.Default when it is zero: a burst of 60 requests, then
	// one a second.
	DefaultMaxTokens  = 60
	DefaultRefillRate = 1
	DefaultRefillTime = time.Second
	// MinKeyTTL is the shortest derived Config.KeyTTL: a key idle that long
	// is dropped from the store even if its bucket refills faster.
	MinKeyTTL = time.Minute
	// DefaultCacheSize is Config.CacheSize when 0: buckets remembered per
	// process. An entry is about 200 bytes.
	DefaultCacheSize = 65536
)

// Bucket is one token bucket's shape: a client may send MaxTokens requests at
// once, and gets RefillRate tokens back every RefillTime, continuously (a
// fraction of a token after a fraction of RefillTime), up to MaxTokens.
type Bucket struct {
	MaxTokens  int
	RefillRate int
	RefillTime time.Duration
}

// Validate reports the first problem with b.
func (b Bucket) Validate() error {
	switch {
	case b.MaxTokens < 1 || b.MaxTokens > 1e9:
		return fmt.Errorf("max tokens %d out of range 1..1e9", b.MaxTokens)
	case b.RefillRate < 1 || b.RefillRate > 1e9:
		return fmt.Errorf("refill rate %d out of range 1..1e9", b.RefillRate)
	case b.RefillTime < time.Millisecond:
		return fmt.Errorf("refill time %s is below 1ms", b.RefillTime)
	}
	return nil
}

// FullIn is how long an empty bucket takes to fill up again.
func (b Bucket) FullIn() time.Duration {
	return time.Duration(float64(b.RefillTime) * float64(b.MaxTokens) / float64(b.RefillRate))
}

// or fills b's zero fields from def.
func (b Bucket) or(def Bucket) Bucket {
	if b.MaxTokens == 0 {
		b.MaxTokens = def.MaxTokens
	}
	if b.RefillRate == 0 {
		b.RefillRate = def.RefillRate
	}
	if b.RefillTime == 0 {
		b.RefillTime = def.RefillTime
	}
	return b
}

// Config configures a Limiter. The zero value is valid: every group gets the
// default bucket, and an unreachable store falls back to local buckets.
type Config struct {
	// Default is the bucket of every group without an override; its zero
	// fields take DefaultMaxTokens, DefaultRefillRate and DefaultRefillTime.
	Default Bucket
	// Groups overrides the bucket per route group (GroupStreaky, GroupAPI,
	// GroupRegister, GroupChallenge); zero fields take Default's.
	Groups map[string]Bucket
	// OnStoreError is OnStoreErrorAllow (when empty) or OnStoreErrorDeny.
	OnStoreError string
	// KeyTTL is how long a client's counter stays in the store after its last
	// change; it must be at least the longest Bucket.FullIn, since by then the
	// bucket is full anyway. When 0: that longest FullIn, rounded up to a
	// second, and at least MinKeyTTL. It is the store bucket's TTL (see
	// EnsureBucket).
	KeyTTL time.Duration
	// CacheSize bounds the buckets a process remembers (last known value and
	// revision); DefaultCacheSize when 0. Evicting one only costs a read.
	CacheSize int
}

// Validate reports the first problem with c, naming the setting.
func (c Config) Validate() error {
	d := c.Default.or(Bucket{MaxTokens: DefaultMaxTokens, RefillRate: DefaultRefillRate, RefillTime: DefaultRefillTime})
	if err := d.Validate(); err != nil {
		return fmt.Errorf("ratelimit: default bucket: %w", err)
	}
	for g, b := range c.Groups {
		if !knownGroup(g) {
			return fmt.Errorf("ratelimit: unknown group %q (want %s, %s, %s or %s)", g, GroupStreaky, GroupAPI, GroupRegister, GroupChallenge)
		}
		if err := b.or(d).Validate(); err != nil {
			return fmt.Errorf("ratelimit: group %s: %w", g, err)
		}
	}
	switch c.OnStoreError {
	case "", OnStoreErrorAllow, OnStoreErrorDeny:
	default:
		return fmt.Errorf("ratelimit: on store error %q: want %s or %s", c.OnStoreError, OnStoreErrorAllow, OnStoreErrorDeny)
	}
	if c.KeyTTL < 0 {
		return fmt.Errorf("ratelimit: key TTL %s is negative", c.KeyTTL)
	}
	if c.KeyTTL > 0 {
		if full := c.longestFullIn(d); c.KeyTTL < full {
			return fmt.Errorf("ratelimit: key TTL %s is shorter than the %s a bucket takes to refill (clients would get a full bucket early)", c.KeyTTL, full)
		}
	}
	if c.CacheSize < 0 {
		return errors.New("ratelimit: cache size is negative")
	}
	return nil
}

// withDefaults returns c with every default filled in; c must be valid.
func (c Config) withDefaults() Config {
	c.Default = c.Default.or(Bucket{MaxTokens: DefaultMaxTokens, RefillRate: DefaultRefillRate, RefillTime: DefaultRefillTime})
	groups := make(map[string]Bucket, len(c.Groups))
	for g, b := range c.Groups {
		groups[g] = b.or(c.Default)
	}
	c.Groups = groups
	if c.OnStoreError == "" {
		c.OnStoreError = OnStoreErrorAllow
	}
	if c.KeyTTL == 0 {
		ttl := c.longestFullIn(c.Default)
		if r := ttl % time.Second; r != 0 {
			ttl += time.Second - r
		}
		c.KeyTTL = max(ttl, MinKeyTTL)
	}
	if c.CacheSize == 0 {
		c.CacheSize = DefaultCacheSize
	}
	return c
}

// longestFullIn is the longest time any of c's buckets takes to refill,
// with def standing for Default.
func (c Config) longestFullIn(def Bucket) time.Duration {
	longest := def.FullIn()
	for _, b := range c.Groups {
		longest = max(longest, b.or(def).FullIn())
	}
	return longest
}

// IdleTTL is the key TTL c gives the store bucket: Config.KeyTTL, or the
// derived default when that is 0. c must be valid.
func (c Config) IdleTTL() time.Duration { return c.withDefaults().KeyTTL }

func knownGroup(g string) bool {
	switch g {
	case GroupStreaky, GroupAPI, GroupRegister, GroupChallenge:
		return true
	}
	return false
}
