package dlq

import (
	"strings"

	"github.com/heraldrelay/herald/consumer"
	"unicode/utf8"
)

// Headers of a dead letter. They are part of the operator's contract: other
// tools may read them straight from the stream. Times are RFC 3339 with
// nanoseconds, in UTC.
const (
	// HeaderReason is the human-readable reason the job died, one line, at
	// most MaxReasonBytes, never a secret.
	HeaderReason = "Herald-Reason"
	// HeaderCause is the machine-readable cause: permanent, budget_exhausted,
	// max_age, undecodable or credentials (consumer.Cause*).
	HeaderCause = "Herald-Cause"
	// HeaderStatusCode is the destination's last HTTP status; absent when
	// there was none.
	HeaderStatusCode = "Herald-Status-Code"
	// HeaderAttempts is the number of failed attempts.
	HeaderAttempts = "Herald-Attempts"
	// HeaderFirstAttempt is when the job's retry budget started.
	HeaderFirstAttempt = "Herald-First-Attempt"
	// HeaderLastAttempt is when the last attempt ended.
	HeaderLastAttempt = "Herald-Last-Attempt"
	// HeaderOriginalSubject is the job's subject in the jobs stream.
	HeaderOriginalSubject = "Herald-Original-Subject"
	// HeaderJobID is the job's id.
	HeaderJobID = "Herald-Job-Id"
	// HeaderOriginalSequence is the job's sequence in the jobs stream.
	HeaderOriginalSequence = "Herald-Original-Sequence"
	// HeaderOriginalMsgID is the job's own Nats-Msg-Id, kept because the
	// dead letter has its own.
	HeaderOriginalMsgID = "Herald-Original-Msg-Id"

	// HeaderBudgetStart is set on a replayed job: the consumer counts the
	// job's attempts and age from this time instead of Job.CreatedAt.
	HeaderBudgetStart = consumer.BudgetStartHeader
	// HeaderReplays counts how often a job was replayed from the dead
	// letters; a dead letter keeps the count of the job it holds.
	HeaderReplays = consumer.ReplaysHeader
)

// MaxReasonBytes bounds HeaderReason.
const MaxReasonBytes = 1024

// oneLine makes s a valid single-line header value of at most max bytes:
// control characters become spaces, runs of spaces collapse, and a cut never
// splits a UTF-8 sequence.
func oneLine(s string, max int) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return r == ' ' || r < 0x20 || r == 0x7f || r == utf8.RuneError
	}), " ")
	if len(s) <= max {
		return s
	}
	const ellipsis = "…"
	cut := max - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}
