package dlq

import (
	"context"
	"fmt"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/queue"
	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of StreamConfig.
const (
	// DefaultMaxAge is how long a dead letter is kept (dlq.max_age): long
	// enough for an operator back from holidays to see what failed.
	DefaultMaxAge = 30 * 24 * time.Hour
	// DefaultReplicas suits a single node; use 3 in a 3-node cluster.
	DefaultReplicas = 1
	// DuplicateWindow is how long the stream remembers a dead letter's
	// Nats-Msg-Id, so that a dead-letter publish retried after a lost
	// acknowledgement stores the letter once.
	DuplicateWindow = 2 * time.Minute
)

// StreamConfig configures the dead-letter stream.
type StreamConfig struct {
	// MaxAge drops dead letters older than this (dlq.max_age); DefaultMaxAge
	// when 0. It must be at least DuplicateWindow.
	MaxAge time.Duration
	// Replicas is the number of copies in a cluster; DefaultReplicas when 0.
	Replicas int
	// MaxBytes caps the stream's size; 0 means unlimited. A full stream
	// refuses new dead letters rather than dropping old ones: the consumer
	// then keeps the job in the jobs stream and retries the hand-off, so
	// nothing is lost silently (watch herald_dead_letter_publish_failures_total).
	MaxBytes int64
}

// Validate checks the configuration; EnsureStream calls it.
func (c StreamConfig) Validate() error {
	if c.MaxAge < 0 || (c.MaxAge > 0 && c.MaxAge < DuplicateWindow) {
		return fmt.Errorf("dlq: stream: max age %s must be 0 (default %s) or at least %s", c.MaxAge, DefaultMaxAge, DuplicateWindow)
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		return fmt.Errorf("dlq: stream: replicas %d out of range 0..5", c.Replicas)
	}
	if c.MaxBytes < 0 {
		return fmt.Errorf("dlq: stream: max bytes %d is negative", c.MaxBytes)
	}
	return nil
}

// streamConfig is the JetStream configuration EnsureStream applies.
func streamConfig(c StreamConfig) jetstream.StreamConfig {
	maxAge := c.MaxAge
	if maxAge == 0 {
		maxAge = DefaultMaxAge
	}
	replicas := c.Replicas
	if replicas == 0 {
		replicas = DefaultReplicas
	}
	maxBytes := c.MaxBytes
	if maxBytes == 0 {
		maxBytes = -1
	}
	return jetstream.StreamConfig{
		Name:        herald.DeadLetterStream,
		Description: "Herald dead letters (jobs that will never be delivered)",
		Subjects:    []string{herald.DeadLetterSubjects},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		Duplicates:  DuplicateWindow,
		MaxAge:      maxAge,
		MaxBytes:    maxBytes,
		MaxMsgs:     -1,
		Discard:     jetstream.DiscardNew,
	}
}

// EnsureStream creates the herald.DeadLetterStream stream on
// herald.DeadLetterSubjects, or updates it to cfg if it exists: limits
// retention (a letter stays until it is replayed, purged or older than
// MaxAge), file storage, a DuplicateWindow deduplication window. It is
// idempotent; settings the server cannot change in place make it fail
// rather than recreate the stream.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (jetstream.Stream, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s, err := queue.Ensure(ctx, func(ctx context.Context) (jetstream.Stream, error) {
		return js.CreateOrUpdateStream(ctx, streamConfig(cfg))
	})
	if err != nil {
		return nil, fmt.Errorf("dlq: ensure stream %s: %w", herald.DeadLetterStream, err)
	}
	return s, nil
}
