package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/heraldrelay/herald"
	"github.com/nats-io/nats.go/jetstream"
)

// Outcomes, as logged and as the Deliveries metric's outcome label.
const (
	outcomeDelivered = "delivered"
	outcomeRetry     = "retry"
	outcomeFailed    = "failed" // terminated without a dead letter (no Deps.DeadLetters)
	outcomeDead      = "dead"   // stored in the dead letters, then terminated
	outcomeStale     = "stale"  // a copy of a job another copy took or settled: dropped
)

// Retry reasons, as the Retries metric's reason label.
const (
	reasonRetryAfter  = "retry_after"  // the destination said when (429)
	reasonPaced       = "paced"        // herald.ErrPaced: Herald's own pacing
	reasonBreakerOpen = "breaker_open" // herald.ErrCircuitOpen
	reasonTransient   = "transient"    // a failed attempt: backoff
)

// statusWriteTimeout bounds one status write, so a slow KV cannot hold a
// worker; the write is best effort anyway.
const statusWriteTimeout = 5 * time.Second

// maxDeadLetterTimeout bounds the dead-letter hand-off. It is also kept under
// half of AckWait (see deadLetterTimeout): the job is kept in progress
// meanwhile, but a hand-off that slow is failing anyway.
const maxDeadLetterTimeout = 10 * time.Second

// maxTermReason bounds the reason sent with Term (it ends up in a JetStream
// advisory).
const maxTermReason = 200

// maxDeadReason bounds DeadLetterInfo.Reason and the status record's
// LastError for a dead job.
const maxDeadReason = 1000

// action is what happens to a message.
type action int

const (
	actAck  action = iota + 1 // done: delete it from the work queue
	actNak                    // redeliver after delay
	actTerm                   // never redeliver: dead-letter, then terminate
)

// decision is the fate of a message after one attempt.
type decision struct {
	action action
	delay  time.Duration // actNak only
	// state is the status record's new state: delivered, delivering, or dead
	// (actTerm; reject records failed instead when there are no dead letters).
	state herald.State
	// outcome is outcomeDelivered, outcomeRetry or outcomeDead.
	outcome string
	// reason is the retry reason label (actNak) or the dead-letter cause
	// label (actTerm).
	reason string
	// failures is the job's failed attempts, this one included.
	failures int
	// why is the dead letter's one-line human reason (actTerm only).
	why string
}

// decide maps an attempt's error to the message's fate; it is the one place
// that does (STYLE.md §5). failures is the job's failed attempts before this
// one (Delivery.Failures), age the time since its budget start, backoff the
// delay policy for transient failures. cfg must have its defaults applied.
//
//   - nil: ack, delivered.
//   - *herald.RetryAfterError: redeliver after exactly After, capped at
//     MaxRetryAfter (after backoff when it gives no delay), without using an
//     attempt; reason paced or breaker_open when Err is herald.ErrPaced or
//     herald.ErrCircuitOpen (Herald's own waits), else retry_after. A wait
//     that would end past MaxAge dead-letters the job at once
//     (wait_beyond_max_age).
//   - herald.ErrPermanent: dead-letter, cause from the error (permanent,
//     undecodable, credentials).
//   - anything else is a failed attempt: dead-letter when it is the
//     MaxAttempts-th (budget_exhausted) or the job is older than MaxAge
//     (max_age), else redeliver after backoff for this failure.
func decide(err error, failures int, age time.Duration, cfg Config, backoff backoffPolicy) decision {
	var ra *herald.RetryAfterError
	switch {
	case err == nil:
		return decision{action: actAck, state: herald.StateDelivered, outcome: outcomeDelivered, failures: failures}
	case errors.As(err, &ra):
		delay := min(ra.After, cfg.MaxRetryAfter)
		if delay <= 0 {
			delay = backoff(failures + 1)
		}
		if left := cfg.MaxAge - age; delay > left {
			return decision{
				action: actTerm, state: herald.StateDead, outcome: outcomeDead, reason: CauseWaitBeyondMaxAge, failures: failures,
				why: oneLine(fmt.Sprintf("asked to wait %s, more than the %s left of its %s age budget: %s",
					delay.Round(time.Second), max(left, 0).Round(time.Second), cfg.MaxAge, err.Error()), maxDeadReason),
			}
		}
		reason := reasonRetryAfter
		var prior *priorError
		switch {
		case errors.As(ra.Err, &prior):
			// The wait a job tried before it was stored carries over.
			reason = prior.reason
		case errors.Is(ra.Err, herald.ErrPaced):
			reason = reasonPaced
		case errors.Is(ra.Err, herald.ErrCircuitOpen):
			reason = reasonBreakerOpen
		}
		return decision{action: actNak, delay: delay, state: herald.StateDelivering, outcome: outcomeRetry, reason: reason, failures: failures}
	case errors.Is(err, herald.ErrPermanent):
		return decision{
			action: actTerm, state: herald.StateDead, outcome: outcomeDead, reason: causeOf(err),
			failures: failures + 1, why: oneLine(err.Error(), maxDeadReason),
		}
	}
	failures++
	switch {
	case failures >= cfg.MaxAttempts:
		return decision{
			action: actTerm, state: herald.StateDead, outcome: outcomeDead, reason: CauseBudgetExhausted, failures: failures,
			why: oneLine(fmt.Sprintf("retry budget spent after %d attempts: %s", failures, err.Error()), maxDeadReason),
		}
	case age > cfg.MaxAge:
		return decision{
			action: actTerm, state: herald.StateDead, outcome: outcomeDead, reason: CauseMaxAge, failures: failures,
			why: oneLine(fmt.Sprintf("older than %s: %s", cfg.MaxAge, err.Error()), maxDeadReason),
		}
	}
	return decision{
		action: actNak, delay: backoff(failures),
		state: herald.StateDelivering, outcome: outcomeRetry, reason: reasonTransient, failures: failures,
	}
}

