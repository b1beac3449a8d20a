package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/status"
	"github.com/heraldrelay/herald/publisher"
)

// Kinds of request failure. Each is one row of errorTable; handlers wrap them
// with reject, whose text must be safe to show the client.
var (
	errUnauthorized          = errors.New("missing or wrong API secret")
	errUnsupportedMediaType  = errors.New("unsupported media type")
	errBodyTooLarge          = errors.New("request body too large")
	errBodyUnreadable        = errors.New("request body unreadable")
	errMalformedJSON         = errors.New("malformed JSON")
	errInvalidBody           = errors.New("invalid request body")
	errWrongShape            = errors.New("JSON of the wrong shape")
	errInvalidIdempotencyKey = errors.New("invalid Idempotency-Key")
	errIdempotencyKeyReused  = errors.New("Idempotency-Key reused with another request")
	errKeysExhausted         = errors.New("the API secret's share of Idempotency-Keys is in use")
	errKeysFull              = errors.New("the Idempotency-Key bucket is full")
	errUnknownType           = errors.New("unknown notification type")
	errMissingCredentials    = errors.New("missing credentials")
	errBadCredentials        = errors.New("credentials do not open")
	errTargetRejected        = errors.New("destination not allowed")
	errNotFound              = errors.New("no such notification")
	errUnavailable           = errors.New("temporarily unavailable")

	// The credential vault's (see credentials.go, secrets.go).
	errCredentialNotFound   = errors.New("no such credential")
	errUnknownCredential    = errors.New("unknown credential")
	errCredentialUnverified = errors.New("credential not verified")
	errCredentialMismatch   = errors.New("credential of another channel")
	errWrongCode            = errors.New("wrong verification code")
	errCodeExpired          = errors.New("verification code expired")
	errTooManyCodes         = errors.New("too many wrong verification codes")
	errAlreadyVerified      = errors.New("credential already verified")
	errNoCode               = errors.New("no verification code sent")
	errSecretNotFound       = errors.New("no such secret")
	errInvalidSecret        = errors.New("invalid secret")
)

// errorRow says how one kind of failure is answered.
type errorRow struct {
	kind   error
	status int
	// code is the stable machine-readable code: the "code" of Herald's JSON
	// errors, the reason label of herald_jobs_rejected_total, the log's code.
	code string
	// business marks failures that Streaky's proxy answers with 200
	// {"success":false,"error":...}; POST /send-notification answers them
	// with that body and the status of its Config.StreakyFailureStatus.
	business bool
	// message replaces the error's own text in the response when set: the
	// error then may hold internal details, which are only logged.
	message string
}

// errorTable maps every failure to its status and code: the one place where
// that is decided. Rows are tried in order with errors.Is; an error matching
// no row is an internal error (500), logged and never echoed.
var errorTable = []errorRow{
	{kind: errUnauthorized, status: http.StatusUnauthorized, code: "unauthorized", message: "missing or wrong API secret"},
	{kind: errUnsupportedMediaType, status: http.StatusUnsupportedMediaType, code: "unsupported_media_type"},
	{kind: errBodyTooLarge, status: http.StatusRequestEntityTooLarge, code: "body_too_large"},
	{kind: errBodyUnreadable, status: http.StatusBadRequest, code: "body_unreadable", message: "the request body could not be read"},
	{kind: errMalformedJSON, status: http.StatusBadRequest, code: "malformed_json"},
	{kind: errInvalidBody, status: http.StatusBadRequest, code: "invalid_body"},
	{kind: errWrongShape, status: http.StatusUnprocessableEntity, code: "invalid_shape"},
	{kind: errInvalidIdempotencyKey, status: http.StatusBadRequest, code: "invalid_idempotency_key"},
	// 422, as the IETF draft on the Idempotency-Key header answers a key
	// reused with another payload; /send-notification answers it as its
	// other refusals.
	{kind: errIdempotencyKeyReused, status: http.StatusUnprocessableEntity, code: "idempotency_key_reused", business: true},
	// 429: this secret's share of the kept keys is taken, by its own keys;
	// it frees as they expire (Retry-After). Never a 2xx on either route.
	{kind: errKeysExhausted, status: http.StatusTooManyRequests, code: "idempotency_keys_exhausted"},
	{kind: errKeysFull, status: http.StatusServiceUnavailable, code: "idempotency_keys_full",
		message: "Herald keeps as many Idempotency-Keys as it may; nothing was queued, retry later"},
	{kind: errUnknownType, status: http.StatusUnprocessableEntity, code: "invalid_type", business: true},
	{kind: errMissingCredentials, status: http.StatusUnprocessableEntity, code: "missing_credentials", business: true},
	{kind: errBadCredentials, status: http.StatusUnprocessableEntity, code: "invalid_credentials", business: true},
	{kind: errTargetRejected, status: http.StatusUnprocessableEntity, code: "target_not_allowed", business: true},
	{kind: herald.ErrInvalidJob, status: http.StatusUnprocessableEntity, code: "invalid_job", business: true},
	{kind: errNotFound, status: http.StatusNotFound, code: "not_found", message: "no such notification"},
	{kind: status.ErrNotFound, status: http.StatusNotFound, code: "not_found", message: "no such notification"},
	{kind: errCredentialNotFound, status: http.StatusNotFound, code: "not_found", message: "no such credential"},
	{kind: errSecretNotFound, status: http.StatusNotFound, code: "not_found",
		message: "no such secret: it was read already, it expired, or it never existed"},
	{kind: errUnknownCredential, status: http.StatusUnprocessableEntity, code: "unknown_credential"},
	{kind: errCredentialUnverified, status: http.StatusUnprocessableEntity, code: "credential_unverified"},
	{kind: errCredentialMismatch, status: http.StatusUnprocessableEntity, code: "credential_mismatch"},
	{kind: errWrongCode, status: http.StatusUnprocessableEntity, code: "wrong_code"},
	{kind: errCodeExpired, status: http.StatusUnprocessableEntity, code: "code_expired"},
	{kind: errTooManyCodes, status: http.StatusGone, code: "too_many_attempts"},
	{kind: errAlreadyVerified, status: http.StatusConflict, code: "already_verified"},
	{kind: errNoCode, status: http.StatusConflict, code: "no_code"},
	{kind: errInvalidSecret, status: http.StatusUnprocessableEntity, code: "invalid_secret"},
	{kind: publisher.ErrNotStored, status: http.StatusServiceUnavailable, code: "not_stored",
		message: "the notification could not be stored; nothing was queued, retry later"},
	{kind: errUnavailable, status: http.StatusServiceUnavailable, code: "unavailable", message: "temporarily unavailable; retry later"},
}

