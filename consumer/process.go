package consumer

import (
	"context"
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
	d.Job.ID = jobID(job.ID, headers.Get(jetstream.MsgIDHeader), d.Sequence)
	budget, fromHeader := budgetStart(headers, job.CreatedAt, meta.Timestamp)
	d.BudgetStart = budget.UTC()
	d.Failures = p.failures(d, fromHeader)
	if d.Attempt == 1 && headers.Get(ReplaysHeader) != "" {
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
		err = p.handler(ctx, d)
	}
	// Plaintext credentials live no longer than the attempt.
	d.Notification = herald.Notification{}
	p.settle(ctx, m, d, err, time.Since(start), stop)
}

// jobID returns the id of a job: its own when valid, else the message's
// Nats-Msg-Id when that is a valid id (so it can key a status record), else
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
