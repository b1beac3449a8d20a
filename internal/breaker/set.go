// Package breaker keeps one circuit breaker (sony/gobreaker) per destination,
// so a destination that is down is called a few times, not once per queued
// job, and its jobs wait without using their attempts.
//
// A Set holds the breakers in a bounded map and exposes them as a
// consumer.Middleware. Each send runs inside the breakers its keys name (a
// Discord webhook, a Telegram bot+chat, and the Telegram bot itself):
//
//   - nil, and errors wrapping herald.ErrPermanent, count as successes: a
//     permanent error dead-letters its job but says nothing about the
//     destination being down;
//   - *herald.RetryAfterError (a 429, pacing) and context.Canceled are
//     excluded: neither success nor failure;
//   - anything else (timeouts, network errors, 5xx) is a failure.
//     Config.Failures of them in a row open the breaker.
//
// While a breaker is open, or half-open with its probes already out, the send
// is not made: the middleware returns a *herald.RetryAfterError wrapping
// herald.ErrCircuitOpen with the time until the breaker may let a probe
// through, and the consumer puts the job back for that long without counting
// an attempt. After Config.OpenTimeout a breaker turns half-open and lets
// Config.HalfOpenProbes sends through; if they succeed it closes and the
// backlog drains (at the rate pacing allows), if one fails it opens again.
//
// State changes are logged (Warn when a breaker opens, Info otherwise) with
// the channel and the destination key, and counted in the BreakerChanges
// metric; the BreakerState gauges count each channel's breakers per state.
// gobreaker turns an open breaker half-open lazily, so the gauges count it as
// open until it is next used (or asked with Set.State) after OpenTimeout.
// Keys are not secret, but they never become metric labels.
//
// State lives in the process: several worker processes each keep their own
// breakers, so a destination that is down sees Failures calls, and then the
// probes, from each.
//
// Memory: a destination has a breaker only while something is on record, from
// its first transient failure until a success leaves the breaker closed with
// no failure counted; sends that succeed or fail for good (a deleted
// webhook) never create one. The breakers kept are bounded by
// Config.MaxMemory bytes (each accounted entryBytes plus its key, as the heap
// measures it) and Config.MaxDestinations. A breaker dropped to make room is
// closed from then on: its destination is called again and reopens it after
// Failures failures.
package breaker

import (
	"container/list"
	"context"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

// minDelay is the shortest wait a rejected job is given, so a breaker about
// to turn half-open does not make its jobs spin through the queue.
const minDelay = 100 * time.Millisecond

// maxProbeWait caps the wait of a job turned away by a half-open breaker
// whose probes are out: the probe's answer is usually a moment away.
const maxProbeWait = time.Second

// maxSweepEvery is the longest interval between two sweeps for idle
// breakers.
const maxSweepEvery = time.Minute

// State labels, as the BreakerState and BreakerChanges metrics use them.
const (
	labelClosed   = "closed"
	labelHalfOpen = "half_open"
	labelOpen     = "open"
)

// Set is a bounded collection of circuit breakers, one per destination key
// with something on record: a breaker is created at a destination's first
// transient failure, and forgotten when a success leaves it closed with no
// failure counted, since a closed breaker without failures is what a
// destination without a breaker has. Create it with New. It is safe for
// concurrent use.
type Set struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics.Metrics
	// now and jitter are replaceable by tests; jitter returns a uniform
	// number in [0, 1).
	now    func() time.Time
	jitter func() float64

	mu     sync.Mutex
	byKey  map[string]*entry
	bytes  int64     // accounted bytes of the breakers kept (see entryBytes)
	closed list.List // of *entry: closed breakers, most recently used first
	other  list.List // of *entry: open and half-open breakers, most recently used first
	// nextSweep is when idle breakers are next looked for.
	nextSweep time.Time
}

// entry is one destination's breaker and its bookkeeping.
type entry struct {
	key     string
	channel string // metric label, from a fixed set
	cb      *gobreaker.TwoStepCircuitBreaker[struct{}]
	// openedAt is when the breaker last opened, in Unix nanoseconds. It is
	// written under the breaker's own lock (in OnStateChange) and read after
	// the breaker rejected a request.
	openedAt atomic.Int64

	// Guarded by Set.mu.
	elem     *list.Element
	state    gobreaker.State
	lastUsed time.Time
	changed  time.Time
	gone     bool // dropped from the Set; callbacks no longer touch the lists
}