// settle applies the attempt's outcome to m: the status record, then ack,
// delayed nak or dead letter, metrics and one log line. A delivered job's
// record and ack are written in the background (see below). An ack call that
// fails is logged and otherwise ignored: JetStream redelivers after AckWait,
// so the job is never lost. ctx is the Pool's work context; once it is cancelled
// (shutdown after DrainTimeout) a failed attempt is left unacked, because its
// failure is most likely the cancellation itself; it writes no status and
// uses no attempt. stopKeepAlive ends the job's InProgress updates; it is
// called just before the ack, nak or terminate, so that no status write or
// dead-letter hand-off lets AckWait run out.
func (p *Pool) settle(ctx context.Context, m jetstream.Msg, d *Delivery, err error, elapsed time.Duration, stopKeepAlive func()) {
	channel := channelLabel(d)
	if err != nil && ctx.Err() != nil {
		p.metrics.Deliveries.WithLabelValues(channel, outcomeRetry).Inc()
		p.metrics.Retries.WithLabelValues(channel, reasonTransient).Inc()
		stopKeepAlive()
		p.logOutcome(d, outcomeRetry, d.Failures, elapsed, err, slog.String("ack", "none: abandoned at shutdown, redelivered after ack wait"))
		return
	}

	var age time.Duration
	if !d.BudgetStart.IsZero() {
		age = time.Since(d.BudgetStart)
	}
	dec := decide(err, d.Failures, age, p.cfg, p.backoff)
	if dec.action == actNak && p.parking && d.Job.Channel.Valid() && dec.delay >= minPark {
		now := time.Now()
		at := parkTime(now, dec.delay)
		if scope := p.caps.take(d.dest, at, now); scope != "" {
			p.metrics.ParkRefused.WithLabelValues(channel, scope).Inc()
			limit := fmt.Sprintf("its destination already has %d jobs waiting (consumer.max_parked_per_destination)", p.cfg.MaxParkedPerDestination)
			if scope == parkScopeProcess {
				limit = fmt.Sprintf("this worker already has %d jobs waiting (consumer.max_parked)", p.cfg.MaxParked)
			}
			// actNak comes only from an error: err is the wait's reason.
			dec = decision{
				action: actTerm, state: herald.StateDead, outcome: outcomeDead, reason: CauseParkLimit, failures: dec.failures,
				why: oneLine(fmt.Sprintf("could not wait: %s: %s", limit, err.Error()), maxDeadReason),
			}
		} else {
			d.parkAt = at
		}
	}
	switch dec.action {
	case actTerm:
		p.reject(ctx, m, d, dec, err, elapsed, stopKeepAlive)
		return
	case actAck:
		// From the job's created_at, else from when the jobs stream stored
		// it (BudgetStart: for a parked copy or a replay, carried over).
		accepted := d.Job.CreatedAt
		if accepted.IsZero() {
			accepted = d.BudgetStart
		}
		if !accepted.IsZero() {
			p.metrics.DeliveryLatency.WithLabelValues(channel).Observe(time.Since(accepted).Seconds())
		}
		// The job is delivered; what is left is the status record and then
		// the ack, two writes whose round trips the worker need not wait
		// for: it takes its next job while a settler finishes this one.
		// There are 2*Workers settlers; when all are busy the worker waits,
		// so a slow status store slows delivery down instead of piling up
		// work. Run waits for them.
		// Whoever waits for the outcome in this process learns it now.
		taken := p.outcomes != nil && p.outcomes.Settle(p.statusRecord(d, dec.state, dec.failures, ""))
		p.delivered <- settlement{m: m, d: d, dec: dec, err: err, elapsed: elapsed, stopKeepAlive: stopKeepAlive, taken: taken}
		return
	}
	p.record(settlement{m: m, d: d, dec: dec, err: err, elapsed: elapsed, stopKeepAlive: stopKeepAlive})
}

// settlement is an attempt that is acked or put back, on its way to record:
// a delivered job's through a settler.
type settlement struct {
	m             jetstream.Msg
	d             *Delivery
	dec           decision
	err           error
	elapsed       time.Duration
	stopKeepAlive func()
	// taken says a request waiting in this process took the outcome of this
	// delivered job (see Settler): its record is not written.
	taken bool
}

// record writes the status record of an attempt that is acked or put back
// (dec.action actAck or actNak), then acks or naks m, counts and logs.
func (p *Pool) record(s settlement) {
	m, d, dec, err, elapsed := s.m, s.d, s.dec, s.err, s.elapsed
	channel := channelLabel(d)
	var lastErr string
	if err != nil {
		lastErr = err.Error()
	}
	// The record first. Before an ack: the ingest writes no "queued" record,
	// and a status lookup answers "queued" only while the job is in the
	// stream, so the job must have its record before it leaves. Before a nak:
	// the redelivery reads its failure count back, and may arrive as soon as
	// the delay is over. A delivered job whose outcome a waiting request
	// took has no reader for its record: none is written.
	var ackErr error
	parked := false
	if !d.parkAt.IsZero() {
		// Parked: the record, with the token, is written by park.
		rec := p.statusRecord(d, dec.state, dec.failures, lastErr)
		rec.NextAttemptAt = d.parkAt
		s.stopKeepAlive()
		switch err := p.park(m, d, rec, d.parkAt); {
		case err == nil:
			parked = true
		case errors.As(err, new(errAckAfterPark)):
			parked, ackErr = true, err
		default:
			// Not parked: wait in the consumer, as before parking existed.
			p.caps.done(d.dest)
			p.log.LogAttrs(context.Background(), slog.LevelWarn, "park",
				slog.String("job_id", d.Job.ID), slog.String("error", err.Error()))
		}
	} else {
		if !s.taken {
			p.putStatus(d, dec.state, dec.failures, lastErr)
		}
		s.stopKeepAlive()
	}
	switch {
	case parked:
	case dec.action == actAck && p.acks != nil:
		p.acks.in <- m // in the next burst; the acker logs a failure
	case dec.action == actAck:
		ackErr = m.Ack()
	default:
		ackErr = m.NakWithDelay(dec.delay)
	}
	p.metrics.Deliveries.WithLabelValues(channel, dec.outcome).Inc()
	extra := []slog.Attr{}
	if dec.action == actNak {
		p.metrics.Retries.WithLabelValues(channel, dec.reason).Inc()
		if dec.reason == reasonRetryAfter {
			// Only a destination's own 429; Herald's pacing and breakers
			// sent nothing.
			p.metrics.RateLimited.WithLabelValues(channel).Inc()
		}
		extra = append(extra, slog.String("reason", dec.reason), slog.Int64("delay_ms", dec.delay.Milliseconds()))
		if parked {
			extra = append(extra, slog.Time("parked_until", d.parkAt.Truncate(time.Second)))
		}
	}
	if ackErr != nil {
		extra = append(extra, slog.String("ack_error", ackErr.Error()))
	}
	if dec.reason == reasonPaced || dec.reason == reasonBreakerOpen {
		// Herald's own holds (pacing, open breakers) sent nothing and are
		// routine under load: Debug, or they would drown the real retries.
		p.logOutcomeAt(slog.LevelDebug, d, dec.outcome, dec.failures, elapsed, err, extra...)
		return
	}
	p.logOutcome(d, dec.outcome, dec.failures, elapsed, err, extra...)
}

