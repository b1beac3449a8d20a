package status

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/nats-io/nats.go"
)

// Bounds of Watch's round trip and of Final's last look.
const (
	watchFlushTimeout = 5 * time.Second
	finalGetTimeout   = 2 * time.Second
)

// kvOperationHeader marks KV deletes and purges, which carry no record.
const kvOperationHeader = "KV-Operation"

// Watch follows one job's status record as it is written. Create it with
// Store.Watch, wait with Final, and always Stop it.
type Watch struct {
	store *Store
	id    string
	sub   *nats.Subscription
	once  sync.Once
}

// Watch starts following the record of job id. It subscribes (core NATS, no
// JetStream consumer, so it is cheap) to the subject the bucket's writes for
// id are published on, "$KV.<bucket>.<id>", and returns once the server has
// registered the subscription: a job published after Watch returns cannot
// change state unseen. Subscribe before publishing the job.
//
// A write made before Watch returned is not seen (for example when the job was
// a duplicate of one already delivered): check with Get first in that case.
// The caller must call Stop.
func (s *Store) Watch(id string) (*Watch, error) {
	if !herald.ValidID(id) {
		return nil, ErrNotFound
	}
	if s.nc == nil {
		return nil, errors.New("status: watch: store has no NATS connection")
	}
	sub, err := s.nc.SubscribeSync("$KV." + s.kv.Bucket() + "." + id)
	if err != nil {
		return nil, fmt.Errorf("status: watch %s: %w", id, err)
	}
	// The SUB is only buffered so far; a round trip makes sure the server has
	// it before the caller publishes.
	if err := s.nc.FlushTimeout(watchFlushTimeout); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("status: watch %s: %w", id, err)
	}
	return &Watch{store: s, id: id, sub: sub}, nil
}

// Final blocks until a record with a final state (delivered, failed, dead)
// is written and returns it; records of other states are skipped. When ctx
// ends first, Final reads the record once more (writes made while the
// connection was down are not delivered to a watch) and returns it if it is
// final, else ctx.Err(). Final must not be called after Stop, nor from two
// goroutines at once.
func (w *Watch) Final(ctx context.Context) (herald.Status, error) {
	for {
		msg, err := w.sub.NextMsgWithContext(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return w.lastLook(ctx)
			}
			return herald.Status{}, fmt.Errorf("status: watch %s: %w", w.id, err)
		}
		if msg.Header.Get(kvOperationHeader) != "" {
			continue // delete or purge: no record
		}
		rec, err := decode(w.id, msg.Data)
		if err != nil {
			continue // not ours to judge; the next write may be fine
		}
		if rec.State.Final() {
			return rec, nil
		}
	}
}

func (w *Watch) lastLook(ctx context.Context) (herald.Status, error) {
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalGetTimeout)
	defer cancel()
	rec, err := w.store.Get(gctx, w.id)
	if err == nil && rec.State.Final() {
		return rec, nil
	}
	return herald.Status{}, ctx.Err()
}

// Stop ends the watch. It is safe to call more than once.
func (w *Watch) Stop() {
	w.once.Do(func() { _ = w.sub.Unsubscribe() })
}
