package bench

import (
	"fmt"
	"io"
	"time"
)

// Progress display intervals.
const (
	ttyInterval   = 250 * time.Millisecond
	plainInterval = 5 * time.Second
)

// showProgress writes the tracker's counts to w until stop closes: on a
// terminal one line rewritten in place, else a line every plainInterval. It
// closes done when it has finished writing.
func showProgress(w io.Writer, tty bool, tr *tracker, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	interval := plainInterval
	if tty {
		interval = ttyInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	start := time.Now()
	last, lastAt := progress{}, start
	line := func(now time.Time) string {
		p := tr.progress()
		secs := now.Sub(lastAt).Seconds()
		r := 0.0
		if secs > 0 {
			r = float64(p.accepted-last.accepted) / secs
		}
		last, lastAt = p, now
		return fmt.Sprintf("%5.1fs  sent %s  accepted %s  refused %s  delivered %s  %s/s",
			now.Sub(start).Seconds(), count(p.sent), count(p.accepted), count(p.refused), count(p.delivered), rate(r))
	}
	for {
		select {
		case now := <-t.C:
			if tty {
				fmt.Fprintf(w, "\r\033[K%s", line(now))
			} else {
				fmt.Fprintln(w, line(now))
			}
		case <-stop:
			if tty {
				fmt.Fprintf(w, "\r\033[K%s\n", line(time.Now()))
			}
			return
		}
	}
}
