package consumer

import (
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	const lo, hi = time.Second, 5 * time.Minute
	tests := []struct {
		name    string
		attempt int
		r       float64
		want    time.Duration
	}{
		{"first attempt, no jitter", 1, 0.5, time.Second},
		{"first attempt, lowest", 1, 0, 800 * time.Millisecond},
		{"first attempt, highest", 1, 0.999999, 1200 * time.Millisecond},
		{"zero attempt counts as first", 0, 0.5, time.Second},
		{"second doubles", 2, 0.5, 2 * time.Second},
		{"fifth", 5, 0.5, 16 * time.Second},
		{"capped", 10, 0.5, hi},
		{"capped stays capped", 1_000_000, 0.5, hi},
		{"capped, low jitter", 30, 0, 4 * time.Minute},
		{"capped, high jitter never exceeds max", 30, 0.999, hi},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := backoffDelay(tt.attempt, lo, hi, tt.r)
			if diff := got - tt.want; diff < -time.Millisecond || diff > time.Millisecond {
				t.Errorf("backoffDelay(%d, r=%v) = %s, want %s", tt.attempt, tt.r, got, tt.want)
			}
		})
	}
}

func TestBackoffDelayBounds(t *testing.T) {
	const lo, hi = 50 * time.Millisecond, 200 * time.Millisecond
	for attempt := 1; attempt < 70; attempt++ {
		for _, r := range []float64{0, 0.25, 0.5, 0.75, 0.9999} {
			d := backoffDelay(attempt, lo, hi, r)
			if d < lo*8/10 || d > hi {
				t.Fatalf("backoffDelay(%d, r=%v) = %s, outside [%s, %s]", attempt, r, d, lo*8/10, hi)
			}
		}
	}
	if d := backoffDelay(3, 0, hi, 0.5); d != 0 {
		t.Errorf("zero min: %s, want 0", d)
	}
}
