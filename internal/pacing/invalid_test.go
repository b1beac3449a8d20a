package pacing

import (
	"testing"
	"time"
)

func TestInvalidCounterSlides(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newInvalidCounter(10*time.Minute, base) // 10 s buckets
	at := func(d time.Duration) time.Time { return base.Add(d) }
	for range 3 {
		c.add(at(5 * time.Second))
	}
	c.add(at(4 * time.Minute))
	c.add(at(9*time.Minute + 59*time.Second))
	if n := c.count(at(9*time.Minute + 59*time.Second)); n != 5 {
		t.Fatalf("count = %d, want 5", n)
	}
	// Under 5 once the first bucket (0-10 s) leaves the window at 10 min.
	if w := c.below(at(9*time.Minute+59*time.Second), 5); w != time.Second {
		t.Errorf("below(5) = %s, want 1s", w)
	}
	// Under 3 as well: the first bucket holds 3.
	if w := c.below(at(9*time.Minute+59*time.Second), 3); w != time.Second {
		t.Errorf("below(3) = %s, want 1s", w)
	}
	// Under 2: the 4-minute event (bucket 4:00-4:10) must leave too, at 14:00.
	if w := c.below(at(9*time.Minute+59*time.Second), 2); w != 4*time.Minute+time.Second {
		t.Errorf("below(2) = %s, want 4m1s", w)
	}
	if w := c.below(at(time.Minute), 10); w != 0 {
		t.Errorf("below(10) = %s, want 0", w)
	}
	if n := c.count(at(10 * time.Minute)); n != 2 {
		t.Errorf("count at 10m = %d, want 2", n)
	}
	if n := c.count(at(14 * time.Minute)); n != 1 {
		t.Errorf("count at 14m = %d, want 1", n)
	}
	// Long idle: everything leaves; the ring is reused.
	if n := c.count(at(time.Hour)); n != 0 {
		t.Errorf("count after an hour = %d, want 0", n)
	}
	if n := c.add(at(time.Hour)); n != 1 {
		t.Errorf("add after an hour = %d, want 1", n)
	}
}
