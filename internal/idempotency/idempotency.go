// Package idempotency keeps the ingest's Idempotency-Keys in a JetStream
// key-value bucket for as long as a client may retry (the bucket's TTL, 24 h
// by default, as Stripe keeps them), independently of the jobs stream's
// Nats-Msg-Id duplicate window, which is minutes.
//
// A key maps to the id of the job its first request created. Its entry is
// created with the bucket's atomic Create, so of any number of requests with
// one key exactly one claims it; the others read the entry. The entry is
// pending until the claiming request's job is stored, and then marked
// stored; a request whose job could not be stored releases it. A pending
// entry that stays pending (its request died between the claim and the
// mark, or could not reach NATS to mark or release it) is resolved by the
// next request with the key (see the ingest).
package idempotency

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldrelay/herald/internal/queue"
)

// Bucket is the key-value bucket of the keys.
const Bucket = "herald_idempotency"

// DefaultWindow is how long a key is kept when EnsureBucket is given 0: a
// day, as Stripe keeps its idempotency keys.
const DefaultWindow = 24 * time.Hour

// MinWindow is the shortest window EnsureBucket accepts.
const MinWindow = time.Second

// ErrChanged is returned by Stored and Release when the entry is no longer
// the one the caller read: another request marked or released it first.
var ErrChanged = errors.New("idempotency: entry changed since it was read")

// EnsureBucket creates Bucket, or updates it if it exists: entries expire
// window after their last write (DefaultWindow when 0), one revision kept,
// replicas copies (queue.DefaultReplicas when 0), file storage. It is
// idempotent.
func EnsureBucket(ctx context.Context, js jetstream.JetStream, window time.Duration, replicas int) (jetstream.KeyValue, error) {
	if window == 0 {
		window = DefaultWindow
	}
	if window < MinWindow {
		return nil, fmt.Errorf("idempotency: window %s is shorter than %s", window, MinWindow)
	}
	if replicas < 0 || replicas > 5 {
		return nil, fmt.Errorf("idempotency: replicas %d out of range 0..5", replicas)
	}
	if replicas == 0 {
		replicas = queue.DefaultReplicas
	}
	kv, err := queue.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "Herald Idempotency-Keys: the job each key created",
		History:     1,
		TTL:         window,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("idempotency: ensure bucket %s: %w", Bucket, err)
	}
	return kv, nil
}

// Entry is what a key holds.
type Entry struct {
	// Key is the bucket key.
	Key string
	// ID is the id of the job the key's first request created.
	ID string
	// Fingerprint identifies the first request's content: a request with
	// the same key and another fingerprint is not a retry.
	Fingerprint string
	// Stored is true once the job is known to be stored; false while the
	// entry is pending.
	Stored bool
	// Created is when the entry was last written.
	Created time.Time

	revision uint64
}

// Store reads and writes the keys. It is safe for concurrent use.
type Store struct {
	kv jetstream.KeyValue
}

// New returns a Store over kv (see EnsureBucket). The caller owns kv.
func New(kv jetstream.KeyValue) *Store { return &Store{kv: kv} }

// maxClaimTries bounds Claim's attempts when the entry it found vanished
// (expired or released) before it could read it.
const maxClaimTries = 3

// Claim records key as pending for job id with fingerprint, unless the key
// is held: then it returns the entry that holds it and claimed false. key
// must be a valid bucket key; id and fingerprint must not contain a space.
// Of requests racing with one key, exactly one claims it.
func (s *Store) Claim(ctx context.Context, key, id, fingerprint string) (e Entry, claimed bool, err error) {
	if strings.ContainsRune(id, ' ') || strings.ContainsRune(fingerprint, ' ') || id == "" {
		return Entry{}, false, errors.New("idempotency: invalid id or fingerprint")
	}
	pending := Entry{Key: key, ID: id, Fingerprint: fingerprint}
	for range maxClaimTries {
		rev, err := s.kv.Create(ctx, key, pending.encode())
		if err == nil {
			pending.revision = rev
			pending.Created = time.Now()
			return pending, true, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return Entry{}, false, fmt.Errorf("idempotency: claim: %w", err)
		}
		kve, err := s.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue // released or expired in between: claim again
		}
		if err != nil {
			return Entry{}, false, fmt.Errorf("idempotency: read: %w", err)
		}
		held, err := decode(kve)
		if err != nil {
			return Entry{}, false, err
		}
		return held, false, nil
	}
	return Entry{}, false, errors.New("idempotency: claim: the key keeps changing")
}

// Stored marks e's job stored, if e is still the entry's current revision.
// If the entry was released meanwhile (its first request failed to store
// the job that another request, resolving the pending entry, stored), it
// is created again, stored. Else it returns ErrChanged: another request
// marked it first, which is as good.
func (s *Store) Stored(ctx context.Context, e Entry) error {
	if e.Stored {
		return nil
	}
	e.Stored = true
	_, err := s.kv.Update(ctx, e.Key, e.encode(), e.revision)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("idempotency: mark stored: %w", err)
	}
	if _, err := s.kv.Get(ctx, e.Key); !errors.Is(err, jetstream.ErrKeyNotFound) && !errors.Is(err, jetstream.ErrKeyDeleted) {
		return ErrChanged
	}
	if _, err := s.kv.Create(ctx, e.Key, e.encode()); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return ErrChanged
		}
		return fmt.Errorf("idempotency: mark stored: %w", err)
	}
	return nil
}

// Release frees the pending entry e, whose job was not stored, so that a
// retry claims the key afresh; ErrChanged when e is no longer current.
func (s *Store) Release(ctx context.Context, e Entry) error {
	if err := s.kv.Delete(ctx, e.Key, jetstream.LastRevision(e.revision)); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return ErrChanged
		}
		return fmt.Errorf("idempotency: release: %w", err)
	}
	return nil
}

// An entry's value: "<state> <job id> <fingerprint>", state "p" (pending)
// or "s" (stored). Short, because every key of the window costs its bytes.
func (e Entry) encode() []byte {
	state := "p"
	if e.Stored {
		state = "s"
	}
	return []byte(state + " " + e.ID + " " + e.Fingerprint)
}

func decode(kve jetstream.KeyValueEntry) (Entry, error) {
	parts := strings.Split(string(kve.Value()), " ")
	if len(parts) != 3 || parts[0] != "p" && parts[0] != "s" || parts[1] == "" {
		return Entry{}, fmt.Errorf("idempotency: entry %s is malformed", kve.Key())
	}
	return Entry{
		Key: kve.Key(), ID: parts[1], Fingerprint: parts[2], Stored: parts[0] == "s",
		Created: kve.Created(), revision: kve.Revision(),
	}, nil
}
