package testkit

import (
	"sync/atomic"
	"time"
)

// Clock is a settable clock for code that takes a now func: it stands still
// until Advance moves it, so tests of waits and expiries take no real time.
// It is safe for concurrent use.
type Clock struct{ ns atomic.Int64 }

// NewClock returns a Clock reading start.
func NewClock(start time.Time) *Clock {
	c := &Clock{}
	c.ns.Store(start.UnixNano())
	return c
}

// Now is the clock's time.
func (c *Clock) Now() time.Time { return time.Unix(0, c.ns.Load()).UTC() }

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// ShiftedClock is real time shifted by what Advance added: for code whose
// collaborators (a NATS server, gobreaker) keep real time while the test
// jumps the code's own clock ahead. The zero value reads real time.
type ShiftedClock struct{ offset atomic.Int64 }

// Now is real time plus the shift.
func (c *ShiftedClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// Advance shifts the clock forward by d.
func (c *ShiftedClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }
