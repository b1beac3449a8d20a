package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/nats-io/nats.go/jetstream"
)

// process handles one message from receipt to ack: decode, run the handler
// chain, settle. ctx is the Pool's work context.
func (p *Pool) process(ctx context.Context, m jetstream.Msg) {
	start := time.Now()
	p.metrics.InFlight.Inc()
	defer p.metrics.InFlight.Dec()

	// Keep the job ours until it is acked (or put back), so a slow send or
	// status write is not redelivered to another worker meanwhile; settle
	// stops it just before.
	stop := keepAlive(m, p.cfg.AckWait/3, p.log)

	d := &Delivery{Subject: m.Subject()}
	meta, err := m.Metadata()
	if err != nil {
		// Not a JetStream message (it cannot be acked either): nothing to do
		// but say so. Only a misconfigured consumer delivers these.
		p.log.LogAttrs(ctx, slog.LevelError, "delivery",
			slog.String("subject", d.Subject),
			slog.String("outcome", outcomeFailed),
			slog.String("error", fmt.Sprintf("consumer: message metadata: %s", err.Error())))
		stop()
		return
	}
	d.Attempt = int(meta.NumDelivered)
	d.Sequence = meta.Sequence.Stream

	job, decodeErr := herald.DecodeJob(m.Data())
	d.Job = job
	headers := m.Headers()
	token := parkedToken(headers)
	if d.Parked = !token.IsZero(); d.Parked {
		if s := headers.Get(SubjectHeader); s != "" {
			d.Subject = s
		}
	}
	idHeader := headers.Get(JobIDHeader)
	if idHeader == "" {
		idHeader = headers.Get(jetstream.MsgIDHeader)
	}
	d.Job.ID = jobID(job.ID, idHeader, d.Sequence)
	budget, fromHeader := budgetStart(headers, job.CreatedAt, meta.Timestamp)
	d.BudgetStart = budget.UTC()
	// A job tried before it was stored (SendFirst) carries what that
	// attempt learned.
	first, sentFirst := parseSentFirst(headers)
	d.priorFailures = first.Failures
	d.Failures = first.Failures
	switch p.admit(d, fromHeader, token) {
	case admitDrop:
		stop()
		p.dropStale(m, d)
		return
	case admitLater:
		stop()
		p.putBack(m, d)
		return
	}
	if d.Attempt == 1 && !d.Parked && headers.Get(ReplaysHeader) != "" {
		p.metrics.Replayed.WithLabelValues(channelLabel(d)).Inc()
	}
	switch subjectChannel := herald.SubjectChannel(d.Subject); {
	case decodeErr != nil:
		// It can never succeed. The error ("invalid job: field …") names
		// the field, never the body.
		err = withCause(CauseUndecodable, decodeErr)
	case subjectChannel.Valid() && subjectChannel != job.Channel:
		// The subject is where operators, permissions and pacing expect a
		// channel's jobs: a job must not ride on another channel's.
		err = withCause(CauseUndecodable, fmt.Errorf("%w: channel %s published on %s, a subject of channel %s",
			herald.ErrInvalidJob, job.Channel, d.Subject, subjectChannel))
	default:
		if prior, held := first.priorOutcome(d, time.Now()); sentFirst && held {
			err = p.hold(ctx, d, prior)
			break
		}
		err = p.handler(ctx, d)
	}
	if p.dest != nil && d.Notification.Channel.Valid() && (d.Parked || (err != nil && !errors.Is(err, herald.ErrPermanent))) {
		// Only when the job may be parked, or came back from a park: it is
		// an HMAC of the credentials, not worth it on every delivery.
		d.dest = p.dest(d.Notification)
	}
	if d.Parked && p.caps != nil {
		p.caps.done(d.dest)
	}
	// Plaintext credentials live no longer than the attempt.
	d.Notification = herald.Notification{}
	p.settle(ctx, m, d, err, time.Since(start), stop)
}

// dropStale acks a copy of a job that another copy has taken or settled
// (see admit): sending it would send the job twice.
func (p *Pool) dropStale(m jetstream.Msg, d *Delivery) {
	p.metrics.StaleCopies.Inc()
	extra := []slog.Attr{slog.String("reason", "another copy of the job took it or settled it")}
	if err := m.Ack(); err != nil {
		extra = append(extra, slog.String("ack_error", err.Error()))
	}
	p.logOutcomeAt(slog.LevelInfo, d, outcomeStale, d.Failures, 0, nil, extra...)
}

