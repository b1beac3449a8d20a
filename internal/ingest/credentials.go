package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/vault"
)

// Vault is the credential vault behind /v1/credentials and /v1/secrets, and
// the one jobs naming a credential_id are checked against; *vault.Vault
// implements it. Its errors are the vault package's.
//
// Every credential the API stores records its owner, the storing API
// secret's credentialOwner, and every call acts as the requesting secret's:
// to another secret a credential does not exist (vault.ErrNotFound, 404),
// whether it is read, verified, deleted or named by a job. A credential of
// nobody (from the registration page, or stored before owners were
// recorded) is used by whoever holds its id.
type Vault interface {
	Store(ctx context.Context, c herald.Channel, t herald.Target, opts vault.StoreOptions) (vault.Info, error)
	Info(ctx context.Context, id, owner string) (vault.Info, error)
	Delete(ctx context.Context, id, owner string) error
	Verify(ctx context.Context, id, code, owner string) (vault.Info, error)
	Resend(ctx context.Context, id, owner string) error
	Check(ctx context.Context, id string, c herald.Channel, owner string) error
	PutSecret(ctx context.Context, value string, ttl time.Duration) (vault.SecretRef, error)
	TakeSecret(ctx context.Context, id string) (string, error)
}

var _ Vault = (*vault.Vault)(nil)

// Routes of the vault; registered only when Deps.Vault is set.
const (
	routeCredentialCreate = "POST /v1/credentials"
	routeCredentialGet    = "GET /v1/credentials/{id}"
	routeCredentialDelete = "DELETE /v1/credentials/{id}"
	routeCredentialVerify = "POST /v1/credentials/{id}/verify"
	routeCredentialResend = "POST /v1/credentials/{id}/verify/resend"
	routeSecretCreate     = "POST /v1/secrets"
	routeSecretTake       = "GET /v1/secrets/{id}"
)

// vaultTimeout bounds the vault work of one request: a store operation and,
// for a verification code, publishing the job that carries it.
const vaultTimeout = 10 * time.Second

func (s *Server) vaultRoutes(mux *http.ServeMux) {
	if s.vault == nil {
		return
	}
	mux.HandleFunc(routeCredentialCreate, s.handleCredentialCreate)
	mux.HandleFunc(routeCredentialGet, s.handleCredentialGet)
	mux.HandleFunc(routeCredentialDelete, s.handleCredentialDelete)
	mux.HandleFunc(routeCredentialVerify, s.handleCredentialVerify)
	mux.HandleFunc(routeCredentialResend, s.handleCredentialResend)
	mux.HandleFunc(routeSecretCreate, s.handleSecretCreate)
	mux.HandleFunc(routeSecretTake, s.handleSecretTake)
}

// CredentialRequest is the body of POST /v1/credentials: a destination in
// plaintext, which Herald seals and never shows again. Unknown fields are
// refused.
type CredentialRequest struct {
	Channel herald.Channel `json:"channel"`
	// Webhook is a Discord webhook URL (channel discord).
	Webhook string `json:"webhook,omitempty"`
	// BotToken and ChatID are a Telegram bot token and chat id (channel
	// telegram); ChatID may be a JSON string or integer.
	BotToken string     `json:"bot_token,omitempty"`
	ChatID   flexString `json:"chat_id,omitempty"`
	// Verify sends a code to the destination and keeps the credential
	// unusable until it is confirmed, even when verification is not
	// required.
	Verify bool `json:"verify,omitempty"`
}

// VerifyRequest is the body of POST /v1/credentials/{id}/verify.
type VerifyRequest struct {
	Code string `json:"code"`
}

// Resent is the 202 answer of POST /v1/credentials/{id}/verify/resend.
type Resent struct {
	ID       string `json:"id"`
	CodeSent bool   `json:"code_sent"`
}

