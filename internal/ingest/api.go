package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/publisher"
)

// SourceAPI is the Source of jobs built from POST /v1/notifications.
const SourceAPI = "api"

// NotificationRequest is the body of POST /v1/notifications. Unknown fields
// are refused. Credentials are sealed with Herald's keyring, in the Streaky
// format (see package crypto).
type NotificationRequest struct {
	Channel     herald.Channel     `json:"channel"`
	Credentials herald.Credentials `json:"credentials"`
	// CredentialID names a credential stored in the vault instead of
	// Credentials (one or the other).
	CredentialID string         `json:"credential_id"`
	Message      herald.Message `json:"message"`
}

// Accepted is the 202 answer of POST /v1/notifications.
type Accepted struct {
	// ID is the job id; GET /v1/notifications/{id} reports its status.
	ID string `json:"id"`
	// Status is always "queued".
	Status herald.State `json:"status"`
	// Duplicate is true when this request stored nothing: its
	// Idempotency-Key's first request, within the idempotency window,
	// stored the job ID names.
	Duplicate bool `json:"duplicate"`
}

// handleCreate serves POST /v1/notifications.
//
// Auth is X-API-Secret or "Authorization: Bearer <secret>". An optional
// Idempotency-Key (1-200 printable ASCII characters) is kept for the
// idempotency window (ingest.idempotency_window, a day by default), scoped
// to the API secret: a retry with the same key and the same request answers
// 202 with the first job's id and "duplicate":true, and stores nothing; the
// same key with another request is refused (422 idempotency_key_reused).
// A new key past the secret's share of the kept keys is refused (429
// idempotency_keys_exhausted), and past all the bucket holds (503
// idempotency_keys_full); neither stores the job. Past the window the key is forgotten, and a request with it is a new job
// with a new id. Errors are {"error":{"code","message"}} with the status of
// errorTable.
func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sec, ok := s.authAPI(r)
	if !ok {
		s.apiFail(w, r, routeCreate, reject(errUnauthorized, "missing or wrong API secret"))
		return
	}
	key, err := idempotencyKey(r, sec)
	if err != nil {
		s.apiFail(w, r, routeCreate, err)
		return
	}
	if err := checkContentType(r); err != nil {
		s.apiFail(w, r, routeCreate, err)
		return
	}
	body, err := s.readBody(w, r)
	if err != nil {
		s.apiFail(w, r, routeCreate, err)
		return
	}
	req, err := decodeStrict(body)
	if err != nil {
		s.apiFail(w, r, routeCreate, err)
		return
	}
	job := &herald.Job{
		Version: herald.JobVersion,
		// The id is tied to this secret: no other secret can read its status.
		ID:          sec.own(herald.NewID()),
		Channel:     req.Channel,
		Source:      SourceAPI,
		Credentials: req.Credentials,
		Message:     req.Message,
	}
	if req.CredentialID != "" {
		// The credential must be this secret's (or nobody's), here and
		// again at the worker.
		job.CredentialID, job.Owner = req.CredentialID, sec.credentialOwner
	}
	if err := s.checkAPIJob(ctx, job); err != nil {
		s.apiFail(w, r, routeCreate, err)
		return
	}
	// Only a valid request takes its key: a refused one may be corrected
	// and sent again with the same key.
	claim := keyClaim{publish: true}
	if key != nil {
		key.fingerprint = fingerprint(routeCreate, req)
		if claim, err = s.claimKey(ctx, sec, key, job); err != nil {
			s.apiFail(w, r, routeCreate, err)
			return
		}
	}
	duplicate := !claim.publish
	if claim.publish {
		res, err := s.publish(ctx, job, publisher.WithMsgID(job.ID))
		if err != nil {
			s.releaseKey(ctx, claim)
			s.apiFail(w, r, routeCreate, err)
			return
		}
		if key != nil {
			s.settleKey(ctx, claim)
		}
		duplicate = res.Duplicate
	}
	s.accepted(ctx, job, duplicate)
	w.Header().Set("Location", "/v1/notifications/"+url.PathEscape(job.ID))
	writeJSON(w, http.StatusAccepted, Accepted{ID: job.ID, Status: herald.StateQueued, Duplicate: duplicate})
}

