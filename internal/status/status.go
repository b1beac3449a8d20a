// Package status keeps job status records in the herald.StatusBucket
// key-value bucket: one JSON-encoded herald.Status per job id, expiring with
// the bucket's TTL.
package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrNotFound is returned when a job has no status record (never recorded,
// expired, or not a valid job id).
var ErrNotFound = errors.New("status not found")

// Store reads and writes status records. It is safe for concurrent use.
type Store struct {
	kv   jetstream.KeyValue
	nc   *nats.Conn
	jobs jobsStream // nil: Lookup reads records only
	now  func() time.Time
	// js and deliveredTTL: see WithDeliveredTTL.
	js           jetstream.JetStream
	deliveredTTL time.Duration
}

// New returns a Store over kv, the status bucket (see queue.EnsureStatusBucket).
// nc is the connection Watch subscribes on; it may be nil when Watch is not
// used. The caller owns both.
func New(kv jetstream.KeyValue, nc *nats.Conn, opts ...Option) *Store {
	s := &Store{kv: kv, nc: nc, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Queued records rec with State herald.StateQueued, but only if the job has
// no record yet: a worker may already have written a later state, which must
// not be overwritten, so an existing record is not an error. UpdatedAt is set
// to now when zero. rec.ID must be a valid job id.
func (s *Store) Queued(ctx context.Context, rec herald.Status) error {
	rec.State = herald.StateQueued
	data, err := s.encode(rec, "")
	if err != nil {
		return err
	}
	if _, err := s.kv.Create(ctx, rec.ID, data); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return nil
		}
		return fmt.Errorf("status: record %s queued: %w", rec.ID, err)
	}
	return nil
}

// Put writes rec, replacing any earlier record of the job. UpdatedAt is set to
// now when zero. rec.ID must be a valid job id and rec.State non-empty.
func (s *Store) Put(ctx context.Context, rec herald.Status) error { return s.put(ctx, rec, "") }

// PutHeld is Put for a record that holder holds: a copy of a parked job
// records its attempt without letting go of the job. A final record is held
// by nobody.
func (s *Store) PutHeld(ctx context.Context, rec herald.Status, holder string) error {
	return s.put(ctx, rec, holder)
}

func (s *Store) put(ctx context.Context, rec herald.Status, holder string) error {
	if rec.State == "" {
		return fmt.Errorf("status: record %s: empty state", rec.ID)
	}
	if rec.State.Final() {
		holder = ""
	}
	data, err := s.encode(rec, holder)
	if err != nil {
		return err
	}
	if rec.State == herald.StateDelivered && s.deliveredTTL > 0 {
		// What kv.Put does, with the record's own TTL.
		_, err = s.js.Publish(ctx, "$KV."+s.kv.Bucket()+"."+rec.ID, data, jetstream.WithMsgTTL(s.deliveredTTL))
	} else {
		_, err = s.kv.Put(ctx, rec.ID, data)
	}
	if err != nil {
		return fmt.Errorf("status: record %s %s: %w", rec.ID, rec.State, err)
	}
	return nil
}

// encode is rec as stored, held by holder ("" when no copy holds the job):
// JSON, with UpdatedAt set to now when zero. rec.ID must be a valid job id.
func (s *Store) encode(rec herald.Status, holder string) ([]byte, error) {
	if !herald.ValidID(rec.ID) {
		return nil, errors.New("status: invalid job id")
	}
	if rec.UpdatedAt.IsZero() {
		rec.UpdatedAt = s.now().UTC()
	}
	data, err := json.Marshal(held{Status: rec, Holder: holder})
	if err != nil {
		return nil, fmt.Errorf("status: encode record %s: %w", rec.ID, err)
	}
	return data, nil
}

// Get returns the job's record, or ErrNotFound when it has none or id is not
// a valid job id.
func (s *Store) Get(ctx context.Context, id string) (herald.Status, error) {
	rec, _, _, err := s.GetRevision(ctx, id)
	return rec, err
}

// ErrChanged is returned by Swap when the record is no longer at the
// revision the caller read.
var ErrChanged = errors.New("status changed since it was read")

// held is a record as stored: the job's status and, while a copy of a
// parked job holds the job (see consumer's parking), that copy's identity.
// The holder is the workers' business: Get and Lookup, which serve clients,
// never return it.
type held struct {
	herald.Status
	Holder string `json:"holder,omitempty"`
}

// GetRevision returns the job's record, the copy holding the job ("" when
// none) and the record's revision, for Swap; errors as Get.
func (s *Store) GetRevision(ctx context.Context, id string) (herald.Status, string, uint64, error) {
	if !herald.ValidID(id) {
		return herald.Status{}, "", 0, ErrNotFound
	}
	e, err := s.kv.Get(ctx, id)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return herald.Status{}, "", 0, ErrNotFound
		}
		return herald.Status{}, "", 0, fmt.Errorf("status: get %s: %w", id, err)
	}
	var h held
	if err := json.Unmarshal(e.Value(), &h); err != nil {
		return herald.Status{}, "", 0, fmt.Errorf("status: decode record %s: %w", id, err)
	}
	return h.Status, h.Holder, e.Revision(), nil
}

// Swap writes rec, held by holder, only if the job's record is still at
// revision (as GetRevision returned it), else fails with ErrChanged: of two
// writers that read the same revision, exactly one succeeds. UpdatedAt is
// set to now when zero.
func (s *Store) Swap(ctx context.Context, rec herald.Status, holder string, revision uint64) error {
	if rec.State == "" {
		return fmt.Errorf("status: record %s: empty state", rec.ID)
	}
	data, err := s.encode(rec, holder)
	if err != nil {
		return err
	}
	if _, err := s.kv.Update(ctx, rec.ID, data, revision); err != nil {
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("status: record %s: %w", rec.ID, ErrChanged)
		}
		return fmt.Errorf("status: record %s %s: %w", rec.ID, rec.State, err)
	}
	return nil
}

func decode(id string, data []byte) (herald.Status, error) {
	var rec herald.Status
	if err := json.Unmarshal(data, &rec); err != nil {
		return herald.Status{}, fmt.Errorf("status: decode record %s: %w", id, err)
	}
	return rec, nil
}
