package memtrim

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// script feeds a watcher one observation per interval: the bytes allocated
// in it. It returns the quiet times (since the first quiet interval) at which
// the watcher trimmed.
func script(t *testing.T, cfg Config, perInterval []uint64) []time.Duration {
	t.Helper()
	cfg = cfg.withDefaults()
	w := newWatcher(cfg, 1000)
	total, now := uint64(1000), time.Unix(0, 0)
	var quietFrom time.Time
	var trims []time.Duration
	for _, n := range perInterval {
		now = now.Add(cfg.Interval)
		total += n
		if n >= cfg.Busy {
			quietFrom = time.Time{}
		} else if quietFrom.IsZero() {
			quietFrom = now
		}
		if w.observe(total, now) {
			trims = append(trims, now.Sub(quietFrom))
		}
	}
	return trims
}

func repeat(n int, v uint64) []uint64 {
	s := make([]uint64, n)
	for i := range s {
		s[i] = v
	}
	return s
}

func TestIdleProcessIsNeverTrimmed(t *testing.T) {
	// An hour of a little allocation each interval, as an idle serve does.
	if trims := script(t, Config{}, repeat(720, 64<<10)); len(trims) != 0 {
		t.Errorf("an idle process was trimmed at %v", trims)
	}
}

func TestBusyProcessIsNeverTrimmed(t *testing.T) {
	if trims := script(t, Config{}, repeat(720, 64<<20)); len(trims) != 0 {
		t.Errorf("a busy process was trimmed at %v", trims)
	}
}

func TestBurstIsFollowedByTheSchedule(t *testing.T) {
	in := append(repeat(10, 64<<20), repeat(240, 0)...) // 50 s of burst, 20 min quiet
	trims := script(t, Config{}, in)
	want := DefaultAfter
	if len(trims) != len(want) {
		t.Fatalf("trimmed at %v, want at %v of quiet", trims, want)
	}
	for i := range want {
		if trims[i] != want[i] {
			t.Errorf("trim %d after %v of quiet, want %v", i, trims[i], want[i])
		}
	}
}

func TestNewBurstStartsTheScheduleOver(t *testing.T) {
	in := append(repeat(4, 64<<20), repeat(3, 0)...) // burst, 15 s quiet: the first trim
	in = append(in, repeat(2, 64<<20)...)            // busy again
	in = append(in, repeat(4, 0)...)                 // 20 s quiet: the first trim again
	trims := script(t, Config{}, in)
	if len(trims) != 2 || trims[0] != 10*time.Second || trims[1] != 10*time.Second {
		t.Errorf("trimmed at %v of quiet, want 10s twice", trims)
	}
}

// TestRunReturnsABurstsMemory runs Run with a short schedule after a real
// burst of garbage: the heap the process holds from the system shrinks.
func TestRunReturnsABurstsMemory(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, Config{Interval: 20 * time.Millisecond, Busy: 1 << 20, After: []time.Duration{40 * time.Millisecond}}, nil)
	}()
	// A burst: 64 MiB live for a moment, then garbage.
	keep := make([][]byte, 0, 64)
	for range 64 {
		keep = append(keep, make([]byte, 1<<20))
	}
	runtime.KeepAlive(keep)
	keep = nil
	held := mapped()
	deadline := time.Now().Add(10 * time.Second)
	for mapped() > held/2 {
		if time.Now().After(deadline) {
			t.Fatalf("the heap held from the system stayed at %d MiB (was %d MiB after the burst)", mapped()>>20, held>>20)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
}
