package consumer

import "time"

// jitterFactor is the ± spread applied to a backoff delay, so jobs that failed
// together (a destination outage) do not all come back at the same instant.
// It is the RandomizationFactor of cenkalti/backoff's ExponentialBackOff, and
// the formula below is that package's, made stateless: a redelivered job
// carries only its attempt number, not a backoff object.
const jitterFactor = 0.2

// backoffDelay returns how long a job should wait after its attempt-th
// delivery failed transiently: lo doubled (attempt-1) times, capped at hi,
// then spread by ±20% using r, a uniform random number in [0, 1), and capped
// at hi again. attempt < 1 counts as 1; lo <= 0 means no delay. It is pure, so
// tests pass r.
func backoffDelay(attempt int, lo, hi time.Duration, r float64) time.Duration {
	if lo <= 0 {
		return 0
	}
	d := lo
	for i := 1; i < attempt && d < hi; i++ {
		d *= 2 // cannot overflow: d < hi before doubling
	}
	if d > hi {
		d = hi
	}
	// d * (1 ± jitterFactor), as backoff.ExponentialBackOff randomizes.
	delta := jitterFactor * float64(d)
	j := time.Duration(float64(d) - delta + r*2*delta)
	if j > hi {
		j = hi
	}
	if j < 0 {
		j = 0
	}
	return j
}
