package consumer

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/heraldrelay/herald"
)

// Defaults of Config. A zero field takes its default.
const (
	// DefaultWorkers is how many jobs one process handles at once. Sends are
	// I/O bound (one HTTP call each), so this is far above the CPU count;
	// destinations' own rate limits, not this number, bound the real rate.
	DefaultWorkers = 32
	// DefaultAckWait is how long JetStream waits for an ack before it
	// redelivers a job (the JetStream default). Long sends are kept alive with
	// InProgress, so this only matters when a worker dies mid-job.
	DefaultAckWait = 30 * time.Second
	// minMaxAckPending is the floor of the default MaxAckPending: several
	// worker processes share the durable, and each holds up to 5*Workers
	// unacked jobs (Workers in flight, 2*Workers prefetched, 2*Workers
	// delivered and being recorded); fewer only throttle a process.
	minMaxAckPending = 256
	// DefaultSendTimeout bounds one call to a destination. Discord and
	// Telegram answer in well under a second; 10 s leaves room for a slow
	// network without holding a worker for long.
	DefaultSendTimeout = 10 * time.Second
	// DefaultMinBackoff is the first delay after a transient failure.
	DefaultMinBackoff = time.Second
	// DefaultMaxBackoff caps the transient retry delay: a destination that is
	// down for hours is still tried every few minutes.
	DefaultMaxBackoff = 5 * time.Minute
	// DefaultMaxRetryAfter caps the wait a destination may ask for with
	// retry_after, so a bogus answer cannot park a job for days.
	DefaultMaxRetryAfter = time.Hour
	// DefaultDrainTimeout bounds the wait for in-flight jobs at shutdown; it
	// should stay below the orchestrator's kill grace period (often 30 s).
	DefaultDrainTimeout = 15 * time.Second
	// DefaultMaxAttempts is how many transient failures a job may have before
	// it is dead-lettered. With the default backoff (1 s doubling, capped at
	// 5 min) ten failures span about 15 minutes: long enough to ride out a
	// destination's restart, short enough that an operator hears of a dead
	// destination the same day.
	DefaultMaxAttempts = 10
	// DefaultMaxAge is how long after its budget start a job may still be
	// retried after a transient failure; a day covers an overnight outage.
	DefaultMaxAge = 24 * time.Hour
)

// Config configures a Pool. The zero value is valid: every zero field takes
// its Default* value (MaxAckPending: 4*Workers, at least 256). Several worker
// processes sharing one durable should use the same AckWait and
// MaxAckPending: each Run updates the durable consumer with its own values,
// and the last one wins.
type Config struct {
	// Workers is the number of jobs handled concurrently in this process;
	// DefaultWorkers when 0.
	Workers int
	// FirstSends caps the jobs SendFirst sends at once, apart from the
	// Workers that deliver from the streams; Workers when 0. Each first
	// send is a request waiting for its outcome, so the caller's own cap
	// on waiting requests is the natural value.
	FirstSends int
	// Durable is the durable consumer's name; herald.WorkersConsumer when
	// empty. Every process with the same Durable shares the work.
	Durable string
	// AckWait is how long JetStream waits for an ack before redelivering;
	// DefaultAckWait when 0. It must exceed SendTimeout.
	AckWait time.Duration
	// MaxAckPending caps the jobs delivered but not yet acked, across every
	// process sharing the durable; 4*Workers (at least 256) when 0.
	MaxAckPending int
	// SendTimeout bounds one send; DefaultSendTimeout when 0. It must be less
	// than AckWait.
	SendTimeout time.Duration
	// MinBackoff and MaxBackoff bound the delay before a job that failed
	// transiently is tried again: MinBackoff doubled per attempt, capped at
	// MaxBackoff, with ±20% jitter. Defaults DefaultMinBackoff and
	// DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// MaxRetryAfter caps the delay a destination asks for (429 retry_after);
	// DefaultMaxRetryAfter when 0.
	MaxRetryAfter time.Duration
	// DrainTimeout bounds how long Run waits for in-flight jobs once its ctx
	// is cancelled; DefaultDrainTimeout when 0.
	DrainTimeout time.Duration
	// MaxAttempts is the retry budget: the number of failed delivery
	// attempts (transient failures: 5xx, timeouts, network errors, panics)
	// after which a job is dead-lettered; DefaultMaxAttempts when 0. Waits a
	// destination asked for (429), pacing waits, open breakers and
	// redeliveries after a crash do not count.
	MaxAttempts int
	// MaxAge is the other half of the retry budget: a job that fails
	// transiently more than MaxAge after its budget start (the
	// Herald-Budget-Start header a replay sets, else Job.CreatedAt, else the
	// time it was stored) is dead-lettered instead of retried;
	// DefaultMaxAge when 0. A job asked to wait (a 429's retry_after,
	// pacing, an open breaker) past its MaxAge is dead-lettered at once
	// (CauseWaitBeyondMaxAge) rather than kept waiting only to give up.
	MaxAge time.Duration
	// AckDelay is how long a delivered job's ack may wait to be sent with
	// others (see acker); DefaultAckDelay when 0, and a negative value acks
	// each job at once. At most MaxAckDelay.
	AckDelay time.Duration
	// MaxParkedPerDestination caps the jobs of one destination this process
	// keeps parked (see park.go); a job that must wait past it is
	// dead-lettered with CauseParkLimit. DefaultMaxParkedPerDestination
	// when 0.
	MaxParkedPerDestination int
	// MaxParked caps the jobs this process keeps parked, all destinations
	// together; past it a job that must wait is dead-lettered with
	// CauseParkLimit. DefaultMaxParked when 0.
	MaxParked int
}

