package consumer

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/nats-io/nats.go/jetstream"
)

// Outcomes, as logged and as the Deliveries metric's outcome label.
const (
	outcomeDelivered = "delivered"
	outcomeRetry     = "retry"
	outcomeFailed    = "failed"
)

// Retry reasons, as the Retries metric's reason label.
const (
	reasonRetryAfter = "retry_after"
	reasonTransient  = "transient"
)

// statusWriteTimeout bounds one status write, so a slow KV cannot hold a
// worker; the write is best effort anyway.
const statusWriteTimeout = 5 * time.Second

// maxTermReason bounds the reason sent with Term (it ends up in a JetStream
// advisory).
const maxTermReason = 200

// action is what happens to a message.
type action int

const (
	actAck  action = iota + 1 // done: delete it from the work queue
	actNak                    // redeliver after delay
	actTerm                   // never redeliver
)

// decision is the fate of a message after one attempt.
type decision struct {
	action  action
	delay   time.Duration // actNak only
	state   herald.State  // the status record's new state
	outcome string        // outcomeDelivered, outcomeRetry or outcomeFailed
	reason  string        // retry reason, actNak only
}

// decide maps an attempt's error to the message's fate; it is the one place
// that does (STYLE.md §5). r is a uniform random number in [0, 1) for backoff
// jitter. cfg must have its defaults applied.
//
//   - nil: ack, delivered.
//   - *herald.RetryAfterError: redeliver after exactly After, capped at
//     MaxRetryAfter (after backoff when the destination gave no delay).
//   - herald.ErrPermanent: terminate, failed.
//   - anything else: redeliver after backoff for this attempt.
func decide(err error, attempt int, cfg Config, r float64) decision {
	var ra *herald.RetryAfterError
	switch {
	case err == nil:
		return decision{action: actAck, state: herald.StateDelivered, outcome: outcomeDelivered}
	case errors.As(err, &ra):
		delay := min(ra.After, cfg.MaxRetryAfter)
		if delay <= 0 {
			delay = backoffDelay(attempt, cfg.MinBackoff, cfg.MaxBackoff, r)
		}
		return decision{action: actNak, delay: delay, state: herald.StateDelivering, outcome: outcomeRetry, reason: reasonRetryAfter}
	case errors.Is(err, herald.ErrPermanent):
		return decision{action: actTerm, state: herald.StateFailed, outcome: outcomeFailed}
	default:
		return decision{
			action: actNak, delay: backoffDelay(attempt, cfg.MinBackoff, cfg.MaxBackoff, r),
			state: herald.StateDelivering, outcome: outcomeRetry, reason: reasonTransient,
		}
	}
}

// settle applies the attempt's outcome to m: ack, delayed nak or term, then
// the status record, metrics and one log line. An ack call that fails is
// logged and otherwise ignored: JetStream redelivers after AckWait, so the job
// is never lost. ctx is the Pool's work context; once it is cancelled
// (shutdown after DrainTimeout) a failed attempt is left unacked, because its
// failure is most likely the cancellation itself.
func (p *Pool) settle(ctx context.Context, m jetstream.Msg, d *Delivery, err error, elapsed time.Duration) {
	channel := channelLabel(d)
	if err != nil && ctx.Err() != nil {
		p.metrics.Deliveries.WithLabelValues(channel, outcomeRetry).Inc()
		p.metrics.Retries.WithLabelValues(channel, reasonTransient).Inc()
		p.logOutcome(d, outcomeRetry, elapsed, err, slog.String("ack", "none: abandoned at shutdown, redelivered after ack wait"))
		return
	}

	dec := decide(err, d.Attempt, p.cfg, p.jitter())
	if dec.action == actTerm {
		p.reject(m, d, err, elapsed)
		return
	}

	var ackErr error
	if dec.action == actAck {
		ackErr = m.Ack()
	} else {
		ackErr = m.NakWithDelay(dec.delay)
	}
	p.metrics.Deliveries.WithLabelValues(channel, dec.outcome).Inc()
	extra := []slog.Attr{}
	switch dec.action {
	case actAck:
		if !d.Job.CreatedAt.IsZero() {
			p.metrics.DeliveryLatency.WithLabelValues(channel).Observe(time.Since(d.Job.CreatedAt).Seconds())
		}
	case actNak:
		p.metrics.Retries.WithLabelValues(channel, dec.reason).Inc()
		if dec.reason == reasonRetryAfter {
			p.metrics.RateLimited.WithLabelValues(channel).Inc()
		}
		extra = append(extra, slog.String("reason", dec.reason), slog.Int64("delay_ms", dec.delay.Milliseconds()))
	}
	if ackErr != nil {
		extra = append(extra, slog.String("ack_error", ackErr.Error()))
	}
	p.logOutcome(d, dec.outcome, elapsed, err, extra...)
	p.putStatus(d, dec.state, err)
}

