package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldrelay/herald/internal/metrics"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Timing of the store work.
const (
	// storeTimeout bounds one round of store work (reads, writes and retries)
	// deciding a batch of requests; past it the store counts as unreachable.
	// A JetStream write takes well under a millisecond on a healthy server.
	storeTimeout = time.Second
	// probeInterval is how long requests are decided without the store after
	// it failed, before the next request tries it again: an outage costs one
	// failed call per interval, not one per request.
	probeInterval = time.Second
	// refusalFreshness is how recent the known state of a bucket must be for
	// a refusal to be decided from it alone. Other replicas only ever take
	// tokens, so a bucket known empty is empty; only Reset adds tokens, and
	// another replica's Reset is seen at most this late.
	refusalFreshness = time.Second
	// maxAttempts bounds the compare-and-swap rounds of one batch. Each lost
	// round means another replica took tokens, so the store is alive.
	maxAttempts = 32
	// conflictBackoff scales the random pause after the second and later
	// lost compare-and-swap of a round, which keeps replicas hammering one
	// key from staying in lockstep. (A first loss is a stale cache, retried
	// at once.)
	conflictBackoff = 50 * time.Microsecond
	// UnavailableRetryAfter is the Retry-After of requests refused because
	// the store is unreachable under OnStoreErrorDeny.
	UnavailableRetryAfter = 5 * time.Second
	// storeLogInterval spaces the log lines about store failures.
	storeLogInterval = 10 * time.Second
)

// Errors of Take and Reset.
var (
	// ErrUnavailable is returned by Take when the store cannot be reached
	// and Config.OnStoreError is OnStoreErrorDeny: the request is refused
	// although the client may be within its limit (answer 503).
	ErrUnavailable = errors.New("ratelimit: counter store unavailable")
	// ErrInvalid is returned for a group or key that cannot name a bucket.
	ErrInvalid = errors.New("ratelimit: invalid group or key")
	// errContention: every compare-and-swap round of a batch was lost.
	errContention = errors.New("ratelimit: too many concurrent updates of one key")
)

// Decision is the outcome of Take.
type Decision struct {
	// Allowed is true when the request got a token.
	Allowed bool
	// Remaining is the whole tokens left after this request.
	Remaining int
	// RetryAfter, when refused, is how long until a token is back (or
	// UnavailableRetryAfter when the store is unavailable).
	RetryAfter time.Duration
	// Fallback is true when the shared store could not be used and the
	// decision is this process's alone (Config.OnStoreError).
	Fallback bool
}

// Limiter keeps a token bucket per client and route group in a JetStream
// key-value bucket, shared by every replica. It is safe for concurrent use.
//
// Each bucket's value and revision are cached, so a request costs one
// compare-and-swap write (Update) in the common case; a write lost to another
// replica costs a read and another try. Concurrent requests for one bucket in
// one process share a single write, and a refusal from a bucket known empty
// costs no store call at all. Any number of replicas therefore admit exactly
// the bucket's tokens between them.
type Limiter struct {
	cfg     Config
	kv      store
	metrics *metrics.Metrics
	log     *slog.Logger
	now     func() time.Time
	timeout time.Duration // storeTimeout; tests on a loaded machine raise it
	entries *lru[entry]
	reports *lru[report]
	// downUntil (unix ns) is when the store may be tried again after a
	// failure; until then requests are decided locally.
	downUntil atomic.Int64
	storeLog  throttle
}

// entry is this process's view of one bucket, guarded by mu.
type entry struct {
	mu sync.Mutex
	// st and rev are the bucket as last read from or written to the store
	// (rev 0: absent), at checked; valid when known.
	st      state
	rev     uint64
	known   bool
	checked time.Time
	// gen changes on Reset, so that a write decided before it does not
	// overwrite what is known after it.
	gen uint64
	// busy is true while a request leads a store round for this bucket;
	// requests arriving meanwhile queue for the next round.
	busy  bool
	queue []*ticket
	// pending is the tokens the round in flight asks the store for.
	pending int
	// debt is the tokens admitted locally (store unreachable) that the store
	// has not been charged yet; the next write charges them.
	debt int
	// local is the bucket used while the store is unreachable: the known
	// state less debt and pending when it was set up (localPending of it
	// for the round then in flight).
	local        state
	hasLocal     bool
	localPending int
}

