package ratelimit

import (
	"context"
	"sync"
	"time"
)

// A client refused reportThreshold times within reportWindow is logged, at
// most once per client per reportWindow. A client that only runs into its
// limit now and then is normal and stays out of the log.
const (
	reportThreshold = 10
	reportWindow    = time.Minute
)

// report counts one client's recent refusals, guarded by mu.
type report struct {
	mu    sync.Mutex
	start time.Time // first refusal counted
	last  time.Time // last line logged
	count int       // refusals since start
}

// noteRefusal records that c (whose bucket key is key) was refused in group,
// and logs when that happens unusually often. The line says how many
// refusals over how long; it carries the client's address, never its API
// secret or clearance.
func (l *Limiter) noteRefusal(ctx context.Context, c Client, key, group string) {
	r := l.reports.get(key)
	now := l.now()
	r.mu.Lock()
	if r.count > 0 && r.count < reportThreshold && now.Sub(r.start) > reportWindow {
		r.count = 0 // too slow to be unusual: start over
	}
	if r.count == 0 {
		r.start = now
	}
	r.count++
	if r.count < reportThreshold || (!r.last.IsZero() && now.Sub(r.last) < reportWindow) {
		r.mu.Unlock()
		return
	}
	n, over := r.count, now.Sub(r.start)
	r.count, r.last = 0, now
	r.mu.Unlock()
	l.log.WarnContext(ctx, "client rate limited repeatedly",
		"group", group, "ip", c.IP, "client", key,
		"api_client", c.ID != "", "clearance", c.Clearance != "",
		"refusals", n, "over", over.Round(time.Millisecond).String())
}
