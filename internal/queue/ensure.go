package queue

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Bounds of Ensure's attempts.
const (
	// EnsureAttemptTimeout bounds one create-or-update request.
	EnsureAttemptTimeout = 2 * time.Second
	// ensureMaxBackoff caps the pause between attempts.
	ensureMaxBackoff = time.Second
)

// Ensure runs create, an idempotent create-or-update of a stream or bucket,
// until it succeeds, fails otherwise than by timing out, or ctx ends; each
// attempt gets at most EnsureAttemptTimeout.
//
// On a fresh cluster, processes that start together (compose's ingest and
// workers) create the same replicated streams at the same moment, and the
// server sometimes leaves some of those requests unanswered: the stream gets
// created, but the requester waits out its whole timeout. A new request is
// answered at once, so Ensure asks again instead of waiting.
func Ensure[T any](ctx context.Context, create func(context.Context) (T, error)) (T, error) {
	backoff := 100 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, EnsureAttemptTimeout)
		v, err := create(actx)
		cancel()
		if err == nil || ctx.Err() != nil || !timedOut(err) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, ensureMaxBackoff)
	}
}

// timedOut reports whether err is a request that got no answer in time.
func timedOut(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)
}

// EnsureKeyValue creates or updates the key-value bucket cfg describes, as
// js.CreateOrUpdateKeyValue does, through Ensure.
func EnsureKeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return Ensure(ctx, func(ctx context.Context) (jetstream.KeyValue, error) {
		return js.CreateOrUpdateKeyValue(ctx, cfg)
	})
}
