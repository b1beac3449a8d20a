package ingest

import (
	"sync"
	"time"
)

// keySlots is how many coarse slots the idempotency window is counted in:
// a secret's count of keys is over-estimated by at most the keys of one
// slot (a twenty-fourth of the window), for 400 bytes per secret.
const keySlots = 24

// keyCount counts the Idempotency-Keys one API secret claimed in this
// process over the last idempotency window, so that a secret past its share
// (Config.MaxKeysPerSecret) claims no more and leaves the bucket's other
// room to the other secrets. A key is counted in the slot of window/keySlots
// it was claimed in, and until that whole slot is a window old: never less
// long than the key is kept. Safe for concurrent use.
type keyCount struct {
	mu sync.Mutex
	// counts[i] is the keys claimed in slot periods[i]; slot p lives in
	// index p % len. keySlots+1 of them: at any time, the keys of the
	// current slot and of the keySlots before it may still be kept.
	counts  [keySlots + 1]int64
	periods [keySlots + 1]int64
}

// slotWidth is the length of one slot of window.
func slotWidth(window time.Duration) time.Duration {
	return max(window/keySlots, time.Millisecond)
}

// take counts a key claimed at now, if the keys counted over window are
// fewer than share; it returns the slot to give it back to (see giveBack).
// Else it counts nothing and returns ok false and how long until the oldest
// counted keys are a window old.
func (c *keyCount) take(now time.Time, window time.Duration, share int) (slot int64, ok bool, retryAfter time.Duration) {
	width := slotWidth(window)
	p := now.UnixNano() / int64(width)
	c.mu.Lock()
	defer c.mu.Unlock()
	var held int64
	oldest := int64(-1)
	for i := range c.counts {
		q := c.periods[i]
		if q < p-keySlots || c.counts[i] == 0 {
			continue // a window old, or empty
		}
		held += c.counts[i]
		if oldest < 0 || q < oldest {
			oldest = q
		}
	}
	if held >= int64(share) {
		// The oldest slot's keys are all kept no longer than a window after
		// the slot's end.
		free := time.Unix(0, (oldest+1+keySlots)*int64(width))
		return 0, false, max(free.Sub(now), time.Second)
	}
	i := p % int64(len(c.counts))
	if c.periods[i] != p {
		c.periods[i], c.counts[i] = p, 0
	}
	c.counts[i]++
	return p, true, 0
}

// giveBack uncounts a key take counted in slot, which was not claimed after
// all (another request held it, or the claim failed).
func (c *keyCount) giveBack(slot int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i := slot % int64(len(c.counts)); c.periods[i] == slot && c.counts[i] > 0 {
		c.counts[i]--
	}
}
