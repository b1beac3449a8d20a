package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/nats-io/nats.go/jetstream"
)

// jobsStream is what Lookup needs of the jobs stream; jetstream.Stream
// satisfies it.
type jobsStream interface {
	GetLastMsgForSubject(ctx context.Context, subject string) (*jetstream.RawStreamMsg, error)
}

var _ jobsStream = jetstream.Stream(nil)

// Option configures a Store.
type Option func(*Store)

// WithJobs lets Lookup find jobs still waiting in the jobs stream (see
// queue.EnsureJobsStream), which have no status record yet. The caller owns
// the stream handle.
func WithJobs(jobs jobsStream) Option {
	return func(s *Store) { s.jobs = jobs }
}

// WithDeliveredTTL makes the records of delivered jobs expire ttl after
// they are written, instead of with the bucket's TTL: they are most of the
// records and the least looked at, and each costs the server memory while
// it lives. js must reach the bucket's stream, which must allow per-message
// TTLs (queue.EnsureStatusBucket's does); ttl must be at least a second.
// Zero keeps the bucket's TTL.
func WithDeliveredTTL(js jetstream.JetStream, ttl time.Duration) Option {
	return func(s *Store) { s.js, s.deliveredTTL = js, ttl }
}

// Lookup returns what a client asking about job id should see: its status
// record when it has one; else, when the Store was built WithJobs and the job
// waits in the jobs stream on herald.JobIDSubject (as every job Herald's
// publisher stores does), a record with State herald.StateQueued, the job's
// channel and creation time, and the time it was stored as UpdatedAt; else
// ErrNotFound (also for an id that is not a valid job id).
//
// Nothing writes "queued" records for the ingest's jobs: a job without a
// record is queued for as long as it is in the stream, and a worker writes
// the job's record before it acks (or terminates) it, so that a job always
// has a record, or a message in the stream, or both. Lookup reads the record,
// then the stream, then the record again when the job is no longer in the
// stream, so a job settled between the first two reads is still found.
func (s *Store) Lookup(ctx context.Context, id string) (herald.Status, error) {
	rec, err := s.Get(ctx, id)
	if s.jobs == nil || !errors.Is(err, ErrNotFound) || !herald.ValidID(id) {
		return rec, err
	}
	msg, err := s.jobs.GetLastMsgForSubject(ctx, herald.JobIDSubjectPattern(id))
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return s.Get(ctx, id)
	case err != nil:
		return herald.Status{}, fmt.Errorf("status: look up %s in the jobs stream: %w", id, err)
	}
	return queuedFromMsg(id, msg), nil
}

// queuedFromMsg builds the record of a job still in the jobs stream. Only
// created_at is read from the job: its channel is the subject's, and nothing
// else (the sealed credentials least of all) is needed.
func queuedFromMsg(id string, msg *jetstream.RawStreamMsg) herald.Status {
	rec := herald.Status{ID: id, State: herald.StateQueued, UpdatedAt: msg.Time.UTC()}
	if c := herald.SubjectChannel(msg.Subject); c.Valid() {
		rec.Channel = c
	}
	var job struct {
		CreatedAt time.Time `json:"created_at"`
	}
	if json.Unmarshal(msg.Data, &job) == nil {
		rec.CreatedAt = job.CreatedAt
	}
	return rec
}
