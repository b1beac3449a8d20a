package consumer

import (
	"context"

	"github.com/heraldrelay/herald"
)

// Sender delivers one notification. channels.Discord and channels.Telegram
// satisfy it.
//
// Send must honour ctx (the Pool bounds it with Config.SendTimeout and
// cancels it at shutdown) and be safe for concurrent use. Its error decides
// the job's fate: nil means delivered; a *herald.RetryAfterError means "again
// after exactly that long"; an error wrapping herald.ErrPermanent means never
// again; anything else is transient and retried with backoff. Error texts are
// logged and stored in status records, so they must carry no credential.
type Sender interface {
	Send(ctx context.Context, n herald.Notification) error
}

// StatusWriter records job status; status.Store satisfies it. It must be safe
// for concurrent use. A failed write is logged and counted, and never changes
// what happens to the job.
type StatusWriter interface {
	Put(ctx context.Context, rec herald.Status) error
}

// Delivery is one delivery attempt of a job. A Pool builds one per received
// message and passes it down the handler chain; middlewares may read it and
// fill in what they learn, and must not keep it after they return.
type Delivery struct {
	// Job is the decoded job. Its ID is always set: a job published without
	// one takes its Nats-Msg-Id header (when that is a valid id) or
	// "seq-<stream sequence>".
	Job herald.Job
	// Attempt is JetStream's delivery count for the message, from 1. A job put
	// back at shutdown without being tried still counts one.
	Attempt int
	// Sequence is the message's sequence number in the jobs stream.
	Sequence uint64
	// Subject is the subject the job was published on.
	Subject string
	// Notification is the job with its credentials opened. It is set by the
	// Pool's open step, which runs before any Deps.Middlewares, and it is
	// cleared once the attempt ends: plaintext credentials live only for the
	// duration of one attempt.
	Notification herald.Notification
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
