package challenge

import (
	"strconv"
	"testing"
	"time"
)

func TestTallyIsBounded(t *testing.T) {
	tl := newTally()
	now := time.Unix(1_700_000_000, 0)
	for i := range maxTracked + 500 {
		tl.add("k"+strconv.Itoa(i), now)
	}
	if n := len(tl.m); n > maxTracked {
		t.Errorf("tally holds %d entries, more than %d", n, maxTracked)
	}
	if got := tl.add("x", now); got != 1 {
		t.Errorf("first add = %d", got)
	}
	if got := tl.add("x", now); got != 2 {
		t.Errorf("second add = %d", got)
	}
	if got := tl.add("x", now.Add(offenderWindow+1)); got != 1 {
		t.Errorf("add after the window = %d, want a fresh count", got)
	}
}
