package bench

import (
	"context"
	"sync"
	"testing"
	"time"
)

// countingSubmitter accepts every job and counts how often each was sent.
type countingSubmitter struct {
	mu    sync.Mutex
	calls map[int]int
}

func (c *countingSubmitter) submit(_ context.Context, seq int) (bool, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls == nil {
		c.calls = make(map[int]int)
	}
	c.calls[seq]++
	return true, ""
}

func TestDriveSendsEveryJobOnce(t *testing.T) {
	for name, s := range map[string]shape{
		"as fast as possible": {concurrency: 8, jobs: 500},
		"paced":               {concurrency: 4, jobs: 300, rate: 100_000},
		"one client":          {concurrency: 1, jobs: 50},
	} {
		t.Run(name, func(t *testing.T) {
			sub := &countingSubmitter{}
			tr := newTracker(time.Now())
			drive(context.Background(), s, tr, sub)
			if len(sub.calls) != s.jobs {
				t.Fatalf("%d distinct jobs sent, want %d", len(sub.calls), s.jobs)
			}
			for seq := range s.jobs {
				if sub.calls[seq] != 1 {
					t.Fatalf("job %d sent %d times", seq, sub.calls[seq])
				}
			}
			if a := tr.tally(); a.sent != s.jobs || a.accepted != s.jobs {
				t.Errorf("tally sent %d accepted %d", a.sent, a.accepted)
			}
		})
	}
}

func TestDriveStopsAtDurationAndOnCancel(t *testing.T) {
	for name, s := range map[string]shape{
		"duration, as fast as possible": {concurrency: 2, duration: 50 * time.Millisecond},
		"duration, paced":               {concurrency: 2, duration: 50 * time.Millisecond, rate: 1000},
	} {
		t.Run(name, func(t *testing.T) {
			sub := &countingSubmitter{}
			tr := newTracker(time.Now())
			drive(context.Background(), s, tr, sub)
			if len(sub.calls) == 0 {
				t.Fatal("nothing sent")
			}
			if a := tr.tally(); a.sent != len(sub.calls) || len(a.answer) != a.sent {
				t.Errorf("sent %d, answered %d, submitted %d: requests still in flight after drive returned", a.sent, len(a.answer), len(sub.calls))
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sub := &countingSubmitter{}
	drive(ctx, shape{concurrency: 2, rate: 10, jobs: 1000}, newTracker(time.Now()), sub)
	if len(sub.calls) > 1 {
		t.Errorf("sent %d jobs after cancel", len(sub.calls))
	}
}