// New validates cfg and returns an empty Set. logger receives one line per
// breaker state change (nil discards); m receives the breaker metrics (nil
// uses a private registry).
func New(cfg Config, logger *slog.Logger, m *metrics.Metrics) (*Set, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = metrics.New(prometheus.NewRegistry())
	}
	s := &Set{
		cfg:     cfg,
		log:     logger,
		metrics: m,
		now:     time.Now,
		jitter:  rand.Float64,
		byKey:   make(map[string]*entry),
	}
	// Export every series from the start, so dashboards show 0, not "no data".
	for _, ch := range herald.Channels {
		for _, st := range []string{labelClosed, labelHalfOpen, labelOpen} {
			m.BreakerState.WithLabelValues(string(ch), st).Add(0)
		}
	}
	return s, nil
}

// State reports the state of the breaker for key; a key with no breaker (never
// used, or dropped) is closed. It may move an open breaker whose OpenTimeout
// has passed to half-open.
func (s *Set) State(key string) gobreaker.State {
	s.mu.Lock()
	e, ok := s.byKey[key]
	s.mu.Unlock()
	if !ok {
		return gobreaker.StateClosed
	}
	// Outside s.mu: the breaker's lock is always taken first (see changed).
	return e.cb.State()
}

// Len returns the number of breakers kept.
func (s *Set) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byKey)
}

// Bytes returns the bytes accounted for the breakers kept: entryBytes each
// plus its key. It is at most Config.MaxMemory.
func (s *Set) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

// cost is what a breaker for key is accounted: its fixed size and its key,
// rounded up to the allocator's 16-byte classes.
func cost(key string) int64 {
	return int64(entryBytes + (len(key)+15)&^15)
}

// lookup returns the breaker for key, marked used, or nil when there is
// none.
func (s *Set) lookup(key string) *entry {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maybeSweepLocked(now)
	e, ok := s.byKey[key]
	if !ok {
		return nil
	}
	e.lastUsed = now
	s.listOf(e.state).MoveToFront(e.elem)
	return e
}

// maybeSweepLocked sweeps for idle breakers when one is due. s.mu is held.
func (s *Set) maybeSweepLocked(now time.Time) {
	if now.After(s.nextSweep) {
		s.sweepLocked(now)
		s.nextSweep = now.Add(min(s.cfg.IdleTTL/4, maxSweepEvery))
	}
}

// get returns the breaker for key, creating it (and making room for it) when
// needed, and marks it used. channel is the metric label for a new breaker.
func (s *Set) get(key, channel string) *entry {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maybeSweepLocked(now)
	if e, ok := s.byKey[key]; ok {
		e.lastUsed = now
		s.listOf(e.state).MoveToFront(e.elem)
		return e
	}
	c := cost(key)
	for len(s.byKey) > 0 && (len(s.byKey) >= s.cfg.MaxDestinations || s.bytes+c > s.cfg.MaxMemory) {
		s.evictLocked()
	}
	e := &entry{key: key, channel: channel, state: gobreaker.StateClosed, lastUsed: now, changed: now}
	e.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        key,
		MaxRequests: s.cfg.HalfOpenProbes,
		// Interval 0: counts are never cleared while closed. Only
		// consecutive failures matter, and any success resets them.
		Interval: 0,
		Timeout:  s.cfg.OpenTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= s.cfg.Failures
		},
		OnStateChange: func(_ string, from, to gobreaker.State) { s.changed(e, from, to) },
		IsSuccessful:  isSuccessful,
		IsExcluded:    isExcluded,
	})
	e.elem = s.closed.PushFront(e)
	s.byKey[key] = e
	s.bytes += c
	s.metrics.BreakerState.WithLabelValues(channel, labelClosed).Inc()
	return e
}

// recordFailure records a transient failure (err) of a send made while key
// had no breaker, creating one. A breaker that another send meanwhile
// opened, or whose probes are out, already knows.
func (s *Set) recordFailure(key, channel string, err error) {
	e := s.get(key, channel)
	if done, aerr := e.cb.Allow(); aerr == nil {
		done(err)
	}
}

// forgetIfClean forgets e when it is closed with no failure counted, after a
// success: it then holds nothing a missing breaker does not. A failure that
// another send records at the same moment may be forgotten with it, as it
// would be by eviction; the breaker then opens one failure later.
func (s *Set) forgetIfClean(e *entry) {
	// The breaker's lock is taken outside s.mu (see changed).
	if e.cb.State() != gobreaker.StateClosed || e.cb.Counts().ConsecutiveFailures != 0 {
		return
	}
	s.mu.Lock()
	if !e.gone && e.state == gobreaker.StateClosed {
		s.removeLocked(e)
	}
	s.mu.Unlock()
}

// listOf returns the LRU list that holds breakers in state st; s.mu is held.
func (s *Set) listOf(st gobreaker.State) *list.List {
	if st == gobreaker.StateClosed {
		return &s.closed
	}
	return &s.other
}

