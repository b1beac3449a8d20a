package breaker

import (
	"errors"
	"fmt"
	"time"
)

// Defaults of Config. A zero field takes its default.
const (
	// DefaultFailures is how many consecutive transient failures open a
	// breaker. Five rules out a one-off blip (a single 502 from a load
	// balancer) while still stopping a dead destination after a handful of
	// wasted calls.
	DefaultFailures = 5
	// DefaultOpenTimeout is how long a breaker stays open before it lets a
	// probe through. Discord and Telegram outages last minutes, so probing
	// every 30 s costs nothing and finds the recovery soon enough.
	DefaultOpenTimeout = 30 * time.Second
	// DefaultHalfOpenProbes is how many sends a half-open breaker lets
	// through; that many successes in a row close it, one failure reopens it.
	DefaultHalfOpenProbes = 1
	// DefaultMaxDestinations bounds the breakers kept in memory; MaxMemory
	// is usually reached first.
	DefaultMaxDestinations = 100_000
	// DefaultMaxMemory bounds the bytes of the breakers kept: 8 MiB is about
	// 13,000 destinations with failures on record, more than are down at
	// once short of an outage of Discord or Telegram, and a small part of a
	// 512 MB machine however many destinations one client names.
	DefaultMaxMemory = 8 << 20
	// DefaultIdleTTL is how long a breaker may go unused before it is
	// forgotten. A forgotten closed breaker loses nothing: its failure count
	// was about a destination nobody has sent to for that long.
	DefaultIdleTTL = time.Hour
)

// Config configures a Set. The zero value is valid: every zero field takes
// its Default* value.
type Config struct {
	// Failures is the number of consecutive transient failures (timeouts,
	// network errors, 5xx) that open a destination's breaker; DefaultFailures
	// when 0.
	Failures uint32
	// OpenTimeout is how long a breaker stays open before it turns half-open
	// and lets probes through; DefaultOpenTimeout when 0.
	OpenTimeout time.Duration
	// HalfOpenProbes is the number of sends a half-open breaker lets through
	// at once; that many successes close it. DefaultHalfOpenProbes when 0.
	HalfOpenProbes uint32
	// MaxDestinations bounds the breakers kept. When a new destination would
	// exceed it, the least recently used closed breaker is dropped; only when
	// every breaker is open or half-open is the least recently used of those
	// dropped (and a warning logged). DefaultMaxDestinations when 0.
	MaxDestinations int
	// MaxMemory bounds the bytes the breakers take (breaker.max_memory),
	// counted as the heap measures them: entryBytes (560) per breaker
	// plus its key. Breakers are dropped as for MaxDestinations, whichever
	// is reached first. Only destinations with a transient failure on
	// record have a breaker. DefaultMaxMemory when 0.
	MaxMemory int64
	// IdleTTL is how long a breaker may go unused before it is dropped. Open
	// and half-open breakers are dropped only once their OpenTimeout has also
	// passed, when they would let a probe through anyway. DefaultIdleTTL when
	// 0.
	IdleTTL time.Duration
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Failures == 0 {
		c.Failures = DefaultFailures
	}
	if c.OpenTimeout == 0 {
		c.OpenTimeout = DefaultOpenTimeout
	}
	if c.HalfOpenProbes == 0 {
		c.HalfOpenProbes = DefaultHalfOpenProbes
	}
	if c.MaxDestinations == 0 {
		c.MaxDestinations = DefaultMaxDestinations
	}
	if c.MaxMemory == 0 {
		c.MaxMemory = DefaultMaxMemory
	}
	if c.IdleTTL == 0 {
		c.IdleTTL = DefaultIdleTTL
	}
	return c
}

// Validate reports every problem with c, after defaults are applied (so a
// zero field is never an error). Errors name the field.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("breaker: config: "+format, args...))
	}
	if c.OpenTimeout < 0 {
		bad("open timeout %s is negative", c.OpenTimeout)
	} else if c.OpenTimeout < minDelay {
		bad("open timeout %s must be at least %s", c.OpenTimeout, minDelay)
	}
	if c.MaxDestinations < 0 {
		bad("max destinations %d is negative", c.MaxDestinations)
	}
	if c.MaxMemory < minMaxMemory {
		bad("max memory %d must be at least %d bytes", c.MaxMemory, minMaxMemory)
	}
	if c.IdleTTL < 0 {
		bad("idle ttl %s is negative", c.IdleTTL)
	}
	return errors.Join(errs...)
}
