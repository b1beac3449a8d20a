package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/idempotency"
	"github.com/heraldrelay/herald/internal/metrics"
)

// Idempotency keeps the Idempotency-Keys of requests; *idempotency.Store
// implements it (see that package for the protocol).
type Idempotency interface {
	Claim(ctx context.Context, key, id, fingerprint string) (idempotency.Entry, bool, error)
	Held(ctx context.Context, key string) (idempotency.Entry, bool, error)
	Stored(ctx context.Context, e idempotency.Entry) error
	Release(ctx context.Context, e idempotency.Entry) error
}

var _ Idempotency = (*idempotency.Store)(nil)

// maxIdempotencyKeyLen bounds the Idempotency-Key header.
const maxIdempotencyKeyLen = 200

// idempotencyTimeout bounds each read or write of a key. Like a publish, it
// does not end when the client leaves: a claim must be settled either way.
const idempotencyTimeout = 5 * time.Second

// idemKey is a request's Idempotency-Key as kept: its bucket key, a digest
// of the API secret's scope and the key (so equal keys of two secrets never
// meet, and the key itself is not stored), and the fingerprint of the
// request's content.
type idemKey struct {
	name        string
	fingerprint string
}

// idempotencyKey returns r's Idempotency-Key for sec, nil when r has none,
// or an error for a malformed one.
func idempotencyKey(r *http.Request, sec *secret) (*idemKey, error) {
	keys, present := r.Header["Idempotency-Key"]
	if !present {
		return nil, nil
	}
	if err := checkIdempotencyKey(keys[0], len(keys)); err != nil {
		return nil, err
	}
	return &idemKey{name: herald.IDFromKey(sec.scope, keys[0])}, nil
}

func checkIdempotencyKey(key string, n int) error {
	if n != 1 {
		return reject(errInvalidIdempotencyKey, "send one Idempotency-Key header, not %d", n)
	}
	if len(key) == 0 || len(key) > maxIdempotencyKeyLen {
		return reject(errInvalidIdempotencyKey, "Idempotency-Key must be 1-%d characters", maxIdempotencyKeyLen)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x20 || c > 0x7e {
			return reject(errInvalidIdempotencyKey, "Idempotency-Key must be printable ASCII")
		}
	}
	return nil
}

// fingerprint identifies a request's content: the route and the decoded
// request, re-encoded, so that a retry whose JSON differs only in spacing
// or field order is the same request. Sealed credentials are compared as
// sent: a retry must send the same sealed strings, not seal again.
func fingerprint(route string, req any) string {
	b, err := json.Marshal(req)
	if err != nil { // our own request types always marshal
		panic(fmt.Sprintf("ingest: fingerprint: %v", err))
	}
	h := sha256.New()
	h.Write([]byte(route))
	h.Write([]byte{0})
	h.Write(b)
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:16])
}

// keyClaim is what a request with an Idempotency-Key found.
type keyClaim struct {
	entry idempotency.Entry
	// claimed: this request is the key's first; its job is to be stored.
	claimed bool
	// publish: the job is to be published under entry.ID, by this request
	// as the key's first, or again because the key's first request left
	// its entry pending and its job is nowhere to be found.
	publish bool
}

// claimKey claims k for sec's job, or finds the request that did: then
// job.ID becomes that request's job's id. A key used before with another
// request is refused (errIdempotencyKeyReused); a key whose first request's
// job is stored needs nothing published.
//
// A new key is counted against sec's share of the kept keys
// (Config.MaxKeysPerSecret): past it the request is refused
// (errKeysExhausted, with when the share frees), and so it is when the
// bucket is full (errKeysFull); nothing is stored either way. A key sec
// already holds is a retry, answered as ever whatever its share.
//
// A pending entry belongs to a request still storing its job, or to one
// that died or lost NATS before it could mark it: if the job can be found
// (in the jobs stream, or by its status record), it is stored; if not, this
// request publishes it under the same id and Nats-Msg-Id, so that of it and
// a first request still at work the stream keeps one (within the duplicate
// window, which any request still at work is well inside).
func (s *Server) claimKey(ctx context.Context, sec *secret, k *idemKey, job *herald.Job) (keyClaim, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), idempotencyTimeout)
	defer cancel()
	slot, ok, wait := sec.keys.take(s.now(), s.cfg.IdempotencyWindow, s.cfg.MaxKeysPerSecret)
	var e idempotency.Entry
	var claimed, held bool
	var err error
	if ok {
		e, claimed, err = s.idem.Claim(ctx, k.name, job.ID, k.fingerprint)
		if !claimed {
			sec.keys.giveBack(slot) // held already, or not kept
		}
		var full *idempotency.FullError
		if errors.As(err, &full) {
			s.metrics.KeysRefused.WithLabelValues(metrics.KeysFull).Inc()
			return keyClaim{}, &retryLater{error: errKeysFull, after: full.RetryAfter}
		}
	} else {
		// The share is spent: only a key held already may go on.
		e, held, err = s.idem.Held(ctx, k.name)
		if err == nil && !held {
			s.metrics.KeysRefused.WithLabelValues(metrics.KeysShareSpent).Inc()
			return keyClaim{}, &retryLater{after: wait, error: reject(errKeysExhausted,
				"this API secret holds its share of Idempotency-Keys (%d per %s); nothing was queued. Retry after Retry-After, or send requests without a key",
				s.cfg.MaxKeysPerSecret, s.cfg.IdempotencyWindow)}
		}
	}
	if err != nil {
		return keyClaim{}, fmt.Errorf("%w: %w", errUnavailable, err)
	}
	if claimed {
		return keyClaim{entry: e, claimed: true, publish: true}, nil
	}
	if e.Fingerprint != k.fingerprint {
		return keyClaim{}, reject(errIdempotencyKeyReused,
			"this Idempotency-Key was used with another request; send a new key with a new request")
	}
	job.ID = e.ID
	if e.Stored {
		return keyClaim{entry: e}, nil
	}
	_, err = s.status.Lookup(ctx, e.ID)
	switch {
	case err == nil:
		s.settleKey(ctx, keyClaim{entry: e})
		return keyClaim{entry: e}, nil
	case isNotFound(err):
		return keyClaim{entry: e, publish: true}, nil
	}
	return keyClaim{}, fmt.Errorf("%w: look up the job of an Idempotency-Key: %w", errUnavailable, err)
}

// settleKey marks c's entry stored; a failure only leaves it pending, which
// the next request with the key resolves.
func (s *Server) settleKey(ctx context.Context, c keyClaim) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), idempotencyTimeout)
	defer cancel()
	if err := s.idem.Stored(ctx, c.entry); err != nil && !errors.Is(err, idempotency.ErrChanged) {
		s.log.WarnContext(ctx, "cannot mark an Idempotency-Key's job stored; the next request with the key will look it up", "id", c.entry.ID, "err", err.Error())
	}
}

// releaseKey frees the key c claimed, whose job could not be stored, so
// that the client's retry claims it afresh; a failure leaves it pending,
// which the retry resolves (it finds no job and publishes).
func (s *Server) releaseKey(ctx context.Context, c keyClaim) {
	if !c.claimed {
		return // the first request's claim: it may still store its job
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), idempotencyTimeout)
	defer cancel()
	if err := s.idem.Release(ctx, c.entry); err != nil && !errors.Is(err, idempotency.ErrChanged) {
		s.log.WarnContext(ctx, "cannot release the Idempotency-Key of a job not stored; the next request with the key will look it up", "id", c.entry.ID, "err", err.Error())
	}
}
