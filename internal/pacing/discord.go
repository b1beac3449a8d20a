package pacing

import (
	"net/http"
	"time"

	"github.com/heraldrelay/herald/channels"
)

const (
	// resetMargin is added to a bucket's reset time before the next window is
	// used: the reset we compute (arrival + Reset-After) already errs late by
	// the response's transit time, and this covers clock granularity on
	// Discord's side.
	resetMargin = 50 * time.Millisecond
	// newWindowSlack tells a response from a newer bucket window apart from
	// one of the current window: within a window, resets computed from
	// different responses differ only by their transit times.
	newWindowSlack = 250 * time.Millisecond
	// globalPauseGuess pauses every Discord send as soon as a global 429 is
	// observed, before the send returns the wait Discord asked for (which then
	// replaces it).
	globalPauseGuess = time.Second
)

// discordDest is what is known of one webhook's rate-limit bucket. It is only
// touched under its cache shard's lock.
//
// Within a window, Discord counts the requests this process sent (sent:
// every request reserved since the window began, finished or in flight) and
// those of anyone else calling the same webhook (others). A response reports
// Discord's count (Limit - Remaining) at the time it was answered, which
// cannot exceed sent plus others at the time it arrives; so others is at
// least count - sent, and the largest such difference is kept. When only this
// process calls the webhook, count never exceeds sent and others stays 0:
// answers arriving out of order neither add nor lose a slot.
type discordDest struct {
	bucket       uint64    // hash of X-RateLimit-Bucket (0: none seen); a change means a new bucket
	learned      bool      // a response with rate-limit headers was seen
	limit        int       // X-RateLimit-Limit
	sent         int       // requests this process started in the current window
	others       int       // requests others made in the current window, as far as known
	resetAt      time.Time // when the current window ends; zero: not known yet
	inflight     int       // reservations not yet released
	later        spread    // returns of jobs given back while MaxInFlight sends are out
	holding      int       // workers waiting in-process for the next window (at most MaxInFlight)
	blockedUntil time.Time // from a 429's retry_after
	wake         chan struct{}

	// Sends that find the window full are each given a slot in a coming
	// window, so that jobs handed back to JetStream return when there is
	// room for them rather than all at the next reset (which would hand most
	// of them back again).
	span    time.Duration // window length: the longest Reset-After seen
	schedAt time.Time     // start of the latest window slots were given in
	schedN  int           // slots given in it
}

func (d *discordDest) busy() bool { return d.inflight > 0 }

// remaining is how many more requests the current window allows.
func (d *discordDest) remaining() int { return d.limit - d.sent - d.others }

// wakeWaiters tells sends waiting for a response that the state changed.
func (d *discordDest) wakeWaiters() {
	if d.wake != nil {
		close(d.wake)
		d.wake = nil
	}
}

// waitChan returns the channel closed at the next change of state.
func (d *discordDest) waitChan() <-chan struct{} {
	if d.wake == nil {
		d.wake = make(chan struct{})
	}
	return d.wake
}

// newWindow starts counting a window afresh. Requests still in flight may
// land in it, so they count as sent in it.
func (d *discordDest) newWindow(reset time.Time) {
	d.sent, d.others, d.resetAt = d.inflight, 0, reset
}

// reserve takes a slot for one request at now. ok: taken. Otherwise wait is
// how long until a slot may free up, or, when unknown is set, a slot frees up
// only when a response in flight arrives. hold is how long the caller may
// wait in-process: a caller that cannot wait until the next window is given
// a slot in a coming one (see slot).
func (d *discordDest) reserve(now time.Time, hold time.Duration, maxInFlight int) (ok bool, wait time.Duration, unknown bool) {
	if now.Before(d.blockedUntil) {
		return false, d.blockedUntil.Sub(now), false
	}
	if d.learned && !d.resetAt.IsZero() && !now.Before(d.resetAt.Add(resetMargin)) {
		// The window is over; a new one starts with our next request, and its
		// reset is learned from the response.
		d.newWindow(time.Time{})
	}
	switch {
	case d.inflight >= maxInFlight:
		// Enough of this destination's sends are on their way: the next
		// one waits for an answer, without holding a worker.
		return false, 0, true
	case d.learned && d.remaining() > 0,
		// Nothing known (first request, or the window's responses carried no
		// headers): one request at a time until a response teaches the bucket.
		d.inflight == 0 && (!d.learned || d.resetAt.IsZero()):
		d.sent++
		d.inflight++
		return true, 0, false
	case d.learned && !d.resetAt.IsZero():
		if next := d.resetAt.Add(resetMargin).Sub(now); next <= hold {
			return false, next, false
		}
		return false, d.slot(now), false
	default:
		return false, 0, true
	}
}