// putBack returns a job whose record could not be read or taken to the
// queue, after a backoff; nothing was tried and no attempt is used.
func (p *Pool) putBack(m jetstream.Msg, d *Delivery) {
	delay := p.backoff(1)
	extra := []slog.Attr{slog.String("reason", "status record unavailable"), slog.Int64("delay_ms", delay.Milliseconds())}
	if err := m.NakWithDelay(delay); err != nil {
		extra = append(extra, slog.String("ack_error", err.Error()))
	}
	p.metrics.Retries.WithLabelValues(channelLabel(d), reasonTransient).Inc()
	p.logOutcome(d, outcomeRetry, d.Failures, 0, nil, extra...)
}

// jobID returns the id of a job: its own when valid, else the message's
// Herald-Job-Id or Nats-Msg-Id when that is a valid id (so it can key a status record), else
// "seq-<stream sequence>".
func jobID(own, msgID string, seq uint64) string {
	switch {
	case herald.ValidID(own):
		return own
	case herald.ValidID(msgID):
		return msgID
	default:
		return "seq-" + strconv.FormatUint(seq, 10)
	}
}

// openCredentials is the middleware that opens the job's credentials into
// d.Notification before anything below it runs. A credential that does not
// open can never succeed (wrong key, corrupted), so its error is permanent,
// dead-letter cause "credentials"; crypto's error texts never include the
// input. A job naming a vault credential (CredentialID) has it resolved
// through Deps.Credentials instead (see resolveCredential).
func (p *Pool) openCredentials(next Handler) Handler {
	return func(ctx context.Context, d *Delivery) error {
		n := herald.Notification{JobID: d.Job.ID, Channel: d.Job.Channel, Message: d.Job.Message}
		if d.Job.CredentialID != "" {
			d.Notification = n
			if err := p.resolveCredential(ctx, d); err != nil {
				return err
			}
			return next(ctx, d)
		}
		c := d.Job.Credentials
		var err error
		switch d.Job.Channel {
		case herald.ChannelDiscord:
			if n.Target.WebhookURL, err = p.keys.Open(c.Webhook); err != nil {
				return withCause(CauseCredentials, fmt.Errorf("consumer: open credentials.webhook: %w", err))
			}
		case herald.ChannelTelegram:
			if n.Target.BotToken, err = p.keys.Open(c.BotToken); err != nil {
				return withCause(CauseCredentials, fmt.Errorf("consumer: open credentials.bot_token: %w", err))
			}
			if n.Target.ChatID, err = p.keys.Open(c.ChatID); err != nil {
				return withCause(CauseCredentials, fmt.Errorf("consumer: open credentials.chat_id: %w", err))
			}
		default:
			// Decode validated the channel; this guards a future channel
			// added to herald but not here.
			return withCause(CauseUndecodable, fmt.Errorf("consumer: channel %q has no credentials to open", d.Job.Channel))
		}
		d.Notification = n
		return next(ctx, d)
	}
}

// send is the innermost handler: one call to the channel's Sender, bounded by
// SendTimeout.
func (p *Pool) send(ctx context.Context, d *Delivery) error {
	ch := d.Notification.Channel
	s, ok := p.senders[ch]
	if !ok {
		// Transient on purpose: the operator can configure the channel, and
		// the job waits for it instead of being failed.
		return fmt.Errorf("consumer: no sender configured for channel %s", ch)
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.SendTimeout)
	defer cancel()
	start := time.Now()
	err := s.Send(ctx, d.Notification)
	p.metrics.SendDuration.WithLabelValues(string(ch)).Observe(time.Since(start).Seconds())
	return err
}

// keepAlive tells JetStream every interval that m is still being worked on,
// until the returned stop is called (stop is idempotent).
func keepAlive(m jetstream.Msg, every time.Duration, log *slog.Logger) (stop func()) {
	var (
		mu      sync.Mutex
		stopped bool
		t       *time.Timer
	)
	mu.Lock()
	defer mu.Unlock()
	t = time.AfterFunc(every, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		if err := m.InProgress(); err != nil {
			// Worst case the job is redelivered while this send runs: a
			// duplicate, never a loss.
			log.LogAttrs(context.Background(), slog.LevelWarn, "in progress",
				slog.String("subject", m.Subject()), slog.String("error", err.Error()))
		}
		t.Reset(every)
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}

// channelLabel returns a metric label for d's channel from a fixed set: the
// job's channel, else the one its subject names, else "unknown".
func channelLabel(d *Delivery) string {
	if d.Job.Channel.Valid() {
		return string(d.Job.Channel)
	}
	if c := herald.SubjectChannel(d.Subject); c.Valid() {
		return string(c)
	}
	return "unknown"
}
