package consumer

import (
	"time"

	"github.com/cenkalti/backoff/v4"
)

// jitterFactor is the ± spread applied to a backoff delay, so jobs that failed
// together (a destination outage) do not all come back at the same instant.
const jitterFactor = 0.2

// backoffPolicy returns how long a job should wait after its attempt-th
// delivery failed transiently. attempt < 1 counts as 1. It is safe for
// concurrent use.
type backoffPolicy func(attempt int) time.Duration

// newBackoff is cenkalti/backoff's ExponentialBackOff as a policy: lo doubled
// (attempt-1) times, capped at hi, spread by ±jitter (a fraction; 0 for none)
// and capped at hi again, since the library caps the interval, not the
// randomized delay. lo <= 0 means no delay. The retry budget
// (Config.MaxAttempts, MaxAge) is enforced by decide, not here.
//
// A redelivered job carries only its attempt number, so each call builds a
// backoff and advances it to that attempt: without jitter (the interval does
// not depend on the draws), and no further once the interval reaches hi, so a
// call costs at most log2(hi/lo)+1 steps and one random draw.
func newBackoff(lo, hi time.Duration, jitter float64) backoffPolicy {
	return func(attempt int) time.Duration {
		if lo <= 0 {
			return 0
		}
		b := &backoff.ExponentialBackOff{
			InitialInterval: lo,
			Multiplier:      2,
			MaxInterval:     hi,
			MaxElapsedTime:  0, // never Stop: the retry budget decides
			Stop:            backoff.Stop,
			Clock:           noClock{},
		}
		b.Reset()
		for i := 1; i < attempt; i++ {
			if b.NextBackOff() >= hi {
				break // the interval stays at its cap from here on
			}
		}
		b.RandomizationFactor = jitter
		return max(min(b.NextBackOff(), hi), 0)
	}
}

// noClock is the backoff's clock: it only measures elapsed time against
// MaxElapsedTime, which is off, so reading the system clock would be wasted.
type noClock struct{}

func (noClock) Now() time.Time { return time.Time{} }
