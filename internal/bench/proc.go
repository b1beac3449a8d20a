package bench

import (
	"sync"
	"time"
)

// procSample is one reading of a process's figures.
type procSample struct {
	rss, hwm int64 // bytes: resident now, and the most ever resident
	cpu      time.Duration
}

// sampleInterval is how often a sampler reads a process's memory.
const sampleInterval = 100 * time.Millisecond

// sampler reads a process's resident memory every sampleInterval and keeps
// the largest value, catching peaks VmHWM would also show but that a sampler
// can place within the run.
type sampler struct {
	pid  int
	stop chan struct{}
	done chan struct{}

	mu   sync.Mutex
	peak int64
}

func startSampler(pid int) *sampler {
	s := &sampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(sampleInterval)
		defer t.Stop()
		for {
			s.read()
			select {
			case <-t.C:
			case <-s.stop:
				return
			}
		}
	}()
	return s
}

func (s *sampler) read() {
	if p, err := readProc(s.pid); err == nil {
		s.mu.Lock()
		s.peak = max(s.peak, p.rss)
		s.mu.Unlock()
	}
}

// Stop takes a last reading and returns the peak resident memory seen.
func (s *sampler) Stop() int64 {
	close(s.stop)
	<-s.done
	s.read()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}
