package consumer

import (
	"context"
	"time"

	"github.com/heraldrelay/herald"
)

// Sender delivers one notification. channels.Discord and channels.Telegram
// satisfy it.
//
// Send must honour ctx (the Pool bounds it with Config.SendTimeout and
// cancels it at shutdown) and be safe for concurrent use. Its error decides
// the job's fate: nil means delivered; a *herald.RetryAfterError means "again
// after exactly that long", without using an attempt; an error wrapping
// herald.ErrPermanent means never again (the job is dead-lettered); anything
// else is a transient failure, retried with backoff until the retry budget
// (Config.MaxAttempts, Config.MaxAge) is spent. Error texts are logged and
// stored in status records and dead letters, so they must carry no
// credential.
type Sender interface {
	Send(ctx context.Context, n herald.Notification) error
}

// StatusWriter records job status; status.Store satisfies it. It must be safe
// for concurrent use. A failed write is logged and counted, and never changes
// what happens to the job.
type StatusWriter interface {
	Put(ctx context.Context, rec herald.Status) error
}

// Settler is handed jobs' final records; *status.Outcomes implements it.
// Settle must not block. Each final outcome is handed over once. It
// reports whether a request waiting for the outcome took it: that request
// answers with the outcome and never learns the job's id, so a delivered
// job's record then has no reader and is not written.
type Settler interface {
	Settle(rec herald.Status) bool
}

// StatusStore records and reads job status; status.Store satisfies it. It
// must be safe for concurrent use.
//
// The record is where a job's failed attempts are kept (herald.Status.Attempts,
// written after every attempt), because JetStream's delivery count also counts
// the waits and redeliveries that must not use up the retry budget. The Pool
// reads it with Get only on a redelivery, never on a job's first delivery.
// Get must return an error matching status.ErrNotFound (errors.Is) when the
// job has no record; any other error makes the Pool fall back to counting
// every earlier delivery as a failure. A lost write makes the Pool undercount
// (Put failures are logged and counted); Config.MaxAge still bounds the
// retries.
type StatusStore interface {
	StatusWriter
	Get(ctx context.Context, id string) (herald.Status, error)
}

// Delivery is one delivery attempt of a job. A Pool builds one per received
// message and passes it down the handler chain; middlewares may read it and
// fill in what they learn, and must not keep it after they return.
type Delivery struct {
	// Job is the decoded job. Its ID is always set: a job published without
	// one takes its Nats-Msg-Id header (when that is a valid id) or
	// "seq-<stream sequence>".
	Job herald.Job
	// Attempt says this is delivery number Attempt of the message
	// (JetStream's delivery count, from 1). It counts every delivery: waits a
	// destination asked for, pacing and breaker waits, redeliveries after a
	// crash, and a job put back at shutdown without being tried. It is not
	// the retry budget; Failures is.
	Attempt int
	// Failures is the number of failed attempts before this one: the
	// transient failures (and failed dead-letter hand-offs) that use up the
	// retry budget, Config.MaxAttempts. It is 0 on the first delivery, and
	// read from the job's status record on a redelivery (see StatusStore).
	Failures int
	// BudgetStart is when the job's retry budget started, the origin of
	// Config.MaxAge: the Herald-Budget-Start header (set by a replay) when
	// present and valid, else Job.CreatedAt, else the time the message was
	// stored in the jobs stream.
	BudgetStart time.Time
	// Sequence is the message's sequence number in its stream (the jobs
	// stream, or herald.ParkedStream for a parked copy).
	Sequence uint64
	// Subject is the subject the job was published on (for a parked copy,
	// the one its original was published on).
	Subject string
	// Parked says this is a parked copy of the job: it waited in
	// herald.ParkedStream for its next attempt.
	Parked bool
	// First says the job is sent before it is stored, by the request that
	// waits for it (Pool.SendFirst): the send holds none of the workers,
	// only that request, and Sequence is 0. A middleware that guards the
	// workers may let it by; one that would hold it should refuse it at
	// once instead, and the job is stored.
	First bool
	// Notification is the job with its credentials opened. It is set by the
	// Pool's open step, which runs before any Deps.Middlewares, and it is
	// cleared once the attempt ends: plaintext credentials live only for the
	// duration of one attempt.
	Notification herald.Notification

	// dest is the job's destination key (Deps.Destination), taken before
	// the credentials are cleared when the Pool may need it: to count the
	// job's parks.
	dest string
	// parkAt is the token (and time) the job is to be parked for; zero when
	// it is not parked.
	parkAt time.Time
	// holder is this copy's identity when it holds the job (it took a
	// park's token): its records are written held, so that it is let
	// through should it come back.
	holder string
	// priorFailures is the failed attempts the job had before it was
	// stored (SentFirstHeader): counted when no status record says more.
	priorFailures int
}

// Handler handles one delivery attempt. Its error is the attempt's outcome,
// classified as Sender documents; ctx ends at shutdown once
// Config.DrainTimeout has passed.
type Handler func(ctx context.Context, d *Delivery) error

// Middleware wraps a Handler with behaviour before and after it (recovery,
// breakers, pacing). Middlewares compose with chain: the first is outermost.
type Middleware func(Handler) Handler

// chain wraps h in mws, the first outermost: chain(h, a, b) is a(b(h)).
func chain(h Handler, mws ...Middleware) Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}
