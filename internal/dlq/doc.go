// Package dlq keeps Herald's dead letters: jobs that will never be delivered
// (a permanent error, a spent retry budget, a job that cannot be decoded or
// whose credentials do not open), stored in the herald.DeadLetterStream
// stream on herald.DeadLetterSubject(channel) so an operator can inspect,
// replay or purge them.
//
// A dead letter is the job exactly as it was stored in the jobs stream, its
// credentials still sealed: nothing in this package opens a credential, and
// nothing it prints or returns as JSON shows even the sealed value (see
// Letter). Why the job died travels in the Herald-* headers (see HeaderReason
// and the constants beside it).
//
// Writer is the consumer's side (it satisfies consumer.DeadLetterer); Store
// is the operator's (List, Get, Replay, Purge), used by `herald dlq` and the
// admin HTTP API.
package dlq
