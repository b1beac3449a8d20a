package pacing

import (
	"testing"
	"time"
)

// countIn returns the most sends taken in any interval of length span.
func countIn(times []time.Time, span time.Duration) int {
	best := 0
	for i := range times {
		n := 0
		for j := i; j < len(times) && times[j].Sub(times[i]) < span; j++ {
			n++
		}
		best = max(best, n)
	}
	return best
}

func TestWindow(t *testing.T) {
	tests := []struct {
		rate float64
		n    int
		span time.Duration
	}{
		{50, 50, time.Second},
		{1, 1, time.Second},
		{2.5, 2, 800 * time.Millisecond},
		{0.5, 1, 2 * time.Second},
		{20.0 / 60, 1, 3 * time.Second},
		{1e6, maxWindowSlots, time.Millisecond},
	}
	for _, tt := range tests {
		w := newWindow(tt.rate)
		if len(w.times) != tt.n || w.span < tt.span-time.Microsecond || w.span > tt.span+time.Microsecond {
			t.Errorf("newWindow(%v): %d per %s, want %d per %s", tt.rate, len(w.times), w.span, tt.n, tt.span)
		}
	}

	// Sending as fast as allowed: bursts of 50, never more than 50 in any
	// second, 50/s on average.
	w := newWindow(50)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := start
	var times []time.Time
	for range 500 {
		t := w.earliest(now)
		w.take(t)
		times = append(times, t)
		now = t.Add(time.Millisecond)
	}
	if n := countIn(times, time.Second); n != 50 {
		t.Errorf("at most %d sends in a second, want 50", n)
	}
	if got := times[len(times)-1].Sub(start); got < 9*time.Second || got > 10*time.Second {
		t.Errorf("500 sends took %s, want 9-10s at 50/s", got)
	}
	if !times[49].Equal(start.Add(49 * time.Millisecond)) {
		t.Errorf("first 50 not sent as a burst: 50th at %s", times[49].Sub(start))
	}
}
