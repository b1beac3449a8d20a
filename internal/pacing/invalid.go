package pacing

import "time"

// invalidBuckets is how many counters split the invalid-request window: memory
// is fixed, and a count leaves the window at most window/invalidBuckets late.
const invalidBuckets = 60

// invalidCounter counts events in a sliding window, in invalidBuckets fixed
// buckets. Not safe for concurrent use.
type invalidCounter struct {
	base      time.Time     // slot 0 starts here
	bucketLen time.Duration // window / invalidBuckets
	counts    [invalidBuckets]int
	slots     [invalidBuckets]int64 // slot number each counter holds
	total     int
	cur       int64 // last slot advanced to
}

func newInvalidCounter(window time.Duration, base time.Time) *invalidCounter {
	return &invalidCounter{base: base, bucketLen: max(window/invalidBuckets, 1)}
}

func (c *invalidCounter) slot(now time.Time) int64 {
	d := now.Sub(c.base)
	if d < 0 {
		return 0
	}
	return int64(d / c.bucketLen)
}

// advance drops the buckets that left the window by now.
func (c *invalidCounter) advance(now time.Time) {
	s := c.slot(now)
	if s <= c.cur {
		return
	}
	c.cur = s
	for i := range c.counts {
		if c.counts[i] != 0 && c.slots[i] <= s-invalidBuckets {
			c.total -= c.counts[i]
			c.counts[i] = 0
		}
	}
}

// add counts one event at now and returns the count in the window.
func (c *invalidCounter) add(now time.Time) int {
	c.advance(now)
	s := c.slot(now)
	i := int(s % invalidBuckets)
	if c.slots[i] != s {
		c.total -= c.counts[i]
		c.counts[i], c.slots[i] = 0, s
	}
	c.counts[i]++
	c.total++
	return c.total
}

// count returns the number of events in the window at now.
func (c *invalidCounter) count(now time.Time) int {
	c.advance(now)
	return c.total
}

// below returns how long from now until fewer than limit events are in the
// window (0 when they already are).
func (c *invalidCounter) below(now time.Time, limit int) time.Duration {
	c.advance(now)
	if c.total < limit {
		return 0
	}
	need := c.total - limit + 1
	s := c.slot(now)
	for old := s - invalidBuckets + 1; old <= s; old++ {
		i := int(((old % invalidBuckets) + invalidBuckets) % invalidBuckets)
		if old < 0 || c.slots[i] != old {
			continue
		}
		need -= c.counts[i]
		if need <= 0 {
			// Bucket old leaves the window when slot old+invalidBuckets begins.
			leaves := c.base.Add(time.Duration(old+invalidBuckets) * c.bucketLen)
			return max(leaves.Sub(now), time.Millisecond)
		}
	}
	return c.bucketLen // unreachable: total is the sum of the live buckets
}
