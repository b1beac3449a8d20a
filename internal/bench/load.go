package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// shape is a load's shape: how many jobs, how fast, from how many clients.
type shape struct {
	// rate is jobs per second, open loop; 0 means each client sends its next
	// job as soon as the previous one is answered.
	rate        float64
	concurrency int
	// jobs bounds the number of jobs (0: no bound); duration the sending time
	// (0: no bound). At least one is set.
	jobs     int
	duration time.Duration
}

// minSleep is the shortest wait the paced dispatcher sleeps for; a job due
// sooner is sent at once, so the schedule is kept in small batches rather
// than by timer wake-ups per job.
const minSleep = 200 * time.Microsecond

// drive sends jobs 0, 1, 2, ... through sub, recording each in tr, until the
// shape's jobs or duration are used up or ctx ends. With a rate, a
// dispatcher hands each job to a free client at its due time (start +
// seq/rate); when every client is busy it falls behind, and drive returns
// the largest lateness seen.
func drive(ctx context.Context, s shape, tr *tracker, sub submitter) (maxLag time.Duration) {
	start := time.Now()
	var deadline time.Time
	if s.duration > 0 {
		deadline = start.Add(s.duration)
	}
	send := func(seq int) {
		tr.begin(seq)
		ok, label := sub.submit(ctx, seq)
		tr.answer(seq, ok, label)
	}
	var wg sync.WaitGroup
	if s.rate <= 0 {
		var next atomic.Int64
		for range s.concurrency {
			wg.Go(func() {
				for ctx.Err() == nil {
					seq := int(next.Add(1) - 1)
					if s.jobs > 0 && seq >= s.jobs || !deadline.IsZero() && !time.Now().Before(deadline) {
						return
					}
					send(seq)
				}
			})
		}
		wg.Wait()
		return 0
	}

	queue := make(chan int, s.concurrency)
	for range s.concurrency {
		wg.Go(func() {
			for seq := range queue {
				send(seq)
			}
		})
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
dispatch:
	for seq := 0; s.jobs == 0 || seq < s.jobs; seq++ {
		due := start.Add(time.Duration(float64(seq) / s.rate * float64(time.Second)))
		if !deadline.IsZero() && !due.Before(deadline) {
			break
		}
		if wait := time.Until(due); wait >= minSleep {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				break dispatch
			}
		}
		select {
		case queue <- seq:
		case <-ctx.Done():
			break dispatch
		}
		maxLag = max(maxLag, time.Since(due))
	}
	close(queue)
	wg.Wait()
	return maxLag
}
