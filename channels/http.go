package channels

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultTimeout is the total time one outbound call may take (connect, send,
// headers and body) when a channel is built without a client. Streaky's proxy
// used 10 s, and a Worker waits 15 s for the whole relay.
const DefaultTimeout = 10 * time.Second

// Limits on what is read from a destination's answer. Error bodies are small
// JSON documents; anything longer is cut (reading) or thrown away (draining),
// so a hostile or broken server cannot make the relay buffer much.
const (
	maxBodyRead  = 64 << 10
	maxBodyDrain = 64 << 10
)

// maxDescription caps DestinationError.Description, in characters.
const maxDescription = 200

// minRetryAfter is the shortest wait a 429 can produce: a retry_after of 0 (or
// a rounding artefact) must still not turn into an immediate redelivery loop.
const minRetryAfter = 10 * time.Millisecond

// NewHTTPClient returns the outbound client channels use: its own Transport (not
// http.DefaultTransport, so no other code shares or mutates it), keep-alive
// connections (as many as there are sends in flight) kept for 90 s idle, a TLS
// handshake timeout, HTTP/2 when the server offers it, Timeout as the total
// time of one call, and a CheckRedirect that never follows a redirect (the 3xx
// answer itself is returned), so the host allow-list cannot be bypassed by a
// redirect.
func NewHTTPClient(timeout time.Duration) *http.Client {
	tr := &http.Transport{
		// An operator may need an egress proxy; loopback destinations (tests)
		// never go through it.
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   30 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          maxIdleConns,
		MaxIdleConnsPerHost:   maxIdleConns, // one relay talks to very few hosts, a lot
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: 1 * time.Second,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: noRedirect,
	}
}

// maxIdleConns caps the keep-alive connections kept open. A relay never
// holds more idle connections than it had sends in flight at once (at most
// consumer.workers per process), so the cap costs nothing; it only has to
// stay above any worker count, or every send beyond it closes its connection
// and the next one dials (and, for Discord and Telegram, handshakes TLS) anew.
const maxIdleConns = 1024

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// clientOrDefault returns a copy of c that never follows redirects, whatever
// c's own CheckRedirect says, or NewHTTPClient(DefaultTimeout) when c is nil.
func clientOrDefault(c *http.Client) *http.Client {
	if c == nil {
		return NewHTTPClient(DefaultTimeout)
	}
	cp := *c
	cp.CheckRedirect = noRedirect
	return &cp
}

// transportError is a failed HTTP call with the request URL taken out. The
// *url.Error net/http returns prints the URL, which holds the webhook or bot
// token; transportError keeps only the cause (url.Error.Err), so errors.Is still
// sees context.DeadlineExceeded and context.Canceled and errors.As still finds
// a net.Error, while its text names no URL.
type transportError struct {
	msg   string
	cause error
}

func (e *transportError) Error() string { return e.msg }
func (e *transportError) Unwrap() error { return e.cause }

// Timeout reports whether the call timed out, like net.Error.Timeout.
func (e *transportError) Timeout() bool { return isTimeout(e.cause) }

// scrubTransport turns an error from http.Client.Do or from reading a body into
// one whose text contains no URL and none of secrets.
func scrubTransport(err error, secrets ...string) error {
	cause := err
	var ue *url.Error
	for errors.As(cause, &ue) {
		if ue.Err == nil {
			cause = errors.New(ue.Op + " failed")
			break
		}
		cause = ue.Err
	}
	msg := redact(cause.Error(), secrets...)
	if msg == "" {
		msg = "request failed"
	}
	if chainMentions(cause, secrets) {
		// Unwrapping must not reach the secret either: keep only what callers
		// branch on.
		cause = &redactedCause{msg: msg, timeout: isTimeout(cause), ctxErr: contextErr(cause)}
	}
	return &transportError{msg: msg, cause: cause}
}

// redactedCause stands in for a cause whose text held a secret.
type redactedCause struct {
	msg     string
	timeout bool
	ctxErr  error // context.DeadlineExceeded, context.Canceled or nil
}

func (e *redactedCause) Error() string { return e.msg }
func (e *redactedCause) Unwrap() error { return e.ctxErr }
func (e *redactedCause) Timeout() bool { return e.timeout }

func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}

func contextErr(err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return context.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return context.Canceled
	}
	return nil
}

// chainMentions reports whether any error reachable from err by unwrapping
// has one of secrets in its text.
func chainMentions(err error, secrets []string) bool {
	queue := []error{err}
	for len(queue) > 0 {
		e := queue[0]
		queue = queue[1:]
		if e == nil {
			continue
		}
		text := e.Error()
		for _, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				return true
			}
		}
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			queue = append(queue, u.Unwrap())
		case interface{ Unwrap() []error }:
			queue = append(queue, u.Unwrap()...)
		}
	}
	return false
}

// readBody reads at most maxBodyRead bytes of an answer.
func readBody(r io.Reader) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r, maxBodyRead))
}

// drainClose discards a bounded rest of body, so the connection can be reused
// when the rest is short, and closes it.
func drainClose(body io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, body, maxBodyDrain)
	_ = body.Close()
}

const redacted = "[redacted]"

// redact replaces every occurrence of each non-empty secret in s, longest
// first so that a secret containing another is removed whole.
func redact(s string, secrets ...string) string {
	ordered := make([]string, 0, len(secrets))
	for _, sec := range secrets {
		if sec != "" {
			ordered = append(ordered, sec)
		}
	}
	// Few secrets: insertion sort by descending length.
	for i := 1; i < len(ordered); i++ {
		for j := i; j > 0 && len(ordered[j]) > len(ordered[j-1]); j-- {
			ordered[j], ordered[j-1] = ordered[j-1], ordered[j]
		}
	}
	for _, sec := range ordered {
		s = strings.ReplaceAll(s, sec, redacted)
	}
	return s
}

// description cleans a destination's error text for DestinationError: secrets
// removed, control characters turned into spaces, at most maxDescription
// characters.
func description(s string, secrets ...string) string {
	s = redact(strings.ToValidUTF8(s, "\uFFFD"), secrets...)
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return truncateRunes(strings.TrimSpace(s), maxDescription)
}

// truncateRunes shortens s to at most n characters (runes), ending with "…"
// when anything was cut.
func truncateRunes(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i, count := 0, 0
	for i < len(s) && count < n-1 {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
		count++
	}
	return s[:i] + "…"
}

// clampRetryAfter bounds a destination's requested wait to [minRetryAfter, max].
// It takes seconds as a float so that a huge or non-finite value cannot
// overflow a time.Duration.
func clampRetryAfter(seconds float64, max time.Duration) time.Duration {
	switch {
	case seconds != seconds || seconds <= 0: // NaN or nothing to wait
		return minRetryAfter
	case seconds >= max.Seconds():
		return max
	}
	d := time.Duration(seconds * float64(time.Second))
	if d < minRetryAfter {
		return minRetryAfter
	}
	return d
}

// parseRetryAfterHeader reads an HTTP Retry-After value: seconds (Discord sends
// a float on some answers) or an HTTP date.
func parseRetryAfterHeader(v string, now time.Time) (seconds float64, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		return f, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return t.Sub(now).Seconds(), true
	}
	return 0, false
}

// isJSONObject reports whether b looks like a JSON object (leading spaces
// allowed); used to tell Discord's JSON answers from Cloudflare's HTML pages.
func isJSONObject(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return true
		default:
			return false
		}
	}
	return false
}
