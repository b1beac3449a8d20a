package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/heraldrelay/herald/internal/vault"
)

// SecretRequest is the body of POST /v1/secrets. Unknown fields are refused.
type SecretRequest struct {
	// Value is what the one reader gets back.
	Value string `json:"value"`
	// TTL is how long the secret may wait for its reader: a duration string
	// ("10m") or a number of seconds; the vault's default when absent, at
	// most vault.secret_max_ttl.
	TTL ttlValue `json:"ttl"`
}

// SecretValue is the 200 answer of GET /v1/secrets/{id}.
type SecretValue struct {
	Value string `json:"value"`
}

// handleSecretCreate serves POST /v1/secrets: 201 {"id","expires_at"}.
func (s *Server) handleSecretCreate(w http.ResponseWriter, r *http.Request) {
	sec, ok := s.vaultAuth(w, r, routeSecretCreate)
	if !ok {
		return
	}
	var req SecretRequest
	if err := s.readJSON(w, r, &req); err != nil {
		s.apiFail(w, r, routeSecretCreate, err)
		return
	}
	ctx, cancel := vaultContext(r)
	defer cancel()
	ref, err := s.vault.PutSecret(ctx, req.Value, time.Duration(req.TTL))
	if err != nil {
		s.apiFail(w, r, routeSecretCreate, secretError(err))
		return
	}
	ref.ID = sec.own(ref.ID) // only this API secret can take it back
	w.Header().Set("Location", "/v1/secrets/"+url.PathEscape(ref.ID))
	writeVaultJSON(w, http.StatusCreated, ref)
}

// handleSecretTake serves GET /v1/secrets/{id}: the value, once, to the API
// secret that stored it. The secret is deleted by this read; any other read,
// before or after, concurrent or not, on this replica or another, gets 404,
// and so does a read with another API secret.
func (s *Server) handleSecretTake(w http.ResponseWriter, r *http.Request) {
	sec, ok := s.vaultAuth(w, r, routeSecretTake)
	if !ok {
		return
	}
	id := r.PathValue("id")
	// Another API secret's secret is answered as unknown (404), and is not
	// taken.
	if !sec.mayRead(id) {
		s.apiFail(w, r, routeSecretTake, errSecretNotFound)
		return
	}
	if base, _, owned := split(id); owned {
		id = base
	}
	ctx, cancel := vaultContext(r)
	defer cancel()
	value, err := s.vault.TakeSecret(ctx, id)
	if err != nil {
		s.apiFail(w, r, routeSecretTake, secretError(err))
		return
	}
	writeVaultJSON(w, http.StatusOK, SecretValue{Value: value})
}

// secretError maps a vault error of the secret routes to the error table.
func secretError(err error) error {
	switch {
	case errors.Is(err, vault.ErrSecretNotFound):
		return errSecretNotFound
	case errors.Is(err, vault.ErrInvalidSecret):
		return reject(errInvalidSecret, "%s", err.Error())
	}
	return vaultFailure(err)
}

// ttlValue is a duration sent as a Go duration string ("10m", "1h30m") or a
// number of seconds.
type ttlValue time.Duration

// UnmarshalJSON accepts a duration string or a whole number of seconds.
func (t *ttlValue) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return &fieldError{msg: fmt.Sprintf("ttl: %q is not a duration such as \"10m\" or \"1h\"", truncate(s, 32))}
		}
		*t = ttlValue(d)
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || n > int64(time.Duration(1<<62)/time.Second) || n < 0 {
		return &fieldError{msg: "ttl: want a duration string such as \"10m\" or a whole number of seconds"}
	}
	*t = ttlValue(time.Duration(n) * time.Second)
	return nil
}
