package breaker

import (
	"testing"
	"time"
)

func TestSnapshot(t *testing.T) {
	t.Parallel()
	x := newTestSet(t, Config{Failures: 1, OpenTimeout: time.Hour, MaxDestinations: 10})
	x.fail("discord:c") // Failures 1: one failure opens it
	x.open("discord:a", "discord:b")
	got := x.Snapshot(10)
	if len(got) != 3 || x.OpenCount() != 3 {
		t.Fatalf("snapshot %+v (open count %d), want all 3", got, x.OpenCount())
	}
	if got[0].Key != "discord:b" || got[0].HalfOpen || got[0].Since.IsZero() || !got[0].NextProbe.Equal(got[0].Since.Add(time.Hour)) {
		t.Errorf("newest %+v, want discord:b open, next probe an hour after it opened", got[0])
	}
	if n := len(x.Snapshot(1)); n != 1 {
		t.Errorf("Snapshot(1) has %d", n)
	}
}
