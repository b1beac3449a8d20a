package breaker

import (
	"time"

	"github.com/sony/gobreaker/v2"
)

// Open describes one breaker that is not closed, for the operator console.
type Open struct {
	// Key is the destination key the breaker was made for (see Keys): a
	// webhook id or a bot id and keyed hashes, never a credential.
	Key string
	// Channel is the destination's channel.
	Channel string
	// HalfOpen is set when the breaker lets probes through; else it is open.
	HalfOpen bool
	// Since is when the breaker entered its state.
	Since time.Time
	// NextProbe is when an open breaker lets its next probe through (Since
	// plus Config.OpenTimeout); zero when half-open (probes go through now).
	NextProbe time.Time
}

// Snapshot returns up to limit breakers that are open or half-open, most
// recently used first, as the Set last recorded them: an open breaker whose
// OpenTimeout has passed shows open until it is next used. It is read-only
// and safe for concurrent use.
func (s *Set) Snapshot(limit int) []Open {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Open, 0, min(limit, s.other.Len()))
	for el := s.other.Front(); el != nil && len(out) < limit; el = el.Next() {
		e := el.Value.(*entry)
		o := Open{Key: e.key, Channel: e.channel, Since: e.changed}
		if e.state == gobreaker.StateHalfOpen {
			o.HalfOpen = true
		} else {
			o.NextProbe = e.changed.Add(s.cfg.OpenTimeout)
		}
		out = append(out, o)
	}
	return out
}

// OpenCount returns how many breakers are open or half-open.
func (s *Set) OpenCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.other.Len()
}
