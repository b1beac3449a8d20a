package herald

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// ErrPermanent marks a failure that can never succeed however often it is
// retried (deleted webhook, revoked token, blocked bot, a credential that does
// not open). Test with errors.Is(err, ErrPermanent).
var ErrPermanent = errors.New("permanent failure")

// ErrInvalidTarget marks a destination Herald refuses to send to at all (a
// URL that is not an allowed Discord webhook, a malformed bot token or chat
// id): the job's credentials are wrong, not the destination's answer.
// Channels wrap it with ErrPermanent; the consumer dead-letters such jobs
// with cause "invalid".
var ErrInvalidTarget = errors.New("invalid destination")

// Permanent wraps err so that errors.Is(result, ErrPermanent) holds while err
// stays reachable with errors.As. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string        { return e.err.Error() }
func (e *permanentError) Unwrap() error        { return e.err }
func (e *permanentError) Is(target error) bool { return target == ErrPermanent }

// ErrPaced is the Err of a RetryAfterError that Herald made itself because a
// destination's known rate limit would be exceeded (no request was sent).
var ErrPaced = errors.New("paced: waiting for the destination's rate limit")

// ErrCircuitOpen is the Err of a RetryAfterError that Herald made itself
// because the destination's circuit breaker is open (no request was sent).
var ErrCircuitOpen = errors.New("circuit open: destination failing, waiting before probing")

// RetryAfterError says the destination asked to be called again after After
// (Discord Retry-After / retry_after, Telegram parameters.retry_after). The job
// should wait exactly that long; the wait is not a failed attempt.
type RetryAfterError struct {
	After time.Duration
	// Global is true when the limit covers every destination of the channel
	// (Discord's global limit), not just this one.
	Global bool
	// Err is the destination's answer; it may be nil.
	Err error
}

func (e *RetryAfterError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("retry after %s", e.After)
	}
	return fmt.Sprintf("retry after %s: %s", e.After, e.Err.Error())
}

func (e *RetryAfterError) Unwrap() error { return e.Err }

// DestinationError is a destination's non-success answer. Its text carries the
// status, the destination's own error code and description, and never a
// credential: channels build it from the response, not from the request.
type DestinationError struct {
	Channel Channel
	// StatusCode is the HTTP status the destination answered with.
	StatusCode int
	// Code is the destination's own error code (Discord "code", Telegram
	// "error_code"), 0 when absent.
	Code int
	// Description is the destination's message, truncated, credentials removed.
	Description string
}

// Error reads as Streaky's proxy wrote its errors, "Discord API error: 404
// Not Found - Unknown Webhook (code 10015)", so that what users of the
// Streaky Worker match on keeps matching: the channel's name capitalized,
// the status, then " - " and the description, Herald's addition of the
// destination's own code last.
func (e *DestinationError) Error() string {
	s := fmt.Sprintf("%s API error: %d %s", e.Channel.Title(), e.StatusCode, http.StatusText(e.StatusCode))
	if e.Description != "" {
		s += " - " + e.Description
	}
	if e.Code != 0 && e.Code != e.StatusCode {
		s += fmt.Sprintf(" (code %d)", e.Code)
	}
	return s
}

// StatusCode returns the HTTP status of the DestinationError inside err, or 0.
func StatusCode(err error) int {
	var de *DestinationError
	if errors.As(err, &de) {
		return de.StatusCode
	}
	return 0
}
