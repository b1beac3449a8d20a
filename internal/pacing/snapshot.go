package pacing

import "time"

// DiscordState is what the pacer knows of the limits every Discord send
// shares, for the operator console. It is this process's view: each worker
// process paces its own sends.
type DiscordState struct {
	// GlobalRate is the configured global pace (sends per second), and
	// RecentRate the pace of the sends started over the last
	// GlobalWindow.
	GlobalRate   float64
	RecentRate   float64
	GlobalWindow time.Duration
	// Invalid is the invalid responses (401, 403, 429 but shared) counted in
	// the last InvalidWindow, against InvalidBudget.
	Invalid       int
	InvalidBudget int
	InvalidWindow time.Duration
	// Suspended is set while sends are held because the invalid budget is
	// spent; PausedUntil is the end of a global 429 pause (zero: none).
	Suspended   bool
	PausedUntil time.Time
}

// Paused reports whether Discord sends are held at now, by a suspension or
// a global pause.
func (d DiscordState) Paused(now time.Time) bool { return d.Suspended || now.Before(d.PausedUntil) }

// DiscordState returns a snapshot of the Discord global limits. It is
// read-only and safe for concurrent use.
func (p *Pacer) DiscordState() DiscordState {
	now := p.now()
	p.dmu.Lock()
	defer p.dmu.Unlock()
	g := &p.dg
	st := DiscordState{
		GlobalRate:    p.cfg.Discord.GlobalRate,
		GlobalWindow:  g.rate.span,
		Invalid:       g.invalid.count(now),
		InvalidBudget: g.budget,
		InvalidWindow: p.cfg.Discord.InvalidWindow,
		Suspended:     g.suspended,
	}
	if now.Before(g.pausedUntil) {
		st.PausedUntil = g.pausedUntil
	}
	if g.rate.span > 0 {
		st.RecentRate = float64(g.rate.since(now.Add(-g.rate.span))) / g.rate.span.Seconds()
	}
	return st
}