// slot gives a send that found the window full, and cannot wait for the
// next, a slot in a coming window, and returns how long until that window
// opens. Windows after the next are assumed to open a span (plus the margin)
// after the one before: each opens with our first request after the
// previous reset. Sends that can wait for the next window get no slot: they
// and the sends given a slot in it, who come back for it, take it in the
// order they ask. A slot given to a send that does not come back, or comes
// back and is refused again, is wasted: a later send waits a window longer
// than it had to.
func (d *discordDest) slot(now time.Time) time.Duration {
	next := d.resetAt.Add(resetMargin)
	if d.span <= 0 || d.limit <= 0 {
		return next.Sub(now)
	}
	if d.schedAt.Before(next) {
		d.schedAt, d.schedN = next, 0
	}
	if d.schedN >= d.limit {
		d.schedAt, d.schedN = d.schedAt.Add(d.span+resetMargin), 0
	}
	d.schedN++
	return d.schedAt.Sub(now)
}

// release ends a reservation. sent is false when the request certainly did not
// reach Discord, which gives the slot back.
func (d *discordDest) release(sent bool) {
	d.inflight = max(d.inflight-1, 0)
	if !sent {
		d.sent = max(d.sent-1, 0)
	}
	d.wakeWaiters()
}

// block holds every request until until (a 429's retry_after) and takes the
// window's remaining slots.
func (d *discordDest) block(until time.Time) {
	if until.After(d.blockedUntil) {
		d.blockedUntil = until
	}
	d.others = max(d.others, d.limit-d.sent)
	d.wakeWaiters()
}

// observe learns from one response's rate-limit headers, received at now.
func (d *discordDest) observe(rl channels.RateLimit, now time.Time) {
	defer d.wakeWaiters()
	if !rl.Present || rl.Limit <= 0 {
		return // a global 429, a ban or an error page: nothing about the bucket
	}
	count := rl.Limit - min(rl.Remaining, rl.Limit)
	var reset time.Time
	if rl.ResetAfter > 0 {
		reset = now.Add(rl.ResetAfter)
	}
	var bucket uint64
	if rl.Bucket != "" {
		bucket = bucketHash(rl.Bucket)
	}
	newBucket := bucket != 0 && d.bucket != 0 && bucket != d.bucket
	if bucket != 0 {
		d.bucket = bucket
	}
	d.limit = rl.Limit
	d.span = max(d.span, rl.ResetAfter)
	switch {
	case !d.learned, newBucket,
		// Our window is over and was not rolled: this response opens the next.
		!d.resetAt.IsZero() && !now.Before(d.resetAt.Add(resetMargin)),
		// Discord's window reset before ours: the response is from the next.
		!d.resetAt.IsZero() && reset.After(d.resetAt.Add(newWindowSlack)):
		d.learned = true
		d.newWindow(reset)
	default:
		// The current window (resetAt is zero for the first response of a
		// window we opened). Resets computed from different responses differ
		// by their transit times; keep the latest.
		if reset.After(d.resetAt) {
			d.resetAt = reset
		}
	}
	d.others = max(d.others, count-d.sent)
}

// bucketHash is a fixed-size stand-in for a bucket hash, which is only
// compared: FNV-1a, never 0. Discord chooses the hashes, so collisions are
// chance (one in 2^64), and one only makes a new bucket look like the old.
func bucketHash(b string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(b); i++ {
		h ^= uint64(b[i])
		h *= 1099511628211
	}
	return max(h, 1)
}

// discordGlobal is the state every webhook shares: the per-IP rate, a global
// pause after a global 429, and the invalid-request budget. Its fields are
// guarded by Pacer.dmu.
type discordGlobal struct {
	rate        *window
	pausedUntil time.Time
	invalid     *invalidCounter
	budget      int
	suspended   bool
	// inflight is the sends on their way: each may come back invalid, so
	// they count against the budget from the moment they start and the
	// guard never overshoots it.
	inflight int
}

// isInvalid reports whether Discord counts the response toward Cloudflare's
// invalid-request ban: 401, 403, and 429 unless its scope is "shared" (a
// limit shared by everyone on a resource, not caused by this relay).
func isInvalid(status int, rl channels.RateLimit) bool {
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden:
		return true
	case http.StatusTooManyRequests:
		return rl.Scope != "shared"
	}
	return false
}

// isGlobal429 reports whether a 429 covers every webhook: Discord's global
// limit, or a Cloudflare ban, as channels.Classify429 decided (rl.Covers).
func isGlobal429(status int, rl channels.RateLimit) bool {
	return status == http.StatusTooManyRequests && rl.Covers.Global()
}
