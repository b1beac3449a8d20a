// Package publisher publishes herald.Jobs to JetStream. Herald's ingest uses
// it, and so can any Go backend that wants to hand Herald notifications
// without going through HTTP.
//
// A job is JSON (see herald.Job, Version herald.JobVersion) published to
// herald.JobIDSubject(job.Channel, job.ID) with a Nats-Msg-Id header, so a
// retried publish inside the stream's duplicate window stores the job once.
// The subject per job lets Herald's status lookup answer "queued" for a job
// still in the stream without a status write of its own. Its
// credentials must be sealed with the same keyring Herald's consumers open
// them with:
//
//	nc, err := nats.Connect("nats://127.0.0.1:4222")
//	if err != nil { ... }
//	defer nc.Drain()
//	js, err := jetstream.New(nc)
//	if err != nil { ... }
//	ring, err := crypto.NewKeyring(os.Getenv("HERALD_ENCRYPTION_KEYS"))
//	if err != nil { ... }
//	webhook, err := ring.Seal("https://discord.com/api/webhooks/123/abc")
//	if err != nil { ... }
//
//	pub := publisher.New(js)
//	job := &herald.Job{
//		Channel:     herald.ChannelDiscord,
//		Source:      "billing",
//		Credentials: herald.Credentials{Webhook: webhook},
//		Message:     herald.Message{Title: "Invoice paid", Text: "#1234, 12.00 EUR"},
//	}
//	res, err := pub.Publish(ctx, job)
//	switch {
//	case errors.Is(err, herald.ErrInvalidJob): // fix the job; nothing was sent
//	case errors.Is(err, publisher.ErrNotStored): // not stored: retry later
//	case err != nil:
//	default: // stored as res.ID (res.Duplicate: stored by an earlier publish)
//	}
package publisher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrNotStored is wrapped by every Publish error after which the job is not
// known to be stored in JetStream (no acknowledgement: server down, stream
// full, timeout, context ended). An HTTP front end answers 503 for it.
var ErrNotStored = errors.New("job not stored")

// msgPublisher is the one method Publisher needs; jetstream.JetStream
// satisfies it.
type msgPublisher interface {
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

var _ msgPublisher = jetstream.JetStream(nil)

// Publisher publishes jobs. It is safe for concurrent use.
type Publisher struct {
	js  msgPublisher
	now func() time.Time
}

// New returns a Publisher that publishes through js (usually a
// jetstream.JetStream, whose connection the caller owns and closes).
func New(js msgPublisher) *Publisher {
	return &Publisher{js: js, now: time.Now}
}

// Option adjusts one Publish call.
type Option func(*options)

type options struct {
	msgID    string
	msgIDSet bool
	header   nats.Header
}

// WithMsgID sets the Nats-Msg-Id used for deduplication instead of the job id,
// typically a client's idempotency key. id must be non-empty and free of
// control characters; Publish rejects it otherwise.
func WithMsgID(id string) Option {
	return func(o *options) { o.msgID, o.msgIDSet = id, true }
}

// WithHeader adds h's headers to the stored message (a Nats-Msg-Id in h is
// ignored: WithMsgID sets it).
func WithHeader(h nats.Header) Option {
	return func(o *options) { o.header = h }
}

// Result describes a stored job.
type Result struct {
	// ID is the job's id.
	ID string
	// Stream and Sequence locate the stored message.
	Stream   string
	Sequence uint64
	// Duplicate is true when the message id was seen inside the stream's
	// duplicate window: this publish stored nothing new, and Sequence is the
	// earlier message's.
	Duplicate bool
}

// maxMsgIDLen bounds a Nats-Msg-Id; the server keeps every id of the window in
// memory.
const maxMsgIDLen = 256

// Publish stores job in JetStream and returns once the server acknowledged it.
//
// It first completes job in place: Version becomes herald.JobVersion when 0,
// ID a fresh herald.NewID() when empty, CreatedAt the current UTC time when
// zero. It then validates the job; a validation error (or an invalid
// WithMsgID) wraps herald.ErrInvalidJob and is returned before anything is
// sent. The job is encoded as JSON and published to
// herald.JobIDSubject(job.Channel, job.ID) with header Nats-Msg-Id (the job
// id, or the WithMsgID value).
//
// Any failure to obtain an acknowledgement wraps ErrNotStored (and the cause,
// for example context.DeadlineExceeded): the job is then not stored, or at
// least not known to be, and publishing it again with the same message id is
// safe inside the duplicate window. ctx bounds the whole wait; without a
// deadline the JetStream client's default timeout applies.
func (p *Publisher) Publish(ctx context.Context, job *herald.Job, opts ...Option) (Result, error) {
	if job == nil {
		return Result{}, fmt.Errorf("publisher: %w: nil job", herald.ErrInvalidJob)
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if job.Version == 0 {
		job.Version = herald.JobVersion
	}
	if job.ID == "" {
		job.ID = herald.NewID()
	}
	if job.CreatedAt.IsZero() {
		job.CreatedAt = p.now().UTC()
	}
	if err := job.Validate(); err != nil {
		return Result{}, fmt.Errorf("publisher: %w", err)
	}
	msgID := job.ID
	if o.msgIDSet {
		if err := validMsgID(o.msgID); err != nil {
			return Result{}, err
		}
		msgID = o.msgID
	}

	data, err := herald.EncodeJob(job)
	if err != nil {
		return Result{}, fmt.Errorf("publisher: job %s: %w", job.ID, err)
	}
	msg := &nats.Msg{
		Subject: herald.JobIDSubject(job.Channel, job.ID),
		Header:  nats.Header{jetstream.MsgIDHeader: []string{msgID}},
		Data:    data,
	}
	for k, vs := range o.header {
		if k != jetstream.MsgIDHeader {
			msg.Header[k] = vs
		}
	}
	ack, err := p.js.PublishMsg(ctx, msg)
	if err != nil {
		return Result{}, fmt.Errorf("publisher: publish job %s: %w: %w", job.ID, ErrNotStored, err)
	}
	if ack == nil {
		return Result{}, fmt.Errorf("publisher: publish job %s: %w: no acknowledgement", job.ID, ErrNotStored)
	}
	return Result{ID: job.ID, Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

func validMsgID(id string) error {
	if id == "" {
		return fmt.Errorf("publisher: %w: empty message id", herald.ErrInvalidJob)
	}
	if len(id) > maxMsgIDLen {
		return fmt.Errorf("publisher: %w: message id longer than %d bytes", herald.ErrInvalidJob, maxMsgIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("publisher: %w: message id contains a control character", herald.ErrInvalidJob)
		}
	}
	return nil
}
