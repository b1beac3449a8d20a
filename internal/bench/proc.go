package bench

import (
	"sync"
	"time"
)

// procSample is one reading of a process's figures.
type procSample struct {
	rss, hwm int64 // bytes: resident now, and the most ever resident
	// anon is the private part of rss (RssAnon: heap, stacks, runtime);
	// the rest is pages of files mapped in, the executable's above all,
	// which the page cache holds and the kernel can take back at will.
	anon int64
	cpu  time.Duration
}

// threadFigures are a process's threads' scheduler counts (threadsStat).
type threadFigures struct {
	cpu  time.Duration // CPU time used
	runs int64         // times put on a CPU
}

// peaks are the largest figures a sampler saw.
type peaks struct {
	rss  int64 // resident
	anon int64 // private (RssAnon)
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
	peak peaks
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
		s.peak.rss = max(s.peak.rss, p.rss)
		s.peak.anon = max(s.peak.anon, p.anon)
		s.mu.Unlock()
	}
}

// Stop takes a last reading and returns the peak resident and private
// memory seen (each its own peak: they need not be at the same moment).
func (s *sampler) Stop() peaks {
	close(s.stop)
	<-s.done
	s.read()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}
