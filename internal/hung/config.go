package hung

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/heraldrelay/herald/consumer"
)

// Defaults of Config. A zero field takes its default.
const (
	// DefaultShare is the part of the workers that sends to suspect
	// destinations may hold at once: half, so destinations that answer
	// always keep the other half, however many destinations hang.
	DefaultShare = 0.5
	// DefaultAfter is how long a send may go unanswered before its
	// destination is suspect. Discord and Telegram answer in well under a
	// second; the send's time includes pacing's hold (pacing.max_hold, 2 s),
	// so this stays above it. A send that times out always counts.
	DefaultAfter = 5 * time.Second
	// DefaultFor is how long a destination stays suspect after a send to it
	// went unanswered: answers meanwhile do not clear it, so a destination
	// that answers one send in a few cannot win back the workers it holds.
	DefaultFor = 10 * time.Minute
	// DefaultMaxDestinations bounds the destinations the Gate remembers
	// (pacing.max_destinations, shared with pacing's own bound).
	DefaultMaxDestinations = 100_000
)

// Config configures a Gate. The zero value is valid: every zero field takes
// its Default* value (Workers and SendTimeout: the consumer's defaults).
type Config struct {
	// Share is the part of Workers that sends to suspect destinations may
	// hold at once (pacing.hung_share), more than 0 and at most 1;
	// DefaultShare when 0. The cap is ⌊Share × Workers⌋, at least 1: with a
	// single worker the Gate protects nothing. 1 turns the Gate off.
	Share float64
	// Workers is the consumer's pool size (consumer.workers);
	// consumer.DefaultWorkers when 0.
	Workers int
	// SendTimeout is the consumer's bound on one send (consumer.send_timeout);
	// consumer.DefaultSendTimeout when 0. A suspect send holds its place for
	// at most about this long.
	SendTimeout time.Duration
	// After is how long a send may go unanswered, counted from when the Gate
	// lets it through (so including pacing's hold), before its destination
	// is suspect (pacing.hung_after); DefaultAfter when 0. A send that times
	// out makes its destination suspect whatever After is.
	After time.Duration
	// For is how long a destination stays suspect after its last unanswered
	// send (pacing.hung_for); DefaultFor when 0.
	For time.Duration
	// MaxDestinations bounds the destinations remembered (answering or
	// suspect), least recently used dropped first (pacing.max_destinations);
	// DefaultMaxDestinations when 0. A dropped destination counts as new.
	MaxDestinations int
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Share == 0 {
		c.Share = DefaultShare
	}
	if c.Workers == 0 {
		c.Workers = consumer.DefaultWorkers
	}
	if c.SendTimeout == 0 {
		c.SendTimeout = consumer.DefaultSendTimeout
	}
	if c.After == 0 {
		c.After = DefaultAfter
	}
	if c.For == 0 {
		c.For = DefaultFor
	}
	if c.MaxDestinations == 0 {
		c.MaxDestinations = DefaultMaxDestinations
	}
	return c
}

// Validate reports every problem with c after defaults are applied (a zero
// field is never an error): a Share outside (0, 1], negative counts or
// durations. Errors name the config key.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("hung: config: "+format, args...))
	}
	if s := c.Share; math.IsNaN(s) || s <= 0 || s > 1 {
		bad("pacing.hung_share %v must be more than 0 and at most 1", s)
	}
	if c.Workers < 1 {
		bad("consumer.workers %d must be at least 1", c.Workers)
	}
	if c.SendTimeout < 0 {
		bad("consumer.send_timeout %s must not be negative", c.SendTimeout)
	}
	if c.After < 0 {
		bad("pacing.hung_after %s must not be negative", c.After)
	}
	if c.For < 0 {
		bad("pacing.hung_for %s must not be negative", c.For)
	}
	if c.MaxDestinations < 1 {
		bad("pacing.max_destinations %d must be at least 1", c.MaxDestinations)
	}
	return errors.Join(errs...)
}

// limit is the most sends to suspect destinations at once.
func (c Config) limit() int {
	return max(int(math.Floor(c.Share*float64(c.Workers))), 1)
}

// reserve is how many of the places sends to destinations that went
// unanswered lately may not take: a quarter, at least one when there are two
// or more places.
func (c Config) reserve() int {
	l := c.limit()
	if l < 2 {
		return 0
	}
	return max(l/4, 1)
}