// handleCredentialCreate serves POST /v1/credentials: 201 with the
// credential's metadata (vault.Info), never its destination. The credential
// belongs to the API secret that stored it.
func (s *Server) handleCredentialCreate(w http.ResponseWriter, r *http.Request) {
	sec, ok := s.vaultAuth(w, r, routeCredentialCreate)
	if !ok {
		return
	}
	var req CredentialRequest
	if err := s.readJSON(w, r, &req); err != nil {
		s.apiFail(w, r, routeCredentialCreate, err)
		return
	}
	target := herald.Target{WebhookURL: req.Webhook, BotToken: req.BotToken, ChatID: string(req.ChatID)}
	switch req.Channel {
	case herald.ChannelDiscord:
		if req.Webhook == "" || req.BotToken != "" || req.ChatID != "" {
			s.apiFail(w, r, routeCredentialCreate, reject(errMissingCredentials, "channel discord takes webhook (and no bot_token or chat_id)"))
			return
		}
	case herald.ChannelTelegram:
		if req.BotToken == "" || req.ChatID == "" || req.Webhook != "" {
			s.apiFail(w, r, routeCredentialCreate, reject(errMissingCredentials, "channel telegram takes bot_token and chat_id (and no webhook)"))
			return
		}
	default:
		s.apiFail(w, r, routeCredentialCreate, reject(herald.ErrInvalidJob, "unknown channel %q (want discord or telegram)", truncate(string(req.Channel), 32)))
		return
	}
	ctx, cancel := vaultContext(r)
	defer cancel()
	info, err := s.vault.Store(ctx, req.Channel, target, vault.StoreOptions{Verify: req.Verify, Owner: sec.credentialOwner})
	if err != nil {
		s.apiFail(w, r, routeCredentialCreate, credentialError(err))
		return
	}
	w.Header().Set("Location", "/v1/credentials/"+url.PathEscape(info.ID))
	writeVaultJSON(w, http.StatusCreated, info)
}

// handleCredentialGet serves GET /v1/credentials/{id}: the metadata.
func (s *Server) handleCredentialGet(w http.ResponseWriter, r *http.Request) {
	sec, ok := s.vaultAuth(w, r, routeCredentialGet)
	if !ok {
		return
	}
	ctx, cancel := vaultContext(r)
	defer cancel()
	info, err := s.vault.Info(ctx, r.PathValue("id"), sec.credentialOwner)
	if err != nil {
		s.apiFail(w, r, routeCredentialGet, credentialError(err))
		return
	}
	writeVaultJSON(w, http.StatusOK, info)
}

