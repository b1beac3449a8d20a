package dlq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/consumer"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// UnknownChannel is the channel of a dead letter whose job names no valid
// channel (an undecodable job): herald.dlq.unknown.
const UnknownChannel herald.Channel = "unknown"

// msgPublisher is the one method Writer needs; jetstream.JetStream satisfies
// it.
type msgPublisher interface {
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

var (
	_ msgPublisher          = jetstream.JetStream(nil)
	_ consumer.DeadLetterer = (*Writer)(nil)
)

// ErrNotStored is wrapped by every DeadLetter error: the dead letter is not
// known to be stored, so the original job must be kept.
var ErrNotStored = errors.New("dead letter not stored")

// Writer stores dead letters. It is safe for concurrent use.
type Writer struct {
	js msgPublisher
}

// NewWriter returns a Writer publishing through js (usually a
// jetstream.JetStream, whose connection the caller owns). The dead-letter
// stream must exist (see EnsureStream).
func NewWriter(js msgPublisher) *Writer { return &Writer{js: js} }

// DeadLetter stores msg as a dead letter and returns nil only once JetStream
// acknowledged it. The body is msg.Data() unchanged (the job, credentials
// still sealed: nothing is opened); it goes to
// herald.DeadLetterSubject(info.Channel), or herald.dlq.unknown when the
// channel is empty or not a known one.
//
// The letter keeps msg's headers except the Nats-* ones (its Nats-Msg-Id is
// kept as HeaderOriginalMsgID) and adds the Herald-* headers from info (see
// HeaderReason and the others), the reason made one line of at most
// MaxReasonBytes. Its Nats-Msg-Id is "dlq-<job id>-<original sequence>", so
// retrying DeadLetter for the same message within DuplicateWindow stores one
// letter. Every error wraps ErrNotStored. ctx bounds the call; DeadLetter
// neither acks nor keeps msg.
func (w *Writer) DeadLetter(ctx context.Context, msg jetstream.Msg, info consumer.DeadLetterInfo) error {
	if msg == nil {
		return fmt.Errorf("dlq: dead-letter job %s: %w: no message", info.JobID, ErrNotStored)
	}
	subject := info.Subject
	if subject == "" {
		subject = msg.Subject()
	}
	seq := info.Sequence
	if seq == 0 {
		if meta, err := msg.Metadata(); err == nil {
			seq = meta.Sequence.Stream
		}
	}
	out := &nats.Msg{
		Subject: herald.DeadLetterSubject(letterChannel(info.Channel)),
		Header:  nats.Header{},
		Data:    msg.Data(),
	}
	for k, vs := range msg.Headers() {
		if strings.HasPrefix(k, "Nats-") {
			continue
		}
		out.Header[k] = append([]string(nil), vs...)
	}
	if id := msg.Headers().Get(jetstream.MsgIDHeader); id != "" {
		out.Header.Set(HeaderOriginalMsgID, id)
	}
	h := out.Header
	h.Set(HeaderReason, oneLine(info.Reason, MaxReasonBytes))
	h.Set(HeaderCause, oneLine(info.Cause, 64))
	h.Del(HeaderStatusCode)
	if info.StatusCode != 0 {
		h.Set(HeaderStatusCode, strconv.Itoa(info.StatusCode))
	}
	h.Set(HeaderAttempts, strconv.Itoa(info.Attempts))
	setTime(h, HeaderFirstAttempt, info.FirstAttempt)
	setTime(h, HeaderLastAttempt, info.LastAttempt)
	h.Set(HeaderOriginalSubject, subject)
	h.Set(HeaderJobID, oneLine(info.JobID, 256))
	h.Set(HeaderOriginalSequence, strconv.FormatUint(seq, 10))
	h.Set(jetstream.MsgIDHeader, "dlq-"+oneLine(info.JobID, 128)+"-"+strconv.FormatUint(seq, 10))

	ack, err := w.js.PublishMsg(ctx, out)
	if err != nil {
		return fmt.Errorf("dlq: dead-letter job %s: %w: %w", info.JobID, ErrNotStored, err)
	}
	if ack == nil {
		return fmt.Errorf("dlq: dead-letter job %s: %w: no acknowledgement", info.JobID, ErrNotStored)
	}
	return nil
}

// letterChannel is c when it is a known channel, else UnknownChannel.
func letterChannel(c herald.Channel) herald.Channel {
	if c.Valid() {
		return c
	}
	return UnknownChannel
}

func setTime(h nats.Header, key string, t time.Time) {
	if t.IsZero() {
		h.Del(key)
		return
	}
	h.Set(key, t.UTC().Format(time.RFC3339Nano))
}
