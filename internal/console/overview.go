package console

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/dlq"
	"github.com/heraldrelay/herald/internal/pacing"
)

// Sampling of the deliveries counter.
const (
	sampleEvery = 15 * time.Second
	// maxSamples keeps a little over an hour of samples.
	maxSamples = int(62*time.Minute/sampleEvery) + 1
)

// sampler keeps timed samples of this process's delivered count, so that
// deliveries over the last minutes are the difference of two samples.
type sampler struct {
	g  prometheus.Gatherer
	mu sync.Mutex
	s  []sample
}

type sample struct {
	at time.Time
	n  float64
}

func newSampler(g prometheus.Gatherer) *sampler { return &sampler{g: g} }

// delivered sums herald_deliveries_total{outcome="delivered"}.
func (s *sampler) delivered() (float64, bool) {
	if s.g == nil {
		return 0, false
	}
	mfs, err := s.g.Gather()
	if err != nil {
		return 0, false
	}
	for _, mf := range mfs {
		if mf.GetName() != "herald_deliveries_total" {
			continue
		}
		var n float64
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == "delivered" {
					n += m.GetCounter().GetValue()
				}
			}
		}
		return n, true
	}
	return 0, true // no delivery yet: the counter has no series
}

func (s *sampler) take(now time.Time) {
	n, ok := s.delivered()
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.s = append(s.s, sample{now, n})
	if len(s.s) > maxSamples {
		s.s = s.s[len(s.s)-maxSamples:]
	}
}

// window is the deliveries over the last d: Count, and Over, the time the
// count actually covers (shorter than d while the samples do not reach so
// far back: the process started, or the console was enabled, less than d
// ago).
type window struct {
	Count int
	Over  time.Duration
	Known bool
	// Partial is set when Over is shorter than the window asked for.
	Partial bool
}

func (s *sampler) since(now time.Time, d time.Duration) window {
	cur, ok := s.delivered()
	if !ok {
		return window{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.s) == 0 {
		return window{}
	}
	// The oldest sample at or after now-d (the newest before it would
	// overshoot the window).
	from := s.s[0]
	for _, x := range s.s {
		if !x.at.Before(now.Add(-d)) {
			from = x
			break
		}
		from = x
	}
	over := now.Sub(from.at)
	return window{Count: int(cur - from.n), Over: over, Known: true, Partial: over < d-sampleEvery}
}

// overview is the overview page's data.
type overview struct {
	Now            time.Time
	QueueKnown     bool
	QueueDepth     uint64
	OldestAge      time.Duration
	ParkedKnown    bool
	Parked         uint64
	Delivered5     window
	Delivered60    window
	DeadKnown      bool
	Dead24h        int
	BreakersKnown  bool
	OpenBreakers   int
	DiscordKnown   bool
	Discord        pacing.DiscordState
	DiscordPaused  bool
	InvalidPercent int
}

func (c *Console) handleOverview(w http.ResponseWriter, r *http.Request, sess *session) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	now := c.now()
	c.samples.take(now)
	o := overview{Now: now}
	if c.deps.JS != nil {
		if st, err := c.deps.JS.Stream(ctx, herald.JobsStream); err == nil {
			info := st.CachedInfo()
			o.QueueKnown, o.QueueDepth = true, info.State.Msgs
			if info.State.Msgs > 0 && !info.State.FirstTime.IsZero() {
				o.OldestAge = now.Sub(info.State.FirstTime)
			}
		}
		if st, err := c.deps.JS.Stream(ctx, herald.ParkedStream); err == nil {
			o.ParkedKnown, o.Parked = true, st.CachedInfo().State.Msgs
		}
	}
	o.Delivered5 = c.samples.since(now, 5*time.Minute)
	o.Delivered60 = c.samples.since(now, time.Hour)
	if groups, err := c.deps.Store.Groups(ctx, dlq.Filter{Since: now.Add(-24 * time.Hour)}, nil); err == nil {
		o.DeadKnown = true
		for _, g := range groups {
			o.Dead24h += g.Count
		}
	} else if !errors.Is(err, dlq.ErrNoStream) {
		c.log.LogAttrs(ctx, slog.LevelError, "console: count dead letters", slogErr(err))
	}
	if c.deps.Breakers != nil {
		o.BreakersKnown, o.OpenBreakers = true, c.deps.Breakers.OpenCount()
	}
	if c.deps.Discord != nil {
		o.DiscordKnown, o.Discord = true, c.deps.Discord()
		o.DiscordPaused = o.Discord.Paused(now)
		if o.Discord.InvalidBudget > 0 {
			o.InvalidPercent = o.Discord.Invalid * 100 / o.Discord.InvalidBudget
		}
	}
	c.render(w, r, http.StatusOK, "overview", page{Title: "Overview", Nav: "overview", CSRF: sess.csrf, Data: o})
}
