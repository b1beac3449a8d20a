package dlq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrNotFound is returned by Get when no dead letter has the id.
var ErrNotFound = errors.New("dead letter not found")

// ErrNoStream is wrapped by Store errors when the dead-letter stream does not
// exist: Herald has not run yet on this NATS, or this is the wrong NATS.
var ErrNoStream = errors.New("dead-letter stream " + herald.DeadLetterStream + " not found")

// StatusWriter records job status; status.Store satisfies it. Replay uses it
// to set a replayed job's record back to queued.
type StatusWriter interface {
	Put(ctx context.Context, rec herald.Status) error
}

// Store is the operator's view of the dead letters: list, get, replay,
// purge. It reads the stream with ordered consumers (or direct gets by
// sequence), which is fine for tens of thousands of letters; Filter.Limit
// pages. It never opens a credential. It is safe for concurrent use.
type Store struct {
	js     jetstream.JetStream
	status StatusWriter
	now    func() time.Time
	// maxFailuresInRow is maxConsecutiveFailures; tests lower it.
	maxFailuresInRow int
}

// Option configures a Store.
type Option func(*Store)

// WithStatus makes Replay reset each replayed job's status record to queued
// with no attempts (and back to dead if the republish fails). Without it,
// status records are left alone.
func WithStatus(w StatusWriter) Option { return func(s *Store) { s.status = w } }

// NewStore returns a Store over js, whose connection the caller owns.
func NewStore(js jetstream.JetStream, opts ...Option) *Store {
	s := &Store{js: js, now: time.Now, maxFailuresInRow: maxConsecutiveFailures}
	for _, o := range opts {
		o(s)
	}
	return s
}

// fetchBatch is how many letters one scan request returns.
const fetchBatch = 256

// stream returns the dead-letter stream; its CachedInfo is fresh.
func (s *Store) stream(ctx context.Context) (jetstream.Stream, error) {
	st, err := s.js.Stream(ctx, herald.DeadLetterStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("dlq: %w", ErrNoStream)
	}
	if err != nil {
		return nil, fmt.Errorf("dlq: stream %s: %w", herald.DeadLetterStream, err)
	}
	return st, nil
}

// List returns the letters f matches, oldest first, at most f.Limit when it
// is set. An empty filter lists every letter.
func (s *Store) List(ctx context.Context, f Filter) ([]Letter, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	st, err := s.stream(ctx)
	if err != nil {
		return nil, err
	}
	var out []Letter
	err = s.scan(ctx, st, f, func(l Letter) { out = append(out, l) })
	return out, err
}

// Get returns one letter: id is "seq:<stream sequence>" or a job id. A job
// dead-lettered more than once (replayed and dead again) has one letter per
// death; Get returns the latest. It returns an error wrapping ErrNotFound
// when there is none.
func (s *Store) Get(ctx context.Context, id string) (Letter, error) {
	if _, isSeq := parseSeqID(id); !isSeq && !herald.ValidID(id) {
		return Letter{}, fmt.Errorf("dlq: get: %w", ErrNotFound)
	}
	st, err := s.stream(ctx)
	if err != nil {
		return Letter{}, err
	}
	var (
		found Letter
		ok    bool
	)
	err = s.scan(ctx, st, Filter{IDs: []string{id}}, func(l Letter) { found, ok = l, true })
	if err != nil {
		return Letter{}, err
	}
	if !ok {
		return Letter{}, fmt.Errorf("dlq: get %s: %w", id, ErrNotFound)
	}
	return found, nil
}

// Purge deletes the letters f matches and returns how many it deleted. It
// refuses a filter with no condition unless f.All (ErrEmptyFilter). On an
// error it returns the number deleted so far.
func (s *Store) Purge(ctx context.Context, f Filter) (int, error) {
	if f.Empty() {
		return 0, fmt.Errorf("dlq: purge: %w", ErrEmptyFilter)
	}
	if err := f.Validate(); err != nil {
		return 0, err
	}
	st, err := s.stream(ctx)
	if err != nil {
		return 0, err
	}
	var seqs []uint64
	if err := s.scan(ctx, st, f, func(l Letter) { seqs = append(seqs, l.Seq) }); err != nil {
		return 0, err
	}
	n := 0
	for _, seq := range seqs {
		if err := st.DeleteMsg(ctx, seq); err != nil {
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue // gone meanwhile (replayed, expired, purged elsewhere)
			}
			return n, fmt.Errorf("dlq: purge letter seq %d: %w", seq, err)
		}
		n++
	}
	return n, nil
}

// scan calls fn with every letter f matches, in stream order, up to f.Limit.
// It reads the stream as it is when scan starts: letters stored meanwhile are
// left out.
func (s *Store) scan(ctx context.Context, st jetstream.Stream, f Filter, fn func(Letter)) error {
	m := newMatcher(f)
	n := 0
	emit := func(l Letter) bool {
		if !f.Until.IsZero() && !l.DeadAt.Before(f.Until) && !m.onlySeqs() {
			// Letters are stored in time order: none after this one
			// can match.
			return false
		}
		if !m.match(&l) {
			return true
		}
		fn(l)
		n++
		return f.Limit == 0 || n < f.Limit
	}

	if m.onlySeqs() {
		seqs := make([]uint64, 0, len(m.seqs))
		for seq := range m.seqs {
			seqs = append(seqs, seq)
		}
		slices.Sort(seqs)
		for _, seq := range seqs {
			raw, err := st.GetMsg(ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("dlq: get letter seq %d: %w", seq, err)
			}
			if !emit(parseLetter(raw.Sequence, raw.Subject, raw.Header, raw.Data, raw.Time)) {
				return nil
			}
		}
		return nil
	}

	state := st.CachedInfo().State
	if state.Msgs == 0 {
		return nil
	}
	last := state.LastSeq
	cfg := jetstream.OrderedConsumerConfig{
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: time.Minute,
	}
	if f.Channel != "" {
		cfg.FilterSubjects = []string{herald.DeadLetterSubject(f.Channel)}
	}
	if !f.Since.IsZero() {
		since := f.Since
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &since
	}
	cons, err := st.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("dlq: read stream: %w", err)
	}
	defer func() {
		// The server would drop it after InactiveThreshold anyway.
		if info := cons.CachedInfo(); info != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_ = st.DeleteConsumer(dctx, info.Name)
			cancel()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("dlq: read stream: %w", err)
		}
		batch, err := cons.FetchNoWait(fetchBatch)
		if err != nil {
			return fmt.Errorf("dlq: read stream: %w", err)
		}
		got := 0
		more := true
		for msg := range batch.Messages() {
			got++
			if !more {
				continue // drain the batch
			}
			meta, err := msg.Metadata()
			if err != nil {
				return fmt.Errorf("dlq: read stream: %w", err)
			}
			seq := meta.Sequence.Stream
			if seq > last {
				more = false
				continue
			}
			if !emit(parseLetter(seq, msg.Subject(), msg.Headers(), msg.Data(), meta.Timestamp)) || seq == last || meta.NumPending == 0 {
				more = false
			}
		}
		if err := batch.Error(); err != nil {
			return fmt.Errorf("dlq: read stream: %w", err)
		}
		if got == 0 || !more {
			return nil
		}
	}
}
