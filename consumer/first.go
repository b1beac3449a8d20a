package consumer

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/metrics"
	"github.com/nats-io/nats.go"
)

// SentFirstHeader is set on a job that a worker tried before it was stored
// (Pool.SendFirst) and that was stored because that attempt did not deliver
// it. Its value is JSON (sentFirst): the failed attempts it already had, how
// long its first delivery must wait, and, when the destination refused it
// for good, the refusal, so that it is dead-lettered without being sent
// again. A job published without it is handled as it always was.
const SentFirstHeader = "Herald-Sent-First"

// sentFirst is the value of SentFirstHeader.
type sentFirst struct {
	// Failures is the failed attempts the job already had: the budget
	// (Config.MaxAttempts) counts them.
	Failures int `json:"failures,omitempty"`
	// RetryAt is when the job may be tried again: its first delivery from
	// the jobs stream waits until then (the backoff after a failure, or the
	// destination's retry_after), without using an attempt.
	RetryAt time.Time `json:"retry_at,omitzero"`
	// Reason is that wait's reason (reasonTransient, reasonRetryAfter).
	Reason string `json:"reason,omitempty"`
	// Error is the attempt's error text.
	Error string `json:"error,omitempty"`
	// Cause, when set, says the destination refused the job for good: it is
	// dead-lettered with this cause (and Error as its reason, Status as its
	// status code) and never sent again.
	Cause  string `json:"cause,omitempty"`
	Status int    `json:"status,omitempty"`
}

// causes are the dead-letter causes a SentFirstHeader may name (it ends up
// in a metric label).
var causes = []string{CausePermanent, CauseBudgetExhausted, CauseMaxAge, CauseWaitBeyondMaxAge,
	CauseUndecodable, CauseCredentials, CauseInvalid, CauseParkLimit}

// parseSentFirst reads h's SentFirstHeader; the zero value when there is
// none, or when it does not parse (it is then ignored: the job is sent as
// any other).
func parseSentFirst(h nats.Header) (sentFirst, bool) {
	v := h.Get(SentFirstHeader)
	if v == "" {
		return sentFirst{}, false
	}
	var sf sentFirst
	if err := json.Unmarshal([]byte(v), &sf); err != nil {
		return sentFirst{}, false
	}
	sf.Failures = max(sf.Failures, 0)
	if sf.Cause != "" && !slices.Contains(causes, sf.Cause) {
		sf.Cause = CausePermanent
	}
	if sf.Reason != reasonRetryAfter {
		sf.Reason = reasonTransient
	}
	return sf, true
}

// header is sf as a message header.
func (sf sentFirst) header() nats.Header {
	v, err := json.Marshal(sf)
	if err != nil { // cannot happen: plain fields
		return nil
	}
	return nats.Header{SentFirstHeader: []string{string(v)}}
}

// priorError is the error of the attempt made before the job was stored,
// as its SentFirstHeader tells it.
type priorError struct {
	reason string // reasonTransient or reasonRetryAfter
	text   string
	status int
}

func (e *priorError) Error() string { return e.text }

// Unwrap makes herald.StatusCode find the destination's status.
func (e *priorError) Unwrap() error {
	if e.status == 0 {
		return nil
	}
	return &herald.DestinationError{StatusCode: e.status}
}

// priorOutcome is the error that settles a stored job's delivery from what
// its attempt before storing learned, without sending (held false: send
// it): a refusal for good, or a wait until RetryAt on its first delivery.
func (sf sentFirst) priorOutcome(d *Delivery, now time.Time) (err error, held bool) {
	prior := &priorError{reason: sf.Reason, text: sf.Error, status: sf.Status}
	switch {
	case sf.Cause != "":
		return withCause(sf.Cause, prior), true
	case d.Attempt <= 1 && !d.Parked && sf.RetryAt.After(now):
		return &herald.RetryAfterError{After: sf.RetryAt.Sub(now), Err: prior}, true
	}
	return nil, false
}

