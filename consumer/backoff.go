package consumer

import (
	"time"

	"github.com/cenkalti/backoff/v4"
)

// jitterFactor is the ± spread applied to a backoff delay, so jobs that failed
// together (a destination outage) do not all come back at the same instant.
const jitterFactor = 0.2

// maxDoublings bounds the steps taken to reach a job's attempt: far past it
// the interval has long reached its cap.
const maxDoublings = 64

// backoffPolicy returns how long a job should wait after its attempt-th
// delivery failed transiently. attempt < 1 counts as 1.
type backoffPolicy func(attempt int) time.Duration

// newBackoff is cenkalti/backoff's ExponentialBackOff as a policy: lo doubled
// (attempt-1) times, capped at hi, spread by ±jitter (a fraction; 0 for none)
// and capped at hi again, since the library caps the interval, not the
// randomized delay. lo <= 0 means no delay. A redelivered job carries only
// its attempt number, so each call replays the sequence up to it; the retry
// budget (Config.MaxAttempts, MaxAge) is enforced by decide, not here.
func newBackoff(lo, hi time.Duration, jitter float64) backoffPolicy {
	return func(attempt int) time.Duration {
		if lo <= 0 {
			return 0
		}
		b := &backoff.ExponentialBackOff{
			InitialInterval:     lo,
			RandomizationFactor: jitter,
			Multiplier:          2,
			MaxInterval:         hi,
			MaxElapsedTime:      0, // never Stop: the retry budget decides
			Stop:                backoff.Stop,
			Clock:               backoff.SystemClock,
		}
		b.Reset()
		d := b.NextBackOff()
		for i := 1; i < min(attempt, maxDoublings); i++ {
			d = b.NextBackOff()
		}
		return max(min(d, hi), 0)
	}
}