var internalRow = errorRow{status: http.StatusInternalServerError, code: "internal", message: "internal error"}

// retryAfterSeconds is the Retry-After of a 503 that does not say when:
// JetStream usually comes back (leader elected, reconnected) within seconds.
const retryAfterSeconds = "5"

// retryLater is a failure that knows when a retry may succeed.
type retryLater struct {
	error
	after time.Duration
}

func (e *retryLater) Unwrap() error { return e.error }

// retryAfter is the Retry-After of err's answer, in whole seconds: when
// err says, rounded up, else retryAfterSeconds.
func retryAfter(err error) string {
	var rl *retryLater
	if errors.As(err, &rl) && rl.after > 0 {
		return strconv.FormatInt(int64((rl.after+time.Second-1)/time.Second), 10)
	}
	return retryAfterSeconds
}

// classify returns err's row and the text the client may see.
func classify(err error) (errorRow, string) {
	for _, row := range errorTable {
		if errors.Is(err, row.kind) {
			if row.message != "" {
				return row, row.message
			}
			return row, err.Error()
		}
	}
	return internalRow, internalRow.message
}

// rejection is a client error whose text is safe to show.
type rejection struct {
	kind error
	msg  string
}

func (e *rejection) Error() string { return e.msg }
func (e *rejection) Unwrap() error { return e.kind }

// reject returns an error of kind whose text is the formatted message. The
// message is shown to the client: it must never hold a secret.
func reject(kind error, format string, args ...any) error {
	return &rejection{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// apiError is the body of every error answer of Herald's own routes.
type apiError struct {
	Error apiErrorBody `json:"error"`
}

type apiErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// writeJSON answers code with v as compact JSON, without a trailing newline
// and without HTML escaping, as serde_json writes it.
func writeJSON(w http.ResponseWriter, code int, v any) {
	e := jsonEncoders.Get().(*jsonEncoder)
	defer e.put()
	e.buf.Reset()
	if err := e.enc.Encode(v); err != nil {
		// Only our own response types are written; they always marshal.
		writePlain(w, http.StatusInternalServerError, "internal error")
		return
	}
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["X-Content-Type-Options"] = noSniff
	w.WriteHeader(code)
	_, _ = w.Write(bytes.TrimSuffix(e.buf.Bytes(), []byte("\n")))
}

// Header values every answer sets, shared (never modified) so that setting
// them allocates nothing.
var (
	jsonContentType  = []string{"application/json"}
	plainContentType = []string{"text/plain; charset=utf-8"}
	noSniff          = []string{"nosniff"}
)

// jsonEncoder is a reusable JSON encoder writing into its own buffer, without
// HTML escaping (answers are JSON documents, not HTML).
type jsonEncoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

var jsonEncoders = sync.Pool{New: func() any {
	e := &jsonEncoder{}
	e.enc = json.NewEncoder(&e.buf)
	e.enc.SetEscapeHTML(false)
	return e
}}

// put returns e to the pool unless an unusually large answer grew its buffer.
func (e *jsonEncoder) put() {
	if e.buf.Cap() <= 64<<10 {
		jsonEncoders.Put(e)
	}
}

// writePlain answers status with a plain-text body, as axum's rejections do.
func writePlain(w http.ResponseWriter, code int, text string) {
	h := w.Header()
	h["Content-Type"] = plainContentType
	h["X-Content-Type-Options"] = noSniff
	w.WriteHeader(code)
	_, _ = w.Write([]byte(text))
}