// ticket is one request waiting for its decision.
type ticket struct {
	done chan struct{} // closed when decided, or when handed the lead
	lead bool          // the request leads the next store round
	dec  Decision
	err  error
}

// New returns a Limiter over kv, the BucketName bucket (see EnsureBucket).
// m records refusals, fallbacks and store errors (nil: a private registry);
// log receives store failures and clients refused unusually often (nil:
// discarded). The caller owns kv.
func New(cfg Config, kv jetstream.KeyValue, m *metrics.Metrics, log *slog.Logger) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if kv == nil {
		return nil, errors.New("ratelimit: a key-value bucket is required")
	}
	if m == nil {
		m = metrics.New(prometheus.NewRegistry())
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	return &Limiter{
		cfg:     cfg,
		kv:      kv,
		metrics: m,
		log:     log,
		now:     time.Now,
		timeout: storeTimeout,
		entries: newLRU[entry](cfg.CacheSize),
		reports: newLRU[report](cfg.CacheSize),
	}, nil
}

// Take takes a token from the bucket of key (a Client.Key) in group, and
// says whether the request may proceed. Groups without an override in
// Config.Groups use Config.Default.
//
// When the store cannot be reached, the decision follows Config.OnStoreError
// and has Fallback set: OnStoreErrorAllow decides with a bucket local to this
// process (the error is nil); OnStoreErrorDeny refuses with an error wrapping
// ErrUnavailable. The same holds, rarely, for a bucket so contended across
// replicas that maxAttempts compare-and-swap rounds in a row are lost. Other
// errors: ErrInvalid, or ctx's when it ends before the decision (a request
// already in a store round is decided regardless, within about a second).
func (l *Limiter) Take(ctx context.Context, group, key string) (Decision, error) {
	if !validGroup(group) || !validKey(key) {
		return Decision{}, ErrInvalid
	}
	if err := ctx.Err(); err != nil {
		return Decision{}, err
	}
	b := l.bucket(group)
	k := storeKey(group, key)
	e := l.entries.get(k)
	now := l.now()

	e.mu.Lock()
	if e.known && now.Sub(e.checked) < refusalFreshness {
		if cur := e.st.refill(b, now); cur.whole() == 0 {
			e.mu.Unlock()
			return l.refused(group, b, cur), nil
		}
	}
	if l.storeDown(now) {
		d, err := l.fallback(e, group, b, now)
		e.mu.Unlock()
		return d, err
	}
	t := &ticket{done: make(chan struct{})}
	e.queue = append(e.queue, t)
	if e.busy {
		e.mu.Unlock()
		select {
		case <-t.done:
		case <-ctx.Done():
			e.mu.Lock()
			if i := slices.Index(e.queue, t); i >= 0 && !t.lead {
				e.queue = slices.Delete(e.queue, i, i+1)
				e.mu.Unlock()
				return Decision{}, ctx.Err()
			}
			// Already in a round (bounded by storeTimeout), or handed the
			// lead, which must be taken up.
			e.mu.Unlock()
			<-t.done
		}
		if !t.lead {
			return t.dec, t.err
		}
		e.mu.Lock()
	} else {
		t.lead = true
		e.busy = true
	}
	l.lead(e, k, group, b)
	return t.dec, t.err
}

// lead decides every request queued on e in one store round. e.mu is held on
// entry and released on return. Requests that queued during the round are
// handed to the first of them, which leads the next round.
func (l *Limiter) lead(e *entry, k, group string, b Bucket) {
	batch := e.queue
	e.queue = nil
	e.mu.Unlock()

	granted, after, err := l.commit(e, k, b, len(batch))

	e.mu.Lock()
	e.pending = 0
	if err != nil && e.hasLocal {
		// The local bucket counted this round as taken; it was not.
		e.local.tokens = min(e.local.tokens+float64(e.localPending), float64(b.MaxTokens))
	}
	e.localPending = 0
	for i, t := range batch {
		switch {
		case err != nil:
			t.dec, t.err = l.fallback(e, group, b, l.now())
		case i < granted:
			t.dec = Decision{Allowed: true, Remaining: after.whole() + granted - 1 - i}
		default:
			t.dec = l.refused(group, b, after)
		}
	}
	if len(e.queue) > 0 {
		next := e.queue[0]
		next.lead = true
		close(next.done)
	} else {
		e.busy = false
	}
	e.mu.Unlock()
	for _, t := range batch {
		if !t.lead {
			close(t.done)
		}
	}
}

