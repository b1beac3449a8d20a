package hung

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/consumer"
	"github.com/heraldrelay/herald/internal/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// ErrShareFull is the Err of the RetryAfterError a Gate returns for a job it
// refused a worker: sends to suspect destinations hold their share of the
// workers already. It matches herald.ErrPaced with errors.Is, so the
// consumer puts the job back without using an attempt.
var ErrShareFull = fmt.Errorf("%w (suspect destinations: sends to destinations not known to answer hold their share of the workers)", herald.ErrPaced)

// trusted is the remembered value of a destination that answers: it was
// answered within Config.After and has no unanswered send within Config.For.
// Any other value is the time (Unix nanoseconds) until which the destination
// is suspect; once past, the destination counts as new until it answers
// again.
const trusted int64 = 0

// Gate caps the workers that sends to suspect destinations hold, so that
// destinations that never answer cannot take the pool from those that do.
// Create it with New and add Middleware to the consumer's middlewares, before
// the pacing middleware. Its methods are safe for concurrent use.
//
// A destination is suspect unless it is known to answer: it is new to the
// Gate (or was forgotten), or a send to it went unanswered (timed out, or
// took longer than Config.After) within Config.For. Sends to suspect
// destinations together hold at most ⌊Share × Workers⌋ workers (places); a
// job for a suspect destination beyond that is given back at once. A
// quarter of the places (at least one, when there are two or more) is kept
// for new destinations: sends to destinations that went unanswered lately
// may not take it, so a new destination finds a place even while a backlog
// of those waits for theirs. A destination that answers a send in time, and
// has no unanswered send within Config.For, is trusted: its sends never wait
// for the Gate.
//
// State is per process, one entry per destination that answered or went
// unanswered: an 8-byte hash of its key (seeded per process, never the key)
// and an 8-byte time, in a bounded least-recently-used map; about 100 bytes
// an entry with the map's overhead, so 10 MB at the default 100,000.
type Gate struct {
	cfg   Config
	limit int // the most places: sends to suspect destinations at once
	// unansweredLimit is the most places for destinations that went
	// unanswered lately; the others are kept for new destinations.
	unansweredLimit int
	seed            maphash.Seed

	// now and wait are the clock and the delay for a refused job; tests
	// replace them.
	now  func() time.Time
	wait func() time.Duration

	mu             sync.Mutex // guards held, heldUnanswered, known, freed and returns
	held           int        // places taken: sends to suspect destinations on their way
	heldUnanswered int        // of them, sends to destinations that went unanswered lately
	known          *simplelru.LRU[uint64, int64]
	// freed is closed (and replaced) when a place is given back: a send
	// refused a place waits on it, up to admitWait, for one to free.
	freed chan struct{}
	// returns spreads the returns of refused jobs (unix nanoseconds of the
	// next free one): at most limit a second, so that however many jobs for
	// hung destinations wait, they come back a few at a time.
	returns int64

	sends      prometheus.Gauge
	refused    map[herald.Channel]prometheus.Counter
	unanswered map[herald.Channel]prometheus.Counter
}

// New validates cfg and returns a Gate with its defaults applied. m records
// the Gate's metrics (nil uses a private registry).
func New(cfg Config, m *metrics.Metrics) (*Gate, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if m == nil {
		m = metrics.New(prometheus.NewRegistry())
	}
	known, err := simplelru.NewLRU[uint64, int64](cfg.MaxDestinations, nil)
	if err != nil {
		return nil, fmt.Errorf("hung: %w", err)
	}
	g := &Gate{
		cfg:             cfg,
		limit:           cfg.limit(),
		unansweredLimit: cfg.limit() - cfg.reserve(),
		seed:            maphash.MakeSeed(),
		now:             time.Now,
		known:           known,
		sends:           m.SuspectSends,
		refused:         map[herald.Channel]prometheus.Counter{},
		unanswered:      map[herald.Channel]prometheus.Counter{},
	}
	g.freed = make(chan struct{})
	g.wait = g.spreadWait
	for _, ch := range []herald.Channel{herald.ChannelDiscord, herald.ChannelTelegram} {
		g.refused[ch] = m.SuspectRefused.WithLabelValues(string(ch))
		g.unanswered[ch] = m.UnansweredSends.WithLabelValues(string(ch))
	}
	return g, nil
}