// reject ends a job that will never be delivered (dec.action is actTerm):
// undecodable messages, credentials that do not open, permanent failures and
// spent retry budgets all come here.
//
// With Deps.DeadLetters the job is first handed to it, and terminated only
// once that succeeded: the status record says dead with the reason. If the
// hand-off fails the job is put back after a backoff and tried again when it
// returns (the failed hand-off counts as a failed attempt, so a job whose
// budget is spent is dead-lettered again at its next failure): it is never
// lost. Without Deps.DeadLetters the job is terminated at once and recorded
// as failed. So is a verification message (herald.SourceVerification): its
// destination is one a stranger typed into the registration page, and a
// dead letter and an error line for each would let the public fill both;
// it is logged at Info, and the registration simply stays unverified.
func (p *Pool) reject(ctx context.Context, m jetstream.Msg, d *Delivery, dec decision, cause error, elapsed time.Duration, stopKeepAlive func()) {
	channel := channelLabel(d)
	extra := []slog.Attr{slog.String("cause", dec.reason)}
	if verification := d.Job.Source == herald.SourceVerification; p.deadLetters == nil || verification {
		// The record before the terminate, which takes the job out of the
		// stream (see record).
		p.putStatus(d, herald.StateFailed, dec.failures, dec.why)
		stopKeepAlive()
		if err := m.TermWithReason(termReason(dec.why)); err != nil {
			// Not lost: JetStream redelivers it after AckWait, and it is
			// rejected again.
			extra = append(extra, slog.String("ack_error", err.Error()))
		}
		p.metrics.Deliveries.WithLabelValues(channel, outcomeFailed).Inc()
		level := slog.LevelError
		if verification {
			level = slog.LevelInfo
		}
		p.logOutcomeAt(level, d, outcomeFailed, dec.failures, elapsed, cause, extra...)
		return
	}

	info := DeadLetterInfo{
		JobID:        d.Job.ID,
		Channel:      herald.Channel(channel),
		Reason:       dec.why,
		Cause:        dec.reason,
		StatusCode:   herald.StatusCode(cause),
		Attempts:     dec.failures,
		FirstAttempt: d.BudgetStart,
		LastAttempt:  time.Now().UTC(),
		Subject:      d.Subject,
		Sequence:     d.Sequence,
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.deadLetterTimeout())
	dlErr := p.deadLetters.DeadLetter(dctx, m, info)
	cancel()
	if dlErr != nil {
		// Keep the job: it comes back after a backoff and is tried again.
		// The record first (see record).
		p.putStatus(d, herald.StateDelivering, dec.failures, "dead letter not stored, will retry: "+dec.why)
		delay := p.backoff(dec.failures)
		stopKeepAlive()
		if err := m.NakWithDelay(delay); err != nil {
			extra = append(extra, slog.String("ack_error", err.Error()))
		}
		p.metrics.DeadLetterFail.Inc()
		p.metrics.Deliveries.WithLabelValues(channel, outcomeRetry).Inc()
		extra = append(extra,
			slog.String("reason", "dead_letter_failed"),
			slog.String("dead_letter_error", dlErr.Error()),
			slog.Int64("delay_ms", delay.Milliseconds()))
		p.logOutcomeAt(slog.LevelError, d, outcomeRetry, dec.failures, elapsed, cause, extra...)
		return
	}
	// The record before the terminate, which takes the job out of the
	// stream (see record).
	p.putStatus(d, herald.StateDead, dec.failures, dec.why)
	stopKeepAlive()
	if err := m.TermWithReason(termReason(dec.why)); err != nil {
		// Redelivered after AckWait and dead-lettered again: a duplicate
		// dead letter (same sequence), never a loss.
		extra = append(extra, slog.String("ack_error", err.Error()))
	}
	p.metrics.DeadLettered.WithLabelValues(channel, dec.reason).Inc()
	p.metrics.Deliveries.WithLabelValues(channel, outcomeDead).Inc()
	extra = append(extra, slog.String("reason", dec.why))
	p.logOutcome(d, outcomeDead, dec.failures, elapsed, cause, extra...)
}

