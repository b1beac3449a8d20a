package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of StreamConfig and EnsureStatusBucket.
const (
	// DefaultReplicas suits a single node; use 3 in a 3-node cluster.
	DefaultReplicas = 1
	// DefaultDuplicateWindow is how long a Nats-Msg-Id is remembered, and so
	// how long a client may retry a publish without creating a second job.
	DefaultDuplicateWindow = 2 * time.Minute
	// DefaultStatusTTL is how long a status record lives after its last write.
	DefaultStatusTTL = 24 * time.Hour
	// readyTimeout bounds Ready when ctx has no deadline.
	defaultReadyTimeout = 5 * time.Second
)

// StreamConfig configures the jobs stream.
type StreamConfig struct {
	// Replicas is the number of copies in a cluster; DefaultReplicas when 0.
	// A single server supports only 1.
	Replicas int
	// DuplicateWindow is the Nats-Msg-Id deduplication window;
	// DefaultDuplicateWindow when 0.
	DuplicateWindow time.Duration
	// MaxAge drops jobs older than this; 0 keeps them until delivered.
	MaxAge time.Duration
	// Memory keeps jobs in memory instead of on disk (lost on restart: tests
	// and throwaway setups only).
	Memory bool
	// MaxBytes caps the stream's size; 0 means unlimited. A full stream refuses
	// new jobs rather than dropping accepted ones.
	MaxBytes int64
}

// Validate checks the configuration; EnsureJobsStream calls it.
func (c StreamConfig) Validate() error {
	if c.Replicas < 0 || c.Replicas > 5 {
		return fmt.Errorf("queue: jobs stream: replicas %d out of range 0..5", c.Replicas)
	}
	if c.DuplicateWindow < 0 {
		return fmt.Errorf("queue: jobs stream: duplicate window %s is negative", c.DuplicateWindow)
	}
	if c.MaxAge < 0 {
		return fmt.Errorf("queue: jobs stream: max age %s is negative", c.MaxAge)
	}
	if c.MaxBytes < 0 {
		return fmt.Errorf("queue: jobs stream: max bytes %d is negative", c.MaxBytes)
	}
	if c.MaxAge > 0 && c.duplicateWindow() > c.MaxAge {
		return fmt.Errorf("queue: jobs stream: duplicate window %s exceeds max age %s", c.duplicateWindow(), c.MaxAge)
	}
	return nil
}

func (c StreamConfig) duplicateWindow() time.Duration {
	if c.DuplicateWindow == 0 {
		return DefaultDuplicateWindow
	}
	return c.DuplicateWindow
}

func replicasOrDefault(n int) int {
	if n == 0 {
		return DefaultReplicas
	}
	return n
}

// jobsStreamConfig is the JetStream configuration EnsureJobsStream applies.
func jobsStreamConfig(c StreamConfig) jetstream.StreamConfig {
	storage := jetstream.FileStorage
	if c.Memory {
		storage = jetstream.MemoryStorage
	}
	maxBytes := c.MaxBytes
	if maxBytes == 0 {
		maxBytes = -1
	}
	return jetstream.StreamConfig{
		Name:        herald.JobsStream,
		Description: "Herald notification jobs (work queue)",
		Subjects:    []string{herald.JobSubjects},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     storage,
		Replicas:    replicasOrDefault(c.Replicas),
		Duplicates:  c.duplicateWindow(),
		MaxAge:      c.MaxAge,
		MaxBytes:    maxBytes,
		MaxMsgs:     -1,
		// DiscardNew: a full stream refuses the publish (the ingest answers
		// 503) instead of silently dropping a job it already acknowledged.
		Discard: jetstream.DiscardNew,
	}
}

// parkedStreamConfig is the JetStream configuration of herald.ParkedStream:
// the jobs stream's storage and replicas, work-queue retention (a parked job
// that came back is deleted once a worker acks it), message schedules, and
// no limits at all. Message schedules rule out DiscardNew, and with
// DiscardOld any limit would drop the oldest waiting jobs, which were
// accepted: the Pool bounds what is parked instead (consumer.Config's
// MaxParked and MaxParkedPerDestination).
func parkedStreamConfig(c StreamConfig) jetstream.StreamConfig {
	storage := jetstream.FileStorage
	if c.Memory {
		storage = jetstream.MemoryStorage
	}
	return jetstream.StreamConfig{
		Name:              herald.ParkedStream,
		Description:       "Herald jobs held back until their next attempt (message schedules)",
		Subjects:          []string{herald.ParkedSubjects},
		Retention:         jetstream.WorkQueuePolicy,
		Storage:           storage,
		Replicas:          replicasOrDefault(c.Replicas),
		MaxBytes:          -1,
		MaxMsgs:           -1,
		Discard:           jetstream.DiscardOld,
		AllowMsgSchedules: true,
		AllowRollup:       true, // each schedule replaces the one before on its subject
		Duplicates:        c.duplicateWindow(),
	}
}