// reject ends a job that can never succeed: it terminates the message with a
// reason, records the job as failed, and logs it. Undecodable messages and
// permanent failures both come here, so this is the one place to change to
// keep such jobs (dead letters) instead of dropping them.
func (p *Pool) reject(m jetstream.Msg, d *Delivery, cause error, elapsed time.Duration) {
	var extra []slog.Attr
	if err := m.TermWithReason(termReason(cause)); err != nil {
		// Not lost: JetStream redelivers it after AckWait, and it is rejected
		// again.
		extra = append(extra, slog.String("ack_error", err.Error()))
	}
	p.metrics.Deliveries.WithLabelValues(channelLabel(d), outcomeFailed).Inc()
	p.logOutcome(d, outcomeFailed, elapsed, cause, extra...)
	p.putStatus(d, herald.StateFailed, cause)
}

// termReason is the one-line reason sent with Term.
func termReason(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) > maxTermReason {
		s = s[:maxTermReason]
	}
	return s
}

// logOutcome writes the one line per outcome: Info when delivered, Warn for a
// retry, Error when failed. Error texts come from channels and crypto, which
// keep credentials out of them; a herald.Target is never logged.
func (p *Pool) logOutcome(d *Delivery, outcome string, elapsed time.Duration, err error, extra ...slog.Attr) {
	level := slog.LevelInfo
	switch outcome {
	case outcomeRetry:
		level = slog.LevelWarn
	case outcomeFailed:
		level = slog.LevelError
	}
	attrs := make([]slog.Attr, 0, 8+len(extra))
	attrs = append(attrs,
		slog.String("job_id", d.Job.ID),
		slog.String("channel", channelLabel(d)),
		slog.String("outcome", outcome),
		slog.Int("attempt", d.Attempt),
		slog.Int64("duration_ms", elapsed.Milliseconds()),
		slog.String("subject", d.Subject),
		slog.Uint64("seq", d.Sequence),
	)
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	attrs = append(attrs, extra...)
	p.log.LogAttrs(context.Background(), level, "delivery", attrs...)
}

// putStatus records the job's state after an attempt. A failure is logged and
// counted and changes nothing else.
func (p *Pool) putStatus(d *Delivery, state herald.State, cause error) {
	if p.status == nil {
		return
	}
	rec := herald.Status{
		ID:        d.Job.ID,
		State:     state,
		Attempts:  d.Attempt,
		CreatedAt: d.Job.CreatedAt,
		UpdatedAt: time.Now().UTC(),
	}
	if d.Job.Channel.Valid() {
		rec.Channel = d.Job.Channel
	}
	if cause != nil {
		rec.LastError = cause.Error()
	}
	ctx, cancel := context.WithTimeout(context.Background(), statusWriteTimeout)
	defer cancel()
	if err := p.status.Put(ctx, rec); err != nil {
		p.metrics.StatusWriteFails.Inc()
		p.log.LogAttrs(ctx, slog.LevelWarn, "status write",
			slog.String("job_id", d.Job.ID), slog.String("state", string(state)), slog.String("error", err.Error()))
	}
}
