package bench

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// FakeBucket is the X-RateLimit-Bucket the fake Discord reports. As on
// Discord the hash names the route, so every webhook shares it, while the
// limit applies to each webhook on its own.
const FakeBucket = "b3e4c5a6d7f80912a3b4c5d6e7f80912"

// unlimited is the bucket the fake reports, without enforcing it, when no
// RateLimit is set: large enough that Herald's pacing never holds a send.
var unlimited = RateLimit{Limit: 1_000_000, Window: time.Second}

// limiter is the fake's Discord-like rate limiter: per webhook, a fixed
// window starting at the webhook's first request (as X-RateLimit-Reset-After
// counts down on Discord), and optionally a global limit per second over all
// webhooks. It is safe for concurrent use.
type limiter struct {
	perHook RateLimit // enforced unless zero
	global  int       // per second; 0 = none
	now     func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	gStart  time.Time
	gCount  int
}

type bucket struct {
	reset time.Time
	used  int
}

func newLimiter(perHook RateLimit, global int) *limiter {
	return &limiter{perHook: perHook, global: global, now: time.Now, buckets: make(map[string]*bucket)}
}

// verdict is the limiter's answer for one request.
type verdict struct {
	// limit, remaining and reset describe the webhook's bucket after this
	// request (zero for a global 429, which reports no bucket).
	limit, remaining int
	reset            time.Time
	resetAfter       float64 // seconds
	// limited: answer 429, asking to retry after retryAfter seconds.
	limited    bool
	global     bool
	retryAfter float64
}

// take counts one request to webhook id.
func (l *limiter) take(id string) verdict {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.global > 0 {
		if l.gStart.IsZero() || now.Sub(l.gStart) >= time.Second {
			l.gStart, l.gCount = now, 0
		}
		if l.gCount >= l.global {
			after := l.gStart.Add(time.Second).Sub(now).Seconds()
			return verdict{limited: true, global: true, retryAfter: roundMillis(after)}
		}
		l.gCount++
	}
	rl, enforce := l.perHook, true
	if rl.IsZero() {
		rl, enforce = unlimited, false
	}
	b := l.buckets[id]
	if b == nil {
		b = &bucket{}
		l.buckets[id] = b
	}
	if !now.Before(b.reset) {
		b.reset, b.used = now.Add(rl.Window), 0
	}
	over := enforce && b.used >= rl.Limit
	if !over {
		b.used++
	}
	v := verdict{
		limit: rl.Limit, remaining: max(0, rl.Limit-b.used), reset: b.reset,
		resetAfter: roundMillis(b.reset.Sub(now).Seconds()),
	}
	if over {
		v.limited, v.retryAfter = true, v.resetAfter
	}
	return v
}

// writeHeaders sets Discord's rate-limit headers for v on h.
func (v verdict) writeHeaders(h http.Header) {
	if v.global {
		h.Set("Retry-After", ceilSeconds(v.retryAfter))
		h.Set("X-RateLimit-Global", "true")
		h.Set("X-RateLimit-Scope", "global")
		return
	}
	h.Set("X-RateLimit-Bucket", FakeBucket)
	h.Set("X-RateLimit-Limit", strconv.Itoa(v.limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(v.remaining))
	h.Set("X-RateLimit-Reset", strconv.FormatFloat(float64(v.reset.UnixMilli())/1000, 'f', 3, 64))
	h.Set("X-RateLimit-Reset-After", strconv.FormatFloat(v.resetAfter, 'f', 3, 64))
	if v.limited {
		h.Set("Retry-After", ceilSeconds(v.retryAfter))
		h.Set("X-RateLimit-Scope", "user")
	}
}

func ceilSeconds(s float64) string { return strconv.Itoa(int(math.Ceil(s))) }

func roundMillis(s float64) float64 { return math.Round(s*1000) / 1000 }