// MaxAckDelay bounds Config.AckDelay: a job delivered but not yet acked is
// redelivered, as a duplicate, if the process dies meanwhile.
const MaxAckDelay = time.Second

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.FirstSends == 0 {
		c.FirstSends = c.Workers
	}
	if c.Durable == "" {
		c.Durable = herald.WorkersConsumer
	}
	if c.AckWait == 0 {
		c.AckWait = DefaultAckWait
	}
	if c.MaxAckPending == 0 && c.Workers > 0 {
		c.MaxAckPending = max(4*c.Workers, minMaxAckPending)
	}
	if c.SendTimeout == 0 {
		c.SendTimeout = DefaultSendTimeout
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.MaxRetryAfter == 0 {
		c.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.AckDelay == 0 {
		c.AckDelay = DefaultAckDelay
	}
	if c.MaxParkedPerDestination == 0 {
		c.MaxParkedPerDestination = DefaultMaxParkedPerDestination
	}
	if c.MaxParked == 0 {
		c.MaxParked = DefaultMaxParked
	}
	return c
}

// Validate reports every problem with c, after defaults are applied (so a
// zero field is never an error). Errors name the field.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("consumer: config: "+format, args...))
	}
	if c.Workers < 1 {
		bad("workers %d must be at least 1", c.Workers)
	}
	if c.FirstSends < 1 {
		bad("first sends %d must be at least 1", c.FirstSends)
	}
	if c.Durable != "" && strings.ContainsAny(c.Durable, ".*> \t\r\n") {
		bad("durable %q must not contain '.', '*', '>' or whitespace", c.Durable)
	}
	if c.AckWait < time.Second {
		bad("ack wait %s must be at least 1s", c.AckWait)
	}
	if c.MaxAckPending < 1 {
		bad("max ack pending %d must be at least 1", c.MaxAckPending)
	}
	if c.SendTimeout < 0 {
		bad("send timeout %s is negative", c.SendTimeout)
	}
	if c.SendTimeout >= c.AckWait {
		bad("send timeout %s must be less than ack wait %s", c.SendTimeout, c.AckWait)
	}
	if c.MinBackoff < 0 {
		bad("min backoff %s is negative", c.MinBackoff)
	}
	if c.MaxBackoff < c.MinBackoff {
		bad("max backoff %s is less than min backoff %s", c.MaxBackoff, c.MinBackoff)
	}
	if c.MaxRetryAfter < 0 {
		bad("max retry after %s is negative", c.MaxRetryAfter)
	}
	if c.DrainTimeout < 0 {
		bad("drain timeout %s is negative", c.DrainTimeout)
	}
	if c.MaxAttempts < 1 {
		bad("max attempts %d must be at least 1", c.MaxAttempts)
	}
	if c.MaxAge < 0 {
		bad("max age %s is negative", c.MaxAge)
	}
	if c.MaxParkedPerDestination < 1 {
		bad("max parked per destination %d must be at least 1", c.MaxParkedPerDestination)
	}
	if c.MaxParked < c.MaxParkedPerDestination {
		bad("max parked %d is less than max parked per destination %d", c.MaxParked, c.MaxParkedPerDestination)
	}
	if c.AckDelay > MaxAckDelay {
		bad("ack delay %s is above %s", c.AckDelay, MaxAckDelay)
	}
	return errors.Join(errs...)
}