// handleCredentialDelete serves DELETE /v1/credentials/{id}: 204.
func (s *Server) handleCredentialDelete(w http.ResponseWriter, r *http.Request) {
	sec, ok := s.vaultAuth(w, r, routeCredentialDelete)
	if !ok {
		return
	}
	ctx, cancel := vaultContext(r)
	defer cancel()
	if err := s.vault.Delete(ctx, r.PathValue("id"), sec.credentialOwner); err != nil {
		s.apiFail(w, r, routeCredentialDelete, credentialError(err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleCredentialVerify serves POST /v1/credentials/{id}/verify with
// {"code":"123456"}: 200 with the now verified credential's metadata.
func (s *Server) handleCredentialVerify(w http.ResponseWriter, r *http.Request) {
	sec, ok := s.vaultAuth(w, r, routeCredentialVerify)
	if !ok {
		return
	}
	var req VerifyRequest
	if err := s.readJSON(w, r, &req); err != nil {
		s.apiFail(w, r, routeCredentialVerify, err)
		return
	}
	ctx, cancel := vaultContext(r)
	defer cancel()
	info, err := s.vault.Verify(ctx, r.PathValue("id"), req.Code, sec.credentialOwner)
	if err != nil {
		s.apiFail(w, r, routeCredentialVerify, credentialError(err))
		return
	}
	writeVaultJSON(w, http.StatusOK, info)
}

// handleCredentialResend serves POST /v1/credentials/{id}/verify/resend: a
// new code is sent (202).
func (s *Server) handleCredentialResend(w http.ResponseWriter, r *http.Request) {
	sec, ok := s.vaultAuth(w, r, routeCredentialResend)
	if !ok {
		return
	}
	ctx, cancel := vaultContext(r)
	defer cancel()
	id := r.PathValue("id")
	if err := s.vault.Resend(ctx, id, sec.credentialOwner); err != nil {
		s.apiFail(w, r, routeCredentialResend, credentialError(err))
		return
	}
	writeVaultJSON(w, http.StatusAccepted, Resent{ID: id, CodeSent: true})
}

// checkAPIJob checks a job of Herald's API: as checkJob does, or, for a job
// naming a vault credential, that the credential exists and job.Owner may
// use it (else unknown_credential, as for a missing one), is for the job's
// channel and may be used (verified when that is required).
func (s *Server) checkAPIJob(ctx context.Context, job *herald.Job) error {
	if job.CredentialID == "" {
		return s.checkJob(job)
	}
	if err := job.Validate(); err != nil {
		return err
	}
	if s.vault == nil {
		return reject(errUnknownCredential, "credential_id: this server has no credential vault")
	}
	ctx, cancel := context.WithTimeout(ctx, vaultTimeout)
	defer cancel()
	err := s.vault.Check(ctx, job.CredentialID, job.Channel, job.Owner)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, vault.ErrNotFound):
		return reject(errUnknownCredential, "credential_id: no such credential (deleted, never stored, or not verified in time)")
	case errors.Is(err, vault.ErrUnverified):
		return reject(errCredentialUnverified, "credential_id: the credential's destination is not verified yet")
	case errors.Is(err, vault.ErrChannelMismatch):
		return reject(errCredentialMismatch, "credential_id: %s", err.Error())
	case errors.Is(err, vault.ErrUnknownKey), errors.Is(err, vault.ErrCorrupt):
		return reject(errBadCredentials, "credential_id: the credential does not open: %s", err.Error())
	}
	return vaultFailure(err)
}

// credentialError maps a vault error of the credential routes to the error
// table. Vault error texts are safe to show.
func credentialError(err error) error {
	var wrong *vault.WrongCodeError
	switch {
	case errors.Is(err, vault.ErrNotFound):
		return errCredentialNotFound
	case errors.As(err, &wrong):
		return reject(errWrongCode, "%s", wrong.Error())
	case errors.Is(err, vault.ErrTooManyAttempts):
		return reject(errTooManyCodes, "%s", vault.ErrTooManyAttempts.Error())
	case errors.Is(err, vault.ErrCodeExpired):
		return reject(errCodeExpired, "%s", vault.ErrCodeExpired.Error())
	case errors.Is(err, vault.ErrAlreadyVerified):
		return reject(errAlreadyVerified, "%s", vault.ErrAlreadyVerified.Error())
	case errors.Is(err, vault.ErrNoCode):
		return reject(errNoCode, "no verification code was sent for this credential: POST .../verify/resend to get one")
	case errors.Is(err, vault.ErrTargetRejected):
		return &rejection{kind: errTargetRejected, msg: err.Error()}
	case errors.Is(err, vault.ErrInvalidChannel):
		return reject(herald.ErrInvalidJob, "%s", err.Error())
	case errors.Is(err, vault.ErrUnknownKey), errors.Is(err, vault.ErrCorrupt):
		return reject(errBadCredentials, "%s", err.Error())
	}
	return vaultFailure(err)
}

// vaultFailure is a vault error no table row describes: unavailable (503)
// when the store failed, else internal (500). Either way its text is only
// logged.
func vaultFailure(err error) error {
	if errors.Is(err, vault.ErrUnavailable) {
		return fmt.Errorf("%w: %w", errUnavailable, err)
	}
	return err
}

// vaultAuth checks the API secret of a vault route and answers 401 when it
// is wrong.
func (s *Server) vaultAuth(w http.ResponseWriter, r *http.Request, route string) (*secret, bool) {
	sec, ok := s.authAPI(r)
	if !ok {
		s.apiFail(w, r, route, reject(errUnauthorized, "missing or wrong API secret"))
		return nil, false
	}
	return sec, true
}

// vaultContext is the context of a request's vault work: it survives the
// client going away (a half-done registration is worse than a finished
// one nobody reads), bounded by vaultTimeout.
func vaultContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(r.Context()), vaultTimeout)
}

// readJSON reads a JSON body into v, refusing unknown fields and anything
// after the object.
func (s *Server) readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if err := checkContentType(r); err != nil {
		return err
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	return decodeStrictInto(body, v)
}

// writeVaultJSON is writeJSON for vault answers, which no cache may keep.
func writeVaultJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, code, v)
}

// fieldError is a field's own unmarshaling error; its text is shown.
type fieldError struct{ msg string }

func (e *fieldError) Error() string { return e.msg }

// flexString is a JSON string that may also be sent as an integer (Telegram
// chat ids are numbers).
type flexString string

// UnmarshalJSON accepts a string or an integer (null leaves f as it is).
func (f *flexString) UnmarshalJSON(b []byte) error {
	switch {
	case string(b) == "null":
		return nil
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
		return nil
	}
	if _, err := strconv.ParseInt(string(b), 10, 64); err != nil {
		got := "number"
		switch b[0] {
		case 't', 'f':
			got = "bool"
		case '{':
			got = "object"
		case '[':
			got = "array"
		}
		return &json.UnmarshalTypeError{Value: got, Type: reflect.TypeFor[string]()}
	}
	*f = flexString(b)
	return nil
}
