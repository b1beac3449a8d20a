package consumer

import (
	"context"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/nats-io/nats.go/jetstream"
)

// DeadLetterer stores a job that will never be delivered; dlq.Writer
// satisfies it. It must be safe for concurrent use.
//
// DeadLetter must copy msg's data (the job as it was stored, credentials still
// sealed) and headers, and return nil only once the copy is stored durably
// (its publish acknowledged): the Pool terminates the original only then. On
// an error the original is put back and tried again later, so the job is
// never lost; a crash between a successful DeadLetter and the terminate may
// store the same job twice (same Sequence). ctx bounds the call. It must not
// keep msg after it returns, nor ack it.
type DeadLetterer interface {
	DeadLetter(ctx context.Context, msg jetstream.Msg, info DeadLetterInfo) error
}

// Causes of a dead letter: DeadLetterInfo.Cause and the DeadLettered metric's
// reason label. They form a fixed set.
const (
	// CausePermanent: the destination answered with an error that can never
	// succeed (deleted webhook, blocked bot, revoked token).
	CausePermanent = "permanent"
	// CauseBudgetExhausted: the job failed transiently Config.MaxAttempts times.
	CauseBudgetExhausted = "budget_exhausted"
	// CauseMaxAge: the job failed transiently more than Config.MaxAge after
	// its budget start.
	CauseMaxAge = "max_age"
	// CauseUndecodable: the message is not a valid job (malformed JSON, an
	// unknown version or channel, a missing field, a channel other than its
	// subject's).
	CauseUndecodable = "undecodable"
	// CauseCredentials: the job's credentials do not open with this
	// keyring (wrong key, corrupted).
	CauseCredentials = "credentials"
	// CauseInvalid: the job's destination is one Herald refuses to send to
	// (herald.ErrInvalidTarget: not an allowed Discord webhook URL, a port
	// other than Discord's, a malformed bot token or chat id).
	CauseInvalid = "invalid"
	// CauseWaitBeyondMaxAge: the job was asked to wait (a retry_after,
	// pacing, an open breaker) longer than what was left of its
	// Config.MaxAge: it could never be tried again in time.
	CauseWaitBeyondMaxAge = "wait_beyond_max_age"
	// CauseParkLimit: the job had to wait, but its destination already had
	// Config.MaxParkedPerDestination jobs waiting in this process (or the
	// process Config.MaxParked).
	CauseParkLimit = "park_limit"
)

// DeadLetterInfo describes why a job is dead-lettered. None of its fields
// holds a credential.
type DeadLetterInfo struct {
	// JobID is the job's id (see Delivery.Job): its own, else its
	// Nats-Msg-Id, else "seq-<stream sequence>".
	JobID string
	// Channel is the job's channel, else the one its subject names, else
	// "unknown" (a job that is not valid has no channel). It is never empty
	// and always a single subject token.
	Channel herald.Channel
	// Reason is a human-readable one-line text (no secrets, no newlines, at
	// most 1,000 bytes), e.g. "retry budget spent after 10 attempts:
	// Discord API error: 500 Internal Server Error".
	Reason string
	// Cause is one of the Cause* labels.
	Cause string
	// StatusCode is the destination's last HTTP status, 0 when none (a
	// timeout, an undecodable job).
	StatusCode int
	// Attempts is the number of failed attempts, this last one included.
	Attempts int
	// FirstAttempt is the job's budget start (Delivery.BudgetStart): the
	// status record keeps no time of the first attempt, and the budget start
	// is when the job became deliverable.
	FirstAttempt time.Time
	// LastAttempt is when this last attempt ended.
	LastAttempt time.Time
	// Subject is the job's subject in the jobs stream.
	Subject string
	// Sequence is the job's sequence in the jobs stream.
	Sequence uint64
}
