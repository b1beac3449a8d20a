package pacing

import (
	"math"
	"time"
)

// maxWindowSlots caps a window's memory (one time per slot); rates above it
// are enforced over windows shorter than a second.
const maxWindowSlots = 1000

// window is a sliding-log rate limiter: at most n sends in any span. Unlike a
// token bucket with a burst of n, which lets through up to 2n in one second
// right after an idle spell, it never exceeds n per span: Discord counts its
// global limit per second, and going over it costs invalid requests. It keeps
// the times of the last n sends in a ring. Not safe for concurrent use.
type window struct {
	span  time.Duration
	times []time.Time // ring; times[next] is the oldest once full
	next  int
	full  bool
	last  time.Time // the latest send recorded
}

// newWindow returns a window enforcing rate sends per second on average:
// ⌊rate⌋ sends (at most maxWindowSlots) per ⌊rate⌋/rate seconds, or one send
// per 1/rate seconds below 1. rate must be positive and finite.
func newWindow(rate float64) *window {
	n := int(math.Min(math.Max(math.Floor(rate), 1), maxWindowSlots))
	span := time.Duration(float64(n) / rate * float64(time.Second))
	return &window{span: max(span, 1), times: make([]time.Time, n)}
}

// earliest returns the first time at or after now when one more send fits.
// It is never before the latest send recorded (callers read the clock before
// taking the lock, so their nows may arrive slightly out of order), which
// keeps the ring in time order.
func (w *window) earliest(now time.Time) time.Time {
	if now.Before(w.last) {
		now = w.last
	}
	if !w.full {
		return now
	}
	if t := w.times[w.next].Add(w.span); t.After(now) {
		return t
	}
	return now
}

// take records a send at t, a time earliest returned.
func (w *window) take(t time.Time) {
	w.last = t
	w.times[w.next] = t
	w.next++
	if w.next == len(w.times) {
		w.next, w.full = 0, true
	}
}

// since counts the sends recorded after t.
func (w *window) since(t time.Time) int {
	n := 0
	for _, at := range w.times {
		if !at.IsZero() && at.After(t) {
			n++
		}
	}
	return n
}
