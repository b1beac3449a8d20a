package pacing

import "time"

// spread hands out the times at which jobs given back to the queue come
// back, for waits whose end nobody knows (a destination with MaxInFlight
// sends on their way, possibly hung; the verification messages' share
// spent): no earlier than the wait asked, and at most one per step. Without
// it every job given back would return together after unknownRetry, and
// most would be given back again: a destination that never answers, with
// hundreds of jobs queued for it, would cost a park and a return of each
// every second. It is the unix time in nanoseconds of the next free return.
// Its owner guards it.
type spread int64

// next returns how long from now the next job given back waits: wait, or
// longer when others were given the returns before.
func (s *spread) next(now time.Time, wait, step time.Duration) time.Duration {
	t := now.Add(wait).UnixNano()
	if int64(*s) > t {
		t = int64(*s)
	}
	*s = spread(t + int64(step))
	return time.Duration(t - now.UnixNano())
}

// unknownStep is the spacing of spread returns: as many per unknownRetry as
// MaxInFlight sends, the most a destination takes at once.
func (p *Pacer) unknownStep() time.Duration {
	return unknownRetry / time.Duration(max(p.cfg.MaxInFlight, 1))
}
