package consumer

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/status"
	"github.com/nats-io/nats.go"
)

// BudgetStartHeader is the message header that restarts a job's retry
// budget: an RFC 3339 time (nanoseconds allowed) from which Config.MaxAge is
// measured instead of Job.CreatedAt. A replay from the dead letters sets it to
// the replay time. A status record last written before it belongs to the
// job's earlier life and does not count toward Config.MaxAttempts.
const BudgetStartHeader = "Herald-Budget-Start"

// ReplaysHeader counts how often a job was replayed from the dead letters. A
// Pool counts the first delivery of a job carrying it in
// herald_replayed_total: the workers' processes are where metrics are
// scraped, whatever ran the replay (the CLI, the admin API).
const ReplaysHeader = "Herald-Replays"

// statusReadTimeout bounds the read of a redelivered job's status record.
const statusReadTimeout = 5 * time.Second

// budgetStart returns when a job's retry budget started, and whether that came
// from BudgetStartHeader: the header when it parses, else createdAt, else
// stored (the stream timestamp).
func budgetStart(h nats.Header, createdAt, stored time.Time) (time.Time, bool) {
	if v := h.Get(BudgetStartHeader); v != "" {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return t, true
		}
	}
	if !createdAt.IsZero() {
		return createdAt, false
	}
	return stored, false
}

// failures returns the failed attempts of d's job before this delivery. The
// first delivery has none, and costs no read. A redelivery reads the job's
// status record once: no record means none (it expired, or nobody wrote
// one); a record written before a replay's budget start (fromHeader) is from
// the job's earlier life and means none. When there is no store, or the read
// fails, every earlier delivery counts as a failure: that may dead-letter a
// job early, never keep it retrying forever.
func (p *Pool) failures(d *Delivery, fromHeader bool) int {
	if d.Attempt <= 1 {
		return d.priorFailures
	}
	fallback := d.Attempt - 1
	if p.status == nil {
		return fallback
	}
	ctx, cancel := context.WithTimeout(context.Background(), statusReadTimeout)
	defer cancel()
	rec, err := p.status.Get(ctx, d.Job.ID)
	switch {
	case errors.Is(err, status.ErrNotFound):
		return d.priorFailures
	case err != nil:
		p.log.LogAttrs(ctx, slog.LevelWarn, "status read",
			slog.String("job_id", d.Job.ID), slog.Int("delivery", d.Attempt),
			slog.Int("attempts_assumed", fallback), slog.String("error", err.Error()))
		return fallback
	case fromHeader && rec.UpdatedAt.Before(d.BudgetStart):
		return 0
	default:
		return max(rec.Attempts, 0)
	}
}

// causeError labels a permanent error with its dead-letter cause, keeping
// the error's text.
type causeError struct {
	cause string
	err   error
}

func (e *causeError) Error() string { return e.err.Error() }
func (e *causeError) Unwrap() error { return e.err }

// withCause returns err, permanent, labelled with cause.
func withCause(cause string, err error) error {
	return herald.Permanent(&causeError{cause: cause, err: err})
}

// causeOf returns the dead-letter cause of a permanent error: its label, or
// CausePermanent.
func causeOf(err error) string {
	var ce *causeError
	if errors.As(err, &ce) {
		return ce.cause
	}
	if errors.Is(err, herald.ErrInvalidTarget) {
		return CauseInvalid
	}
	return CausePermanent
}