// commit takes up to n tokens from bucket k in the store, with
// compare-and-swap, and returns how many it took and the bucket after. It
// also charges the tokens admitted locally while the store was unreachable
// (the debt), up to what the bucket holds. Taking and charging nothing
// writes nothing.
func (l *Limiter) commit(e *entry, k string, b Bucket, n int) (int, state, error) {
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	e.mu.Lock()
	st, rev, known, checked, gen, debt := e.st, e.rev, e.known, e.checked, e.gen, e.debt
	e.pending = n
	e.mu.Unlock()

	// A bucket this process does not know is most often new: assume it is
	// absent and write it with revision 0 (create if absent). Guessing wrong
	// costs a lost write and a read.
	guess := !known
	for attempt := 1; ; attempt++ {
		now := l.now()
		if !known && guess {
			st, rev, known, checked, guess = fullState(b, now), 0, true, now, false
		} else if !known {
			var err error
			if st, rev, err = l.read(ctx, k, b, now); err != nil {
				return 0, state{}, l.storeFailed("read", err)
			}
			known, checked = true, now
			l.remember(e, gen, st, rev, now, 0)
		}
		cur := st.refill(b, now)
		cur.tokens = max(cur.tokens-float64(debt), 0)
		take := min(n, cur.whole())
		if take == 0 {
			if now.Sub(checked) >= refusalFreshness {
				// Refuse on recent news only: a Reset may have refilled it.
				known = false
				continue
			}
			if debt == 0 {
				return 0, cur, nil
			}
		}
		next := cur
		next.tokens -= float64(take)
		// Revision 0 expects no value: Update then creates the key, in one
		// call even when it exists (Create would read it back first).
		newRev, err := l.kv.Update(ctx, k, next.encode(), rev)
		if err == nil {
			l.remember(e, gen, next, newRev, now, debt)
			return take, next, nil
		}
		if !isConflict(err) {
			// The write may have landed nonetheless; if so, the batch is
			// charged twice (by the store and by the local bucket).
			return 0, state{}, l.storeFailed("write", err)
		}
		if attempt >= maxAttempts {
			if ok, skipped := l.storeLog.allow(now, storeLogInterval); ok {
				l.log.Warn("rate-limit counter contended, deciding locally",
					"attempts", attempt, "policy", l.cfg.OnStoreError, "failures_not_logged", skipped)
			}
			return 0, state{}, errContention
		}
		known = false
		// Run may have seen the write that beat this one: then no read.
		e.mu.Lock()
		if e.gen == gen && e.known && e.rev > rev {
			st, rev, known, checked = e.st, e.rev, true, e.checked
		}
		e.mu.Unlock()
		if attempt == 1 {
			// A stale cache or a wrong guess: retry at once.
			continue
		}
		pause := time.NewTimer(rand.N(time.Duration(attempt-1) * conflictBackoff))
		select {
		case <-pause.C:
		case <-ctx.Done():
			pause.Stop()
			return 0, state{}, l.storeFailed("write", ctx.Err())
		}
	}
}

// read returns bucket k as stored, or a full bucket when absent.
func (l *Limiter) read(ctx context.Context, k string, b Bucket, now time.Time) (state, uint64, error) {
	ent, err := l.kv.Get(ctx, k)
	switch {
	case err == nil:
		st, ok := decodeState(ent.Value())
		if !ok {
			// Not written by this package's encode; the write replaces it.
			st = fullState(b, now)
		}
		return st, ent.Revision(), nil
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return fullState(b, now), 0, nil
	default:
		return state{}, 0, err
	}
}

// remember records what the store holds for e (rev 0: nothing), which
// includes charged of e's debt, unless a Reset intervened. The local bucket
// is dropped: the next one starts from this state. A state older than one
// already known (seen by Run meanwhile) is not recorded.
func (l *Limiter) remember(e *entry, gen uint64, st state, rev uint64, now time.Time, charged int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gen != gen {
		return
	}
	e.debt = max(e.debt-charged, 0)
	e.hasLocal, e.localPending = false, 0
	if e.known && rev != 0 && rev < e.rev {
		return
	}
	e.st, e.rev, e.known, e.checked = st, rev, true, now
}

// refused counts and returns a refusal by bucket cur.
func (l *Limiter) refused(group string, b Bucket, cur state) Decision {
	l.metrics.Limited.WithLabelValues(groupLabel(group)).Inc()
	return Decision{RetryAfter: cur.wait(b)}
}