// evictLocked drops one breaker to make room: the least recently used closed
// one, else the least recently used of all. s.mu is held.
func (s *Set) evictLocked() {
	if el := s.closed.Back(); el != nil {
		s.removeLocked(el.Value.(*entry))
		return
	}
	el := s.other.Back()
	if el == nil {
		return // unreachable while len(byKey) > 0
	}
	e := el.Value.(*entry)
	s.removeLocked(e)
	// Forgetting an open breaker means its destination will be called again
	// as if healthy: say so.
	s.log.LogAttrs(context.Background(), slog.LevelWarn, "breaker dropped",
		slog.String("channel", e.channel),
		slog.String("destination", e.key),
		slog.String("state", stateLabel(e.state)),
		slog.String("reason", "max destinations or max memory reached and every breaker is open"),
		slog.Int("max_destinations", s.cfg.MaxDestinations),
		slog.Int64("max_memory", s.cfg.MaxMemory))
}

// sweepLocked drops breakers unused for IdleTTL: closed ones at once, open and
// half-open ones only once their OpenTimeout has also passed since they last
// changed state (they would let a probe through anyway). Both lists are in
// last-use order, so the sweep stops at the first breaker still in use.
// s.mu is held.
func (s *Set) sweepLocked(now time.Time) {
	idle := now.Add(-s.cfg.IdleTTL)
	for el := s.closed.Back(); el != nil; el = s.closed.Back() {
		e := el.Value.(*entry)
		if e.lastUsed.After(idle) {
			break
		}
		s.removeLocked(e)
	}
	settled := now.Add(-s.cfg.OpenTimeout)
	for el := s.other.Back(); el != nil; el = s.other.Back() {
		e := el.Value.(*entry)
		if e.lastUsed.After(idle) || e.changed.After(settled) {
			break
		}
		s.removeLocked(e)
		s.log.LogAttrs(context.Background(), slog.LevelInfo, "breaker dropped",
			slog.String("channel", e.channel),
			slog.String("destination", e.key),
			slog.String("state", stateLabel(e.state)),
			slog.String("reason", "idle"),
			slog.Duration("idle_ttl", s.cfg.IdleTTL))
	}
}

// removeLocked forgets e; s.mu is held. A send still running inside e's
// breaker finishes normally; its outcome no longer matters to the Set.
func (s *Set) removeLocked(e *entry) {
	delete(s.byKey, e.key)
	s.bytes -= cost(e.key)
	s.listOf(e.state).Remove(e.elem)
	e.elem = nil
	e.gone = true
	s.metrics.BreakerState.WithLabelValues(e.channel, stateLabel(e.state)).Dec()
}

// changed is every breaker's OnStateChange. gobreaker calls it with the
// breaker's lock held, so the lock order is breaker → s.mu, and nothing may
// call into a breaker while holding s.mu.
func (s *Set) changed(e *entry, from, to gobreaker.State) {
	now := s.now()
	if to == gobreaker.StateOpen {
		e.openedAt.Store(now.UnixNano())
	}
	s.mu.Lock()
	if !e.gone {
		s.listOf(e.state).Remove(e.elem)
		s.metrics.BreakerState.WithLabelValues(e.channel, stateLabel(e.state)).Dec()
		e.state = to
		e.changed = now
		e.elem = s.listOf(to).PushFront(e)
		s.metrics.BreakerState.WithLabelValues(e.channel, stateLabel(to)).Inc()
	}
	s.mu.Unlock()

	s.metrics.BreakerChanges.WithLabelValues(e.channel, stateLabel(to)).Inc()
	level := slog.LevelInfo
	attrs := []slog.Attr{
		slog.String("channel", e.channel),
		slog.String("destination", e.key),
		slog.String("from", stateLabel(from)),
		slog.String("to", stateLabel(to)),
	}
	if to == gobreaker.StateOpen {
		level = slog.LevelWarn
		attrs = append(attrs, slog.Duration("open_for", s.cfg.OpenTimeout))
	}
	s.log.LogAttrs(context.Background(), level, "breaker", attrs...)
}

// stateLabel is st's metric label.
func stateLabel(st gobreaker.State) string {
	switch st {
	case gobreaker.StateOpen:
		return labelOpen
	case gobreaker.StateHalfOpen:
		return labelHalfOpen
	default:
		return labelClosed
	}
}

// channelLabel returns the metric label for key: the channel its prefix
// names, else fallback when that is a channel, else "unknown". Labels come
// from this fixed set so a key never reaches a metric.
func channelLabel(key string, fallback herald.Channel) string {
	prefix, _, _ := strings.Cut(key, ":")
	if c := herald.Channel(prefix); c.Valid() {
		return prefix
	}
	if fallback.Valid() {
		return string(fallback)
	}
	return "unknown"
}
