package dlq

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/nats-io/nats.go"
)

// Letter is one dead letter as an operator sees it.
//
// Its JSON form (MarshalJSON) is what `herald dlq list --json` and the admin
// API print: every field but Raw, with the job's sealed credentials replaced
// by "sealed (N bytes)". A credential is never opened here; even the sealed
// value is left out to keep the output short and free of key material.
type Letter struct {
	// Seq is the letter's sequence in the dead-letter stream; "seq:<Seq>"
	// names it where an id is expected.
	Seq uint64 `json:"seq"`
	// JobID is the job's id (HeaderJobID, else the job's own).
	JobID string `json:"job_id"`
	// Channel is the channel the letter is filed under (its subject).
	Channel herald.Channel `json:"channel"`
	// Reason is why the job died, human-readable.
	Reason string `json:"reason"`
	// Cause is the machine-readable cause (consumer.Cause*).
	Cause string `json:"cause"`
	// StatusCode is the destination's last HTTP status, 0 when none.
	StatusCode int `json:"status_code,omitempty"`
	// Attempts is the number of failed attempts.
	Attempts int `json:"attempts"`
	// Replays is how often the job had been replayed before it died again.
	Replays int `json:"replays,omitempty"`
	// FirstAttempt and LastAttempt bound the job's attempts; zero when
	// unknown.
	FirstAttempt time.Time `json:"first_attempt,omitzero"`
	LastAttempt  time.Time `json:"last_attempt,omitzero"`
	// DeadAt is when the letter was stored.
	DeadAt time.Time `json:"dead_at"`
	// OriginalSubject and OriginalSeq locate the job in the jobs stream
	// before it died.
	OriginalSubject string `json:"original_subject,omitempty"`
	OriginalSeq     uint64 `json:"original_seq,omitempty"`
	// Job is the decoded job, credentials sealed. It is the zero Job when the
	// body is not a valid job; DecodeError then says why.
	Job herald.Job `json:"job"`
	// DecodeError is set when Raw is not a valid job; such a letter cannot
	// be replayed.
	DecodeError string `json:"decode_error,omitempty"`
	// Raw is the letter's body exactly as stored: what a replay republishes.
	Raw []byte `json:"-"`
}

// Decoded reports whether the letter holds a valid job (and so can be
// replayed).
func (l Letter) Decoded() bool { return l.DecodeError == "" }

// ID is the letter's id for Store.Get: its job id, or "seq:<Seq>" when it
// has none.
func (l Letter) ID() string {
	if l.JobID != "" {
		return l.JobID
	}
	return SeqID(l.Seq)
}

// SeqID returns the id naming the letter at stream sequence seq.
func SeqID(seq uint64) string { return seqPrefix + strconv.FormatUint(seq, 10) }

const seqPrefix = "seq:"

// MaskedJob returns the job with each sealed credential replaced by
// "sealed (N bytes)".
func (l Letter) MaskedJob() herald.Job {
	j := l.Job
	j.Credentials = herald.Credentials{
		Webhook:  mask(j.Credentials.Webhook),
		BotToken: mask(j.Credentials.BotToken),
		ChatID:   mask(j.Credentials.ChatID),
	}
	return j
}

func mask(sealed string) string {
	if sealed == "" {
		return ""
	}
	return fmt.Sprintf("sealed (%d bytes)", len(sealed))
}

// MarshalJSON encodes the letter with its credentials masked (see
// MaskedJob); a letter whose job did not decode has "job": null.
func (l Letter) MarshalJSON() ([]byte, error) {
	type plain Letter // drops this method
	out := struct {
		plain
		Job *herald.Job `json:"job"`
	}{plain: plain(l)}
	if l.Decoded() {
		j := l.MaskedJob()
		out.Job = &j
	}
	// Without HTML escaping, so that `herald dlq list --json` shows a
	// message's <b> as written (an encoder around this one cannot undo
	// escapes made here).
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// parseLetter builds a Letter from a stored message. It never fails: what
// cannot be read stays zero, and a body that is not a job sets DecodeError.
func parseLetter(seq uint64, subject string, h nats.Header, data []byte, stored time.Time) Letter {
	l := Letter{
		Seq:             seq,
		Channel:         herald.Channel(strings.TrimPrefix(subject, herald.DeadLetterSubjectPrefix)),
		JobID:           h.Get(HeaderJobID),
		Reason:          h.Get(HeaderReason),
		Cause:           h.Get(HeaderCause),
		StatusCode:      atoi(h.Get(HeaderStatusCode)),
		Attempts:        atoi(h.Get(HeaderAttempts)),
		Replays:         atoi(h.Get(HeaderReplays)),
		FirstAttempt:    parseTime(h.Get(HeaderFirstAttempt)),
		LastAttempt:     parseTime(h.Get(HeaderLastAttempt)),
		DeadAt:          stored.UTC(),
		OriginalSubject: h.Get(HeaderOriginalSubject),
		Raw:             data,
	}
	l.OriginalSeq, _ = strconv.ParseUint(h.Get(HeaderOriginalSequence), 10, 64)
	job, err := herald.DecodeJob(data)
	if err != nil {
		// Decode's error names the field at fault, never a credential.
		l.DecodeError = err.Error()
	} else {
		l.Job = job
		if l.JobID == "" {
			l.JobID = job.ID
		}
	}
	return l
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}