// fallback decides a request without the store, per Config.OnStoreError.
// e.mu is held. The local bucket starts from the last known state less what
// was admitted since (locally, or by a round still in flight), so a client
// known to be over its limit stays there; what it admits is charged to the
// store once it answers again. Fallbacks are counted by outcome.
func (l *Limiter) fallback(e *entry, group string, b Bucket, now time.Time) (Decision, error) {
	if l.cfg.OnStoreError == OnStoreErrorDeny {
		l.metrics.LimiterFallbacks.WithLabelValues("deny").Inc()
		return Decision{RetryAfter: UnavailableRetryAfter, Fallback: true}, ErrUnavailable
	}
	if !e.hasLocal {
		base := fullState(b, now)
		if e.known {
			base = e.st.refill(b, now)
		}
		base.tokens = max(base.tokens-float64(e.debt+e.pending), 0)
		e.local, e.hasLocal, e.localPending = base, true, e.pending
	}
	cur := e.local.refill(b, now)
	if cur.whole() == 0 {
		e.local = cur
		l.metrics.LimiterFallbacks.WithLabelValues("deny").Inc()
		d := l.refused(group, b, cur)
		d.Fallback = true
		return d, nil
	}
	cur.tokens--
	e.local = cur
	// Debt beyond a full bucket could never be charged.
	e.debt = min(e.debt+1, b.MaxTokens)
	l.metrics.LimiterFallbacks.WithLabelValues("allow").Inc()
	return Decision{Allowed: true, Remaining: cur.whole(), Fallback: true}, nil
}

// storeDown reports whether the store failed within probeInterval.
func (l *Limiter) storeDown(now time.Time) bool {
	return now.UnixNano() < l.downUntil.Load()
}

// storeFailed records a failed store call and returns it as an error.
func (l *Limiter) storeFailed(op string, err error) error {
	now := l.now()
	l.downUntil.Store(now.Add(probeInterval).UnixNano())
	l.metrics.StoreErrors.WithLabelValues("ratelimit").Inc()
	if ok, skipped := l.storeLog.allow(now, storeLogInterval); ok {
		// NATS errors name subjects and codes, never a client's address.
		l.log.Warn("rate-limit store unreachable, deciding without it",
			"op", op, "policy", l.cfg.OnStoreError, "err", err.Error(), "failures_not_logged", skipped)
	}
	return fmt.Errorf("ratelimit: %s: %w", op, err)
}

// Reset refills the bucket of key in group, for every replica: the next Take
// finds it full. The challenge calls it once a client solved a challenge.
// Replicas that knew the bucket empty may refuse it for up to a second more,
// unless they Run.
func (l *Limiter) Reset(ctx context.Context, group, key string) error {
	if !validGroup(group) || !validKey(key) {
		return ErrInvalid
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.timeout)
		defer cancel()
	}
	k := storeKey(group, key)
	e := l.entries.peek(k)
	var gen uint64
	if e != nil {
		e.mu.Lock()
		e.gen++
		gen = e.gen
		e.known, e.hasLocal, e.debt = false, false, 0
		e.mu.Unlock()
	}
	now := l.now()
	full := fullState(l.bucket(group), now)
	rev, err := l.kv.Put(ctx, k, full.encode())
	if err != nil {
		l.metrics.StoreErrors.WithLabelValues("ratelimit").Inc()
		return fmt.Errorf("ratelimit: reset: %w", err)
	}
	if e != nil {
		e.mu.Lock()
		if e.gen == gen && rev > e.rev {
			e.st, e.rev, e.known, e.checked = full, rev, true, now
		}
		e.mu.Unlock()
	}
	return nil
}

// bucket returns group's bucket.
func (l *Limiter) bucket(group string) Bucket {
	if b, ok := l.cfg.Groups[group]; ok {
		return b
	}
	return l.cfg.Default
}

// groupLabel keeps metric labels to the known groups.
func groupLabel(g string) string {
	if knownGroup(g) {
		return g
	}
	return "other"
}

// throttle lets an event through at most once per interval and counts the
// ones it held back.
type throttle struct {
	mu      sync.Mutex
	last    time.Time
	skipped int
}

func (t *throttle) allow(now time.Time, every time.Duration) (bool, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.last.IsZero() && now.Sub(t.last) < every {
		t.skipped++
		return false, 0
	}
	skipped := t.skipped
	t.last, t.skipped = now, 0
	return true, skipped
}