// hold runs the start of the handler chain (panic recovery, opening the
// credentials, so that the job's destination is known for its parking
// caps) and returns err instead of sending.
func (p *Pool) hold(ctx context.Context, d *Delivery, err error) error {
	h := chain(func(context.Context, *Delivery) error { return err }, recoverer(p.log), p.openCredentials)
	return h(ctx, d)
}

// SendFirst tries to deliver job now, before it is stored, through the same
// handler chain as a job taken from the jobs stream (open credentials,
// breakers, the hung-destination gate, pacing, the send bounded by
// SendTimeout), so that a request waiting for its outcome costs no store,
// delivery, ack and deletion when the destination takes it at once. It
// runs on the caller's goroutine, apart from the Workers: it is tried only
// while the Pool has not stopped and fewer than Config.FirstSends jobs are
// being sent first, never waiting for a place.
//
// It returns delivered true when the destination took the job: there is
// nothing to store. Otherwise the caller must store the job as usual; when
// the attempt was made and failed, or was answered with a 429, carry holds
// the SentFirstHeader the stored job must carry, so that its failed
// attempt counts, its first delivery waits as long as a redelivery would
// have, and a refusal for good is dead-lettered without a second send.
// An attempt that sent nothing (pacing, an open breaker) or was not made
// returns a nil carry.
//
// Job must be complete (ID, Channel; CreatedAt is set to now when zero, and
// the stored job must keep it). ctx bounds the attempt; it should outlive
// the client (a send is not abandoned halfway).
func (p *Pool) SendFirst(ctx context.Context, job *herald.Job) (delivered bool, carry nats.Header) {
	channel := string(job.Channel)
	if !job.Channel.Valid() {
		channel = "unknown"
	}
	if p.stopping.Load() || !job.Channel.Valid() {
		p.metrics.SentFirst.WithLabelValues(channel, metrics.SentFirstSkipped).Inc()
		return false, nil
	}
	if p.sendingFirst.Add(1) > int64(p.cfg.FirstSends) {
		p.sendingFirst.Add(-1)
		p.metrics.SentFirst.WithLabelValues(channel, metrics.SentFirstSkipped).Inc()
		return false, nil
	}
	defer p.sendingFirst.Add(-1)
	p.metrics.InFlight.Inc()
	defer p.metrics.InFlight.Dec()

	start := time.Now()
	if job.CreatedAt.IsZero() {
		job.CreatedAt = start.UTC()
	}
	d := &Delivery{Job: *job, Subject: herald.JobIDSubject(job.Channel, job.ID), BudgetStart: job.CreatedAt, First: true}
	err := p.handler(ctx, d)
	// Plaintext credentials live no longer than the attempt.
	d.Notification = herald.Notification{}
	elapsed := time.Since(start)
	dec := decide(err, 0, time.Since(d.BudgetStart), p.cfg, p.backoff)
	if dec.action == actAck {
		p.metrics.SentFirst.WithLabelValues(channel, metrics.SentFirstDelivered).Inc()
		p.metrics.Deliveries.WithLabelValues(channel, outcomeDelivered).Inc()
		p.metrics.DeliveryLatency.WithLabelValues(channel).Observe(time.Since(job.CreatedAt).Seconds())
		p.logOutcome(d, outcomeDelivered, 0, elapsed, nil, slog.Bool("sent_first", true))
		return true, nil
	}
	p.metrics.SentFirst.WithLabelValues(channel, metrics.SentFirstStored).Inc()
	// The stored job's first delivery settles what this attempt learned:
	// it is counted and logged there, once.
	switch {
	case dec.action == actTerm:
		return false, sentFirst{Cause: dec.reason, Error: dec.why, Status: herald.StatusCode(err)}.header()
	case dec.reason == reasonTransient || dec.reason == reasonRetryAfter:
		return false, sentFirst{
			Failures: dec.failures,
			RetryAt:  time.Now().Add(dec.delay).UTC(),
			Reason:   dec.reason,
			Error:    oneLine(err.Error(), maxDeadReason),
		}.header()
	}
	// Paced or held by an open breaker: nothing was sent, and the stored
	// job's delivery asks again.
	return false, nil
}