// decodeStrict decodes one NotificationRequest and nothing after it,
// refusing unknown fields.
func decodeStrict(body []byte) (NotificationRequest, error) {
	var req NotificationRequest
	return req, decodeStrictInto(body, &req)
}

// decodeStrictInto decodes one JSON object from body into v and nothing after
// it, refusing unknown fields. A field's own validation error (fieldError) is
// reported as an invalid body with its message; other errors as
// describeJSONError puts them. No text quotes the body.
func decodeStrictInto(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var fe *fieldError
		if errors.As(err, &fe) {
			return reject(errInvalidBody, "%s", fe.msg)
		}
		kind, text := describeJSONError(err)
		return reject(kind, "%s", text)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return reject(errMalformedJSON, "unexpected data after the JSON object")
	}
	return nil
}

// checkJob validates job, opens its credentials to see that they open, and
// asks the channel's checker whether Herald may send there. Error texts name
// the field and never hold a credential.
func (s *Server) checkJob(job *herald.Job) error {
	if err := job.Validate(); err != nil {
		return err // wraps herald.ErrInvalidJob; its text holds no credential
	}
	open := func(field, sealed string) (string, error) {
		plain, err := s.keys.Open(sealed)
		if err != nil {
			return "", reject(errBadCredentials, "credentials.%s: %s", field, err.Error())
		}
		return plain, nil
	}
	var target herald.Target
	var err error
	switch job.Channel {
	case herald.ChannelDiscord:
		if target.WebhookURL, err = open("webhook", job.Credentials.Webhook); err != nil {
			return err
		}
	case herald.ChannelTelegram:
		if target.BotToken, err = open("bot_token", job.Credentials.BotToken); err != nil {
			return err
		}
		if target.ChatID, err = open("chat_id", job.Credentials.ChatID); err != nil {
			return err
		}
	default: // Validate refused it already
		return reject(herald.ErrInvalidJob, "unknown channel")
	}
	return s.checkTarget(job.Channel, target)
}

// handleGetStatus serves GET /v1/notifications/{id}: the job's status record,
// "queued" for a stored job no worker has recorded yet, or 404 when the job is
// unknown (also for an id that cannot be a job id, and for a job another API
// secret created).
func (s *Server) handleGetStatus(w http.ResponseWriter, r *http.Request) {
	sec, ok := s.authAPI(r)
	if !ok {
		s.apiFail(w, r, routeGetStatus, reject(errUnauthorized, "missing or wrong API secret"))
		return
	}
	id := r.PathValue("id")
	// Another secret's job is answered as unknown: 404, never 403, so that
	// its existence is not revealed either.
	if !herald.ValidID(id) || !sec.mayRead(id) {
		s.apiFail(w, r, routeGetStatus, errNotFound)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), statusTimeout)
	defer cancel()
	st, err := s.status.Lookup(ctx, id)
	if err != nil {
		if !isNotFound(err) {
			err = fmt.Errorf("%w: %w", errUnavailable, err)
		}
		s.apiFail(w, r, routeGetStatus, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// isNotFound reports whether err is one errorTable answers with 404.
func isNotFound(err error) bool {
	row, _ := classify(err)
	return row.status == http.StatusNotFound
}

// apiFail answers a refused or failed request of Herald's own API.
func (s *Server) apiFail(w http.ResponseWriter, r *http.Request, route string, err error) {
	row, text := classify(err)
	s.rejected(r.Context(), route, row, row.status, err)
	switch row.status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		w.Header().Set("Retry-After", retryAfter(err))
	}
	writeJSON(w, row.status, apiError{Error: apiErrorBody{Code: row.code, Message: text}})
}