// admitWait is how long a send refused a place waits in-process for one to
// free before its job is given back. Sends to new destinations usually take
// milliseconds: a burst of jobs for new destinations (a fresh process, a new
// tenant) then waits a moment instead of a round through the queue, and a
// flood of hung ones holds each worker it is refused for no longer than
// this.
const admitWait = 250 * time.Millisecond

// refusedWait is the shortest wait of a refused job; spreadWait hands out
// later ones.
const refusedWait = time.Second

// spreadWait returns how long the next refused job waits: refusedWait or,
// when others were refused just before, its turn after them, Limit a
// second.
func (g *Gate) spreadWait() time.Duration {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	t := max(now.Add(refusedWait).UnixNano(), g.returns)
	g.returns = t + int64(time.Second)/int64(max(g.limit, 1))
	// A little jitter, so that returns from several processes interleave.
	return time.Duration(t-now.UnixNano()) + rand.N(50*time.Millisecond)
}

// Limit is the most sends to suspect destinations on their way at once.
func (g *Gate) Limit() int { return g.limit }

// Middleware returns the consumer middleware that gates each send. dest
// returns a notification's destination key, the one its channel's
// Destination method gives; the Gate keeps only a hash of it. Keys of targets
// that do not parse ("discord:invalid", "telegram:invalid:…") and channels
// other than Discord and Telegram are not gated: they fail without I/O or
// are not the Gate's.
//
// A send to a trusted destination goes on at once. A first send
// (consumer.Delivery.First: a request waiting for its job, which holds no
// worker) to a destination new to the Gate goes on too, without a place,
// and the Gate learns from it as from any other; one to a destination that
// went unanswered lately is refused at once (its job is stored, and gated as
// any other). A send to a suspect one
// takes a place in the share first, and gives it back when next returns
// (also when it panics); with no place free, it waits up to admitWait for
// one, then returns *herald.RetryAfterError{After: refusedWait or later,
// spread at Limit returns a second, Err: ErrShareFull} without calling next. After next returns, the Gate learns from its
// outcome: a timeout, or a send that took Config.After or longer, makes the
// destination suspect for Config.For; any other answer of the destination
// (a success, an error status, a 429, a failed connection) makes a
// destination that is not suspect trusted. Herald's own refusals from
// further in (pacing, breakers, an invalid target) and a ctx that ended
// (shutdown) teach nothing. next's error is returned unchanged.
//
// It panics if dest is nil.
func (g *Gate) Middleware(dest func(herald.Notification) string) consumer.Middleware {
	if dest == nil {
		panic("hung: Middleware: dest is nil")
	}
	return func(next consumer.Handler) consumer.Handler {
		return func(ctx context.Context, d *consumer.Delivery) error {
			ch := d.Notification.Channel
			if ch != herald.ChannelDiscord && ch != herald.ChannelTelegram {
				return next(ctx, d)
			}
			key := dest(d.Notification)
			if key == "" || key == "discord:invalid" || strings.HasPrefix(key, "telegram:invalid:") {
				return next(ctx, d)
			}
			return g.send(ctx, ch, g.hash(key), d, next)
		}
	}
}

// hash is what the Gate keeps of a destination key.
func (g *Gate) hash(key string) uint64 { return maphash.String(g.seed, key) }

