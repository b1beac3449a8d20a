// Package memtrim gives the memory of a burst back to the system once the
// process is quiet again.
//
// After a burst the Go runtime keeps what the burst's heap grew to: no
// collection runs while nothing is allocated (the runtime forces one only
// every two minutes), so the heap goal stays at the burst's size, and the
// scavenger returns pages to the system only down to that goal. A herald
// serve that took 100,000 jobs to dead webhooks sat at 200 MiB for two
// minutes after the last one and came down under 100 MiB only after two
// forced collections, five minutes later, though 15 MiB of it was live. The
// embedded NATS server's duplicate window frees its share of the burst's
// memory only when the window (two minutes by default) is over, too.
//
// Run watches how much the process allocates. Once an interval allocates
// at least Busy bytes, the process counts as busy; once it then allocates
// less than Busy in an interval, it is quiet, and Run collects and returns
// the free memory to the system (debug.FreeOSMemory) when it has been quiet
// for each of the After durations. Busy again, and the schedule starts
// over. A process that stays idle, or stays busy, is never collected by
// Run: the cost is a few collections after each burst, none at rest.
package memtrim

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Config is Run's settings; zero fields take the defaults.
type Config struct {
	// Interval is how often the allocations are read. Default 5s.
	Interval time.Duration
	// Busy is what an interval must allocate for the process to count as
	// busy; less is quiet. Default 4 MiB.
	Busy uint64
	// After is how long the process must have been quiet before each
	// trim, in increasing order. Default 10s, 40s, 2m30s (past the
	// default duplicate window of two minutes) and 10m.
	After []time.Duration
}

// Defaults of Config.
const (
	DefaultInterval = 5 * time.Second
	DefaultBusy     = 4 << 20
)

// DefaultAfter is Config.After's default.
var DefaultAfter = []time.Duration{10 * time.Second, 40 * time.Second, 150 * time.Second, 10 * time.Minute}

func (c Config) withDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.Busy == 0 {
		c.Busy = DefaultBusy
	}
	if len(c.After) == 0 {
		c.After = DefaultAfter
	}
	return c
}

// Run trims as the package says until ctx ends; it blocks. log may be nil.
func Run(ctx context.Context, cfg Config, log *slog.Logger) {
	cfg = cfg.withDefaults()
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	w := newWatcher(cfg, allocated())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if !w.observe(allocated(), now) {
				continue
			}
			before := mapped()
			start := time.Now()
			debug.FreeOSMemory()
			if log != nil {
				log.LogAttrs(ctx, slog.LevelDebug, "returned a burst's memory",
					slog.Uint64("heap_before_bytes", before), slog.Uint64("heap_after_bytes", mapped()),
					slog.Duration("took", time.Since(start)))
			}
		}
	}
}

// watcher is Run's decision, apart from the runtime and the clock.
type watcher struct {
	cfg        Config
	last       uint64    // allocated bytes at the last observation
	quietSince time.Time // zero while busy or before any burst
	next       int       // index in cfg.After of the next trim; len(After) when done
}

// newWatcher is a watcher of a process that has allocated allocated bytes
// so far; it waits for a burst before it trims.
func newWatcher(cfg Config, allocated uint64) *watcher {
	return &watcher{cfg: cfg, last: allocated, next: len(cfg.After)}
}

// observe takes the allocated total at now and says whether to trim.
func (w *watcher) observe(allocated uint64, now time.Time) bool {
	delta := allocated - w.last
	w.last = allocated
	if delta >= w.cfg.Busy {
		// Busy: a trim now would be undone at once. Start the schedule
		// over when it quiets down.
		w.quietSince, w.next = time.Time{}, 0
		return false
	}
	if w.next >= len(w.cfg.After) {
		return false // idle since the schedule ran out, or since start
	}
	if w.quietSince.IsZero() {
		w.quietSince = now
	}
	if now.Sub(w.quietSince) < w.cfg.After[w.next] {
		return false
	}
	w.next++
	return true
}

// allocated is the total of heap bytes the process has allocated.
func allocated() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// mapped is the heap memory the process holds from the system.
func mapped() uint64 {
	s := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
	}
	metrics.Read(s)
	var n uint64
	for _, v := range s {
		if v.Value.Kind() == metrics.KindUint64 {
			n += v.Value.Uint64()
		}
	}
	return n
}
