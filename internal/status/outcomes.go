package status

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/nats-io/nats.go"
)

// Bounds of Wait.Final's last look at the record.
const finalGetTimeout = 2 * time.Second

// kvOperationHeader marks KV deletes and purges, which carry no record.
const kvOperationHeader = "KV-Operation"

// ErrClosed is returned by Outcomes.Wait after Close.
var ErrClosed = errors.New("status: outcomes closed")

// Outcomes hands jobs' final records (delivered, failed, dead) to the
// requests waiting for them. A process has one: it makes one core NATS
// subscription, on every write of the status bucket ("$KV.<bucket>.>"), and
// keeps a map from job id to the one-slot channel of each request waiting,
// so that a waiting request costs a map entry and a channel, not a
// subscription of its own. A write for a job nobody waits for is dropped
// after a map lookup, without being decoded.
//
// A worker in the same process also hands its outcomes straight over with
// Settle, before it writes the record: the request is answered without the
// record's round trip through NATS, and a delivered job whose outcome a
// request took needs no record at all (Settle reports it). Workers in other
// processes are seen through the subscription. Either way the first final
// record wins.
//
// It is safe for concurrent use.
type Outcomes struct {
	store  *Store
	prefix string // "$KV.<bucket>."
	sub    *nats.Subscription

	mu      sync.Mutex
	waiting map[string][]*Wait
	closed  bool
}

// Outcomes starts the process's listener for final records. It returns once
// the server has registered its subscription. The caller must Close it.
func (s *Store) Outcomes() (*Outcomes, error) {
	if s.nc == nil {
		return nil, errors.New("status: outcomes: store has no NATS connection")
	}
	o := &Outcomes{
		store:   s,
		prefix:  "$KV." + s.kv.Bucket() + ".",
		waiting: make(map[string][]*Wait),
	}
	sub, err := s.nc.Subscribe(o.prefix+">", o.onWrite)
	if err != nil {
		return nil, fmt.Errorf("status: outcomes: subscribe: %w", err)
	}
	// The handler is a map lookup; the limits only matter if the process
	// stalls. A write dropped for a slow consumer is not lost to a waiting
	// request: Final reads the record at its deadline.
	_ = sub.SetPendingLimits(1<<20, 256<<20)
	if err := s.nc.FlushTimeout(watchFlushTimeout); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("status: outcomes: subscribe: %w", err)
	}
	o.sub = sub
	return o, nil
}

// watchFlushTimeout bounds the round trip that makes sure the server has
// the subscription.
const watchFlushTimeout = 5 * time.Second

// onWrite is the subscription's handler: one call per write to the bucket.
func (o *Outcomes) onWrite(msg *nats.Msg) {
	id, ok := strings.CutPrefix(msg.Subject, o.prefix)
	if !ok {
		return
	}
	o.mu.Lock()
	_, waited := o.waiting[id]
	o.mu.Unlock()
	if !waited || msg.Header.Get(kvOperationHeader) != "" {
		return // nobody waits; or a delete or purge, which carries no record
	}
	rec, err := decode(id, msg.Data)
	if err != nil || rec.ID != id {
		return // not ours to judge; the deadline's last look reads it again
	}
	o.Settle(rec)
}

// Settle hands rec to the requests waiting for job rec.ID, if rec's state is
// final; other records are ignored. Each waiting request gets the first final
// record handed over for its job. It reports whether a request took it: one
// that had not given up waiting, and so answers with rec. It never blocks.
func (o *Outcomes) Settle(rec herald.Status) bool {
	if !rec.State.Final() {
		return false
	}
	o.mu.Lock()
	waits := o.waiting[rec.ID]
	delete(o.waiting, rec.ID)
	o.mu.Unlock()
	taken := false
	for _, w := range waits {
		if w.state.CompareAndSwap(waiting, settled) {
			w.ch <- rec // one slot, one send: removed from the map above
			taken = true
		}
	}
	return taken
}

// Waiting returns the number of jobs requests wait for.
func (o *Outcomes) Waiting() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.waiting)
}

// Wait starts waiting for the final record of job id. Call it before the job
// is published, so that an outcome settled at once is not missed. A final
// record written before Wait is not seen (for example when the job was a
// duplicate of one already delivered) until Final's last look at its
// deadline. The caller must call Stop.
func (o *Outcomes) Wait(id string) (*Wait, error) {
	if !herald.ValidID(id) {
		return nil, ErrNotFound
	}
	w := &Wait{o: o, id: id, ch: make(chan herald.Status, 1)}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil, ErrClosed
	}
	o.waiting[id] = append(o.waiting[id], w)
	return w, nil
}

// Close ends the subscription. Requests still waiting see their deadline's
// last look only.
func (o *Outcomes) Close() {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	_ = o.sub.Unsubscribe()
}

// States of a Wait.
const (
	waiting   int32 = iota // nothing handed over yet
	settled                // a record was handed over (to ch)
	abandoned              // Final gave up: no record will be taken
)

// Wait is one request's wait for a job's final record; see Outcomes.Wait.
type Wait struct {
	o     *Outcomes
	id    string
	ch    chan herald.Status
	state atomic.Int32
	once  sync.Once
}

// Final blocks until the job's final record is handed over and returns it.
// When ctx ends first, Final reads the record once more (a write made while
// the connection was down is not handed over) and returns it if it is final,
// else ctx.Err(); the wait then takes no record any more (Settle reports
// false), so that a job whose request was answered without its outcome keeps
// its record. Final must be called at most once.
func (w *Wait) Final(ctx context.Context) (herald.Status, error) {
	select {
	case rec := <-w.ch:
		return rec, nil
	case <-ctx.Done():
	}
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalGetTimeout)
	defer cancel()
	rec, err := w.o.store.Get(gctx, w.id)
	if err == nil && rec.State.Final() {
		w.state.CompareAndSwap(waiting, abandoned)
		return rec, nil
	}
	if !w.state.CompareAndSwap(waiting, abandoned) {
		return <-w.ch, nil // settled meanwhile: the record is in the slot
	}
	return herald.Status{}, ctx.Err()
}

// Stop ends the wait. It is safe to call more than once.
func (w *Wait) Stop() {
	w.once.Do(func() {
		w.o.mu.Lock()
		defer w.o.mu.Unlock()
		waits := w.o.waiting[w.id]
		for i, other := range waits {
			if other == w {
				waits = append(waits[:i], waits[i+1:]...)
				break
			}
		}
		if len(waits) == 0 {
			delete(w.o.waiting, w.id)
		} else {
			w.o.waiting[w.id] = waits
		}
	})
}
