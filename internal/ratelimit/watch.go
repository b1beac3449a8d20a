package ratelimit

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Run keeps this process's view of the buckets current until ctx ends, by
// watching the store for every write (another replica's included); it then
// returns nil. It is optional: without it, a bucket last changed by another
// replica costs a lost write and a read before the request is decided (three
// store calls instead of one), which is the common case behind a load
// balancer spreading a client over replicas. With it, each process receives
// every write of every replica. A failed watch is logged and started again
// after a second.
func (l *Limiter) Run(ctx context.Context) error {
	for {
		err := l.watch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		l.metrics.StoreErrors.WithLabelValues("ratelimit").Inc()
		if ok, skipped := l.storeLog.allow(l.now(), storeLogInterval); ok {
			l.log.Warn("rate-limit watch failed, restarting", "err", err.Error(), "failures_not_logged", skipped)
		}
		t := time.NewTimer(probeInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// watch applies the store's updates until ctx ends or the watch fails.
func (l *Limiter) watch(ctx context.Context) error {
	w, err := l.kv.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ent, ok := <-w.Updates():
			if !ok {
				return errors.New("ratelimit: watch closed")
			}
			if ent != nil {
				l.apply(ent)
			}
		}
	}
}

// apply records a write seen in the store for a bucket this process knows;
// older news than what is known is ignored.
func (l *Limiter) apply(ent jetstream.KeyValueEntry) {
	e := l.entries.peek(ent.Key())
	if e == nil {
		return
	}
	now := l.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if ent.Revision() <= e.rev {
		return // our own write, or older than what is known
	}
	e.rev = ent.Revision()
	st, ok := decodeState(ent.Value())
	if ent.Operation() != jetstream.KeyValuePut || !ok {
		e.known = false // deleted, or unreadable: the next round reads
		return
	}
	e.st, e.known, e.checked = st, true, now
	e.hasLocal, e.localPending = false, 0
}