// send gates one send to the destination hashed h and calls next.
func (g *Gate) send(ctx context.Context, ch herald.Channel, h uint64, d *consumer.Delivery, next consumer.Handler) (err error) {
	start := g.now()
	var p place
	var ok bool
	var freed <-chan struct{}
	if d.First {
		if !g.admitFirst(h, start) {
			g.refused[ch].Inc()
			return &herald.RetryAfterError{After: refusedWait, Err: ErrShareFull}
		}
		p, ok = noPlace, true
	} else {
		p, ok, freed = g.admit(h, start)
	}
	if !ok {
		// Wait a moment for a place: the sends holding them usually end soon.
		t := time.NewTimer(admitWait)
	wait:
		for !ok {
			select {
			case <-freed:
				p, ok, freed = g.admit(h, g.now())
			case <-t.C:
				break wait
			case <-ctx.Done():
				break wait
			}
		}
		t.Stop()
	}
	if !ok {
		g.refused[ch].Inc()
		return &herald.RetryAfterError{After: g.wait(), Err: ErrShareFull}
	}
	returned := false
	defer func() {
		end := g.now()
		o := outcomeNone
		if returned {
			o = g.outcome(ctx, err, end.Sub(start))
		}
		if o == outcomeUnanswered {
			g.unanswered[ch].Inc()
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		if p != noPlace {
			g.held--
			g.sends.Dec()
			close(g.freed)
			g.freed = make(chan struct{})
		}
		if p == unansweredPlace {
			g.heldUnanswered--
		}
		g.learnLocked(h, o, end)
	}()
	err = next(ctx, d)
	returned = true
	return err
}

// place is what a send admitted by the Gate holds.
type place int

const (
	noPlace         place = iota // a trusted destination's send: no place
	newPlace                     // a place, for a destination new to the Gate
	unansweredPlace              // a place, for a destination that went unanswered lately
)

// admit decides whether a send to the destination hashed h may go at now:
// at once when it is trusted, in a place when it is suspect and a place it
// may take is free, not at all otherwise; then freed is closed when a place
// is next given back.
func (g *Gate) admit(h uint64, now time.Time) (p place, ok bool, freed <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	v, found := g.known.Get(h)
	if found && v == trusted {
		return noPlace, true, nil
	}
	if g.held >= g.limit {
		return noPlace, false, g.freed
	}
	p = newPlace
	if found && v > now.UnixNano() {
		if g.heldUnanswered >= g.unansweredLimit {
			return noPlace, false, g.freed
		}
		p = unansweredPlace
		g.heldUnanswered++
	}
	g.held++
	g.sends.Inc()
	return p, true, nil
}

// admitFirst decides whether a first send to the destination hashed h may go
// at now: unless it went unanswered lately. It takes no place.
func (g *Gate) admitFirst(h uint64, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	v, found := g.known.Get(h)
	return !found || v == trusted || v <= now.UnixNano()
}

// outcome is what a send teaches about its destination.
type outcome int

const (
	outcomeNone       outcome = iota // Herald's own refusal, or shutdown: nothing
	outcomeAnswered                  // the destination answered in time
	outcomeUnanswered                // no answer within Config.After, or a timeout
	outcomeRefused                   // answered in time, "never" (herald.ErrPermanent): forgotten
)

// outcome classifies a send that returned err after took, under ctx.
func (g *Gate) outcome(ctx context.Context, err error, took time.Duration) outcome {
	switch {
	case ctx.Err() != nil:
		return outcomeNone // shutdown: the send was cut short, not unanswered
	case err == nil:
		if took >= g.cfg.After {
			return outcomeUnanswered
		}
		return outcomeAnswered
	case errors.Is(err, herald.ErrPaced), errors.Is(err, herald.ErrCircuitOpen), errors.Is(err, herald.ErrInvalidTarget):
		return outcomeNone // not sent
	case took >= g.cfg.After, errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return outcomeUnanswered
	case errors.Is(err, herald.ErrPermanent):
		// It answered, but "never" (a deleted webhook, a revoked token):
		// no job will be sent to it again, so remembering it would only
		// fill the map with dead destinations.
		return outcomeRefused
	}
	return outcomeAnswered
}

// learnLocked records o for the destination hashed h at now. An unanswered
// send makes it suspect for Config.For from now; an answer makes it trusted
// unless it is still suspect. g.mu is held.
func (g *Gate) learnLocked(h uint64, o outcome, now time.Time) {
	switch o {
	case outcomeUnanswered:
		g.known.Add(h, now.Add(g.cfg.For).UnixNano())
	case outcomeAnswered:
		v, found := g.known.Peek(h)
		if !found || (v != trusted && v <= now.UnixNano()) {
			g.known.Add(h, trusted)
		}
	case outcomeRefused:
		if v, found := g.known.Peek(h); found && (v == trusted || v <= now.UnixNano()) {
			g.known.Remove(h)
		}
	}
}

// isTimeout reports whether err is a timeout (net.Error's Timeout), as the
// channels' transport errors report the HTTP client's own timeout.
func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}
