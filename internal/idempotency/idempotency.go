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
//
// The bucket holds at most a set number of keys (its stream's MaxMsgs): a
// full bucket refuses new keys (ErrFull) until its oldest expire, so that
// however many keys clients send, the NATS server's memory for them is
// bounded. Keys already held are still read, marked and released.
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

// DefaultMaxKeys is how many keys the bucket holds when EnsureBucket is
// given 0. Each costs the NATS server about 230 bytes of memory and 200 of
// store while kept (BenchmarkKeyCost), so 200,000 keys hold about 46 MB of
// memory and 40 MB of disk: a tenth of a 512 MB machine. That is a keyed
// request every 0.43 s, on average, over a day's window.
const DefaultMaxKeys = 200_000

// ErrFull is matched by the error of a Claim the bucket refused because it
// holds as many keys as it may (see FullError).
var ErrFull = errors.New("idempotency: the bucket holds as many keys as it may")

// FullError is Claim's error when the bucket is full. It matches ErrFull.
type FullError struct {
	// RetryAfter is when the bucket's oldest key expires, freeing room
	// (at least a second; 0 when that could not be read).
	RetryAfter time.Duration
}

func (e *FullError) Error() string { return ErrFull.Error() }

// Is makes errors.Is(err, ErrFull) true.
func (e *FullError) Is(target error) bool { return target == ErrFull }

// ErrChanged is returned by Stored and Release when the entry is no longer
// the one the caller read: another request marked or released it first.
var ErrChanged = errors.New("idempotency: entry changed since it was read")

// EnsureBucket creates Bucket, or updates it if it exists: entries expire
// window after their last write (DefaultWindow when 0), at most maxKeys of
// them (DefaultMaxKeys when 0), one revision kept, replicas copies
// (queue.DefaultReplicas when 0), file storage. It is idempotent.
//
// The bound is the stream's MaxMsgs, with the buckets' discard-new policy:
// a count, exactly the keys (and released keys' markers) held, and the
// memory they cost is per key. A byte bound (MaxBytes) would refuse marking
// a key stored in a nearly full bucket, the mark's record being a few bytes
// longer than the claim's; a count lets a held key's record be replaced.
func EnsureBucket(ctx context.Context, js jetstream.JetStream, window time.Duration, maxKeys, replicas int) (jetstream.KeyValue, error) {
	if window == 0 {
		window = DefaultWindow
	}
	if window < MinWindow {
		return nil, fmt.Errorf("idempotency: window %s is shorter than %s", window, MinWindow)
	}
	if maxKeys == 0 {
		maxKeys = DefaultMaxKeys
	}
	if maxKeys < 1 {
		return nil, fmt.Errorf("idempotency: max keys %d is negative", maxKeys)
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
	// KeyValueConfig has no MaxMsgs: set it on the bucket's stream. (The
	// update above put it back to unlimited, for the moment until this.)
	if _, err := queue.Ensure(ctx, func(ctx context.Context) (jetstream.Stream, error) {
		st, err := js.Stream(ctx, stream)
		if err != nil {
			return nil, err
		}
		cfg := st.CachedInfo().Config
		if cfg.MaxMsgs == int64(maxKeys) {
			return st, nil
		}
		cfg.MaxMsgs = int64(maxKeys)
		return js.UpdateStream(ctx, cfg)
	}); err != nil {
		return nil, fmt.Errorf("idempotency: bound bucket %s to %d keys: %w", Bucket, maxKeys, err)
	}
	return kv, nil
}

// stream is the bucket's stream.
const stream = "KV_" + Bucket

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
		if isFull(err) {
			return Entry{}, false, &FullError{RetryAfter: s.nextExpiry(ctx)}
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

// Held returns the entry that holds key, and held false when none does (the
// key was never claimed, expired, or was released). It writes nothing.
func (s *Store) Held(ctx context.Context, key string) (e Entry, held bool, err error) {
	kve, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("idempotency: read: %w", err)
	}
	e, err = decode(kve)
	if err != nil {
		return Entry{}, false, err
	}
	return e, true, nil
}

// isFull reports whether err is the bucket's stream refusing a new record
// because it holds its MaxMsgs (or, on a bucket someone else bounded, its
// MaxBytes).
func isFull(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != jsErrCodeStoreFailed {
		return false
	}
	return strings.Contains(apiErr.Description, "maximum messages exceeded") ||
		strings.Contains(apiErr.Description, "maximum bytes exceeded")
}

// jsErrCodeStoreFailed is the JetStream error code of a message the stream
// did not store (JSStreamStoreFailedF); its description says why.
const jsErrCodeStoreFailed jetstream.ErrorCode = 10077

// nextExpiry is how long until the bucket's oldest record expires: its
// first message's time plus the bucket's TTL. At least a second; 0 when the
// bucket's state cannot be read.
func (s *Store) nextExpiry(ctx context.Context) time.Duration {
	st, err := s.kv.Status(ctx)
	if err != nil {
		return 0
	}
	bs, ok := st.(interface{ StreamInfo() *jetstream.StreamInfo })
	if !ok || bs.StreamInfo() == nil {
		return 0
	}
	info := bs.StreamInfo()
	return max(time.Until(info.State.FirstTime.Add(info.Config.MaxAge)), time.Second)
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