// deadLetterTimeout bounds one dead-letter hand-off: under half of AckWait,
// at most maxDeadLetterTimeout.
func (p *Pool) deadLetterTimeout() time.Duration {
	return min(maxDeadLetterTimeout, p.cfg.AckWait/2)
}

// termReason is the one-line reason sent with Term.
func termReason(why string) string { return oneLine(why, maxTermReason) }

// oneLine returns s with every run of white space (newlines included) made
// one space, cut to at most n bytes without splitting a UTF-8 sequence.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// logOutcome writes the one line per outcome: Info when delivered, Warn for a
// retry, Error when failed or dead. Error texts come from channels and crypto,
// which keep credentials out of them; a herald.Target is never logged.
func (p *Pool) logOutcome(d *Delivery, outcome string, failures int, elapsed time.Duration, err error, extra ...slog.Attr) {
	level := slog.LevelInfo
	switch outcome {
	case outcomeRetry:
		level = slog.LevelWarn
	case outcomeFailed, outcomeDead:
		level = slog.LevelError
	}
	p.logOutcomeAt(level, d, outcome, failures, elapsed, err, extra...)
}

// logOutcomeAt is logOutcome at a given level.
func (p *Pool) logOutcomeAt(level slog.Level, d *Delivery, outcome string, failures int, elapsed time.Duration, err error, extra ...slog.Attr) {
	// Called for every job: when the level is off (pacing holds at debug,
	// deliveries when log.level is warn), building the line would be most
	// of the cost.
	if !p.log.Enabled(context.Background(), level) {
		return
	}
	attrs := make([]slog.Attr, 0, 9+len(extra))
	attrs = append(attrs,
		slog.String("job_id", d.Job.ID),
		slog.String("channel", channelLabel(d)),
		slog.String("outcome", outcome),
		// attempts is the status record's "attempts" (failed attempts,
		// the retry budget spent); delivery is JetStream's delivery count,
		// which also counts waits and redeliveries.
		slog.Int("attempts", failures),
		slog.Int("delivery", d.Attempt),
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

// putStatus records the job's state after an attempt, with its failed
// attempts so far (the count a redelivery reads back, see Pool.failures) and
// lastErr. A failure is logged and counted and changes nothing else.
// A final record is handed to Deps.Outcomes first, unless it is a delivered
// one: settle hands those over as soon as the send returns, before the
// settler that writes them.
func (p *Pool) putStatus(d *Delivery, state herald.State, failures int, lastErr string) {
	if p.outcomes == nil && p.status == nil {
		return
	}
	rec := p.statusRecord(d, state, failures, lastErr)
	if p.outcomes != nil && state.Final() && state != herald.StateDelivered {
		p.outcomes.Settle(rec)
	}
	if p.status == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), statusWriteTimeout)
	defer cancel()
	var err error
	if ps, ok := p.status.(parkStore); ok && d.holder != "" {
		err = ps.PutHeld(ctx, rec, d.holder)
	} else {
		err = p.status.Put(ctx, rec)
	}
	if err != nil {
		p.metrics.StatusWriteFails.Inc()
		p.log.LogAttrs(ctx, slog.LevelWarn, "status write",
			slog.String("job_id", d.Job.ID), slog.String("state", string(state)), slog.String("error", err.Error()))
	}
}

// statusRecord is the job's record after an attempt.
func (p *Pool) statusRecord(d *Delivery, state herald.State, failures int, lastErr string) herald.Status {
	rec := herald.Status{
		ID:        d.Job.ID,
		State:     state,
		Attempts:  failures,
		LastError: lastErr,
		CreatedAt: d.Job.CreatedAt,
		UpdatedAt: time.Now().UTC(),
	}
	if d.Job.Channel.Valid() {
		rec.Channel = d.Job.Channel
	}
	return rec
}