// EnsureJobsStream creates the herald.JobsStream stream on herald.JobSubjects,
// or updates it to cfg if it exists: work-queue retention (a job is deleted
// once acked), file storage unless cfg.Memory, deduplication over
// cfg.DuplicateWindow, and DiscardNew so that a full stream refuses publishes.
// It then does the same for herald.ParkedStream, where held-back jobs wait
// (see parkedStreamConfig); that needs nats-server 2.12 or later (message
// schedules), and an older server makes it fail saying so.
// It is idempotent. Settings the server cannot change in place (retention,
// storage) make it fail rather than recreate the stream.
func EnsureJobsStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (jetstream.Stream, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s, err := Ensure(ctx, func(ctx context.Context) (jetstream.Stream, error) {
		return js.CreateOrUpdateStream(ctx, jobsStreamConfig(cfg))
	})
	if err != nil {
		return nil, fmt.Errorf("queue: ensure stream %s: %w", herald.JobsStream, err)
	}
	if _, err := Ensure(ctx, func(ctx context.Context) (jetstream.Stream, error) {
		return js.CreateOrUpdateStream(ctx, parkedStreamConfig(cfg))
	}); err != nil {
		return nil, fmt.Errorf("queue: ensure stream %s (held-back jobs; needs nats-server 2.12 or later for message schedules): %w", herald.ParkedStream, err)
	}
	return s, nil
}

// EnsureStatusBucket creates the herald.StatusBucket key-value bucket, or
// updates it if it exists: records expire ttl after their last write
// (DefaultStatusTTL when 0), one revision of history, replicas copies
// (DefaultReplicas when 0), file storage. It is idempotent.
//
// The bucket's stream is written directly rather than through the jetstream
// key-value helper, to allow per-record TTLs (Nats-TTL, see
// status.WithDeliveredTTL) without the subject delete markers the helper
// would add with them: a marker per expired record would double the writes.
func EnsureStatusBucket(ctx context.Context, js jetstream.JetStream, ttl time.Duration, replicas int) (jetstream.KeyValue, error) {
	if ttl < 0 {
		return nil, fmt.Errorf("queue: status bucket: ttl %s is negative", ttl)
	}
	if replicas < 0 || replicas > 5 {
		return nil, fmt.Errorf("queue: status bucket: replicas %d out of range 0..5", replicas)
	}
	if ttl == 0 {
		ttl = DefaultStatusTTL
	}
	if _, err := Ensure(ctx, func(ctx context.Context) (jetstream.Stream, error) {
		return js.CreateOrUpdateStream(ctx, statusStreamConfig(ttl, replicas))
	}); err != nil {
		return nil, fmt.Errorf("queue: ensure bucket %s: %w", herald.StatusBucket, err)
	}
	kv, err := js.KeyValue(ctx, herald.StatusBucket)
	if err != nil {
		return nil, fmt.Errorf("queue: ensure bucket %s: %w", herald.StatusBucket, err)
	}
	return kv, nil
}

// statusStreamConfig is the stream of the status bucket: what the jetstream
// key-value helper makes of a bucket with one revision and ttl, plus
// AllowMsgTTL.
func statusStreamConfig(ttl time.Duration, replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              "KV_" + herald.StatusBucket,
		Description:       "Herald job status records",
		Subjects:          []string{"$KV." + herald.StatusBucket + ".>"},
		MaxMsgsPerSubject: 1,
		MaxBytes:          -1,
		MaxAge:            ttl,
		MaxMsgSize:        -1,
		Storage:           jetstream.FileStorage,
		Replicas:          replicasOrDefault(replicas),
		AllowRollup:       true,
		DenyDelete:        true,
		Duplicates:        min(2*time.Minute, ttl),
		MaxMsgs:           -1,
		MaxConsumers:      -1,
		AllowDirect:       true,
		Discard:           jetstream.DiscardNew,
		AllowMsgTTL:       true,
	}
}

// ErrNotConnected is returned by Ready when the connection is down.
var ErrNotConnected = errors.New("queue: not connected to NATS")

// ErrStreamFull is returned by Ready when the jobs stream, or the JetStream
// account's store, has no room for another job: every publish would be
// refused (the ingest answers 503), so the process is not ready.
var ErrStreamFull = errors.New("queue: the jobs stream is full")

// readyHeadroom is the room a ready stream must have left: a job of the
// ingest's largest accepted size, with its headers.
const readyHeadroom = 96 << 10

// Ready returns nil when nc is connected, the jobs stream answers an info
// request and has room for another job (else ErrStreamFull), which is what
// GET /readyz needs to know. It waits at most until ctx
// ends (5 s when ctx has no deadline).
func Ready(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
	if nc == nil || !nc.IsConnected() {
		return ErrNotConnected
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultReadyTimeout)
		defer cancel()
	}
	st, err := js.Stream(ctx, herald.JobsStream)
	if err != nil {
		return fmt.Errorf("queue: ready: stream %s: %w", herald.JobsStream, err)
	}
	info := st.CachedInfo()
	if c := info.Config; c.MaxBytes > 0 && c.MaxBytes-int64(info.State.Bytes) < readyHeadroom ||
		c.MaxMsgs > 0 && int64(info.State.Msgs) >= c.MaxMsgs {
		return fmt.Errorf("queue: ready: stream %s: %w (%d messages, %d bytes)", herald.JobsStream, ErrStreamFull, info.State.Msgs, info.State.Bytes)
	}
	acct, err := js.AccountInfo(ctx)
	if err != nil {
		return fmt.Errorf("queue: ready: account info: %w", err)
	}
	if max := acct.Limits.MaxStore; max > 0 && max-int64(acct.Store) < readyHeadroom {
		return fmt.Errorf("queue: ready: %w: the JetStream store is full (%d of %d bytes)", ErrStreamFull, acct.Store, max)
	}
	return nil
}
