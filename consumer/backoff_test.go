package consumer

import (
	"fmt"
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	const lo, hi = time.Second, 5 * time.Minute
	exact := newBackoff(lo, hi, 0)
	tests := []struct {
		name    string
		attempt int
		want    time.Duration
	}{
		{"first attempt, no jitter", 1, time.Second},
		{"zero attempt counts as first", 0, time.Second},
		{"second doubles", 2, 2 * time.Second},
		{"fifth", 5, 16 * time.Second},
		{"last below the cap", 9, 256 * time.Second},
		{"capped", 10, hi},
		{"capped stays capped", 1_000_000, hi},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := exact(tt.attempt)
			if diff := got - tt.want; diff < -time.Millisecond || diff > time.Millisecond {
				t.Errorf("backoff(%d) = %s, want %s", tt.attempt, got, tt.want)
			}
		})
	}
}

// TestBackoffJitter draws many delays: each lies within ±20% of the
// un-jittered delay (never above the cap), and they spread to both sides.
func TestBackoffJitter(t *testing.T) {
	const lo, hi = time.Second, 5 * time.Minute
	jittered := newBackoff(lo, hi, jitterFactor)
	tests := []struct {
		name                  string
		attempt               int
		low, high             time.Duration
		spreadLow, spreadHigh bool
	}{
		{"first attempt", 1, 800 * time.Millisecond, 1200 * time.Millisecond, true, true},
		{"fifth", 5, 12800 * time.Millisecond, 19200 * time.Millisecond, true, true},
		{"capped: low jitter, high jitter never exceeds max", 30, 4 * time.Minute, hi, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			minSeen, maxSeen := time.Duration(1<<62), time.Duration(0)
			for range 2000 {
				d := jittered(tt.attempt)
				if d < tt.low-time.Millisecond || d > tt.high {
					t.Fatalf("backoff(%d) = %s, outside [%s, %s]", tt.attempt, d, tt.low, tt.high)
				}
				minSeen, maxSeen = min(minSeen, d), max(maxSeen, d)
			}
			mid := (tt.low + tt.high) / 2
			if tt.spreadLow && minSeen > tt.low+(mid-tt.low)/2 {
				t.Errorf("backoff(%d): lowest of 2000 draws %s, jitter does not reach down toward %s", tt.attempt, minSeen, tt.low)
			}
			if tt.spreadHigh && maxSeen < tt.high-(tt.high-mid)/2 {
				t.Errorf("backoff(%d): highest of 2000 draws %s, jitter does not reach up toward %s", tt.attempt, maxSeen, tt.high)
			}
		})
	}
}

func TestBackoffDelayBounds(t *testing.T) {
	const lo, hi = 50 * time.Millisecond, 200 * time.Millisecond
	jittered := newBackoff(lo, hi, jitterFactor)
	for attempt := 1; attempt < 70; attempt++ {
		for range 5 {
			d := jittered(attempt)
			if d < lo*8/10 || d > hi {
				t.Fatalf("backoff(%d) = %s, outside [%s, %s]", attempt, d, lo*8/10, hi)
			}
		}
	}
	if d := newBackoff(0, hi, jitterFactor)(3); d != 0 {
		t.Errorf("zero min: %s, want 0", d)
	}
}

// BenchmarkBackoff measures one delay: each call builds a backoff and
// advances it to the attempt, which stops costing more once the cap is hit.
func BenchmarkBackoff(b *testing.B) {
	p := newBackoff(DefaultMinBackoff, DefaultMaxBackoff, jitterFactor)
	for _, attempt := range []int{1, 5, 100} {
		b.Run(fmt.Sprint("attempt-", attempt), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p(attempt)
			}
		})
	}
}
