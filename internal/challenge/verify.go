package challenge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Reasons a verification is refused: the "error" of the refusal and the
// reason label of herald_challenges_failed_total.
const (
	FailedMalformed  = "malformed"
	FailedUnknown    = "unknown"
	FailedExpired    = "expired"
	FailedUsed       = "used"
	FailedWrongNonce = "wrong_nonce"
	FailedWrongIP    = "wrong_ip"
)

// ClearanceCookie and ClearanceHeader carry a clearance token.
const (
	ClearanceCookie = "herald_clearance"
	ClearanceHeader = "X-Herald-Clearance"
)

// maxSolutionBytes bounds a verification request's body.
const maxSolutionBytes = 4 << 10

// idLen is the length of a challenge id: 16 bytes in unpadded base64url.
const idLen = 22

// Solution is the body of a verification request, as JSON or as the form
// fields id and nonce.
type Solution struct {
	ID    string `json:"id"`
	Nonce string `json:"nonce"`
}

// Cleared is the 200 answer of a verification: the clearance token (also set
// as the herald_clearance cookie) and its expiry.
type Cleared struct {
	Clearance string    `json:"clearance"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Refusal is the body of a refused verification: Error is one of the Failed*
// reasons, Reason says what is wrong in words.
type Refusal struct {
	Error  string `json:"error"`
	Reason string `json:"reason"`
}

// refusal is a verification refused for a reason the client may see.
type refusal struct {
	status int
	body   Refusal
}

func (e *refusal) Error() string { return e.body.Error + ": " + e.body.Reason }

func refuse(status int, reason, text string) *refusal {
	return &refusal{status: status, body: Refusal{Error: reason, Reason: text}}
}

var errStore = errors.New("challenge store unavailable")

// Handler serves POST {VerifyPath}: the body is {"id":"...","nonce":"..."}
// as JSON or form fields. A correct solution of a live challenge, posted from
// the address it was issued to, is answered 200 with a clearance (JSON and
// the herald_clearance cookie), and the bucket the challenge was issued for is
// reset through Config.OnSolved. A wrong nonce, an unknown, expired or already
// used challenge, or another address gets 403 {"error":"<reason>",
// "reason":"<text>"}; a malformed request 400; a store that cannot be reached
// 503 with Retry-After. Other paths get 404, other methods 405.
func (s *Service) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		switch {
		case r.URL.Path != s.cfg.VerifyPath:
			writeJSON(w, http.StatusNotFound, Refusal{Error: "not_found", Reason: "no such route"})
		case r.Method != http.MethodPost:
			w.Header().Set("Allow", http.MethodPost)
			writeJSON(w, http.StatusMethodNotAllowed, Refusal{Error: "method_not_allowed", Reason: "POST the solution"})
		default:
			s.handleVerify(w, r)
		}
	})
}

func (s *Service) handleVerify(w http.ResponseWriter, r *http.Request) {
	ip := s.cfg.ClientIP(r)
	sol, err := readSolution(w, r)
	group := ""
	if err == nil {
		group, err = s.verify(r.Context(), ip, sol)
	}
	var ref *refusal
	switch {
	case err == nil:
		s.clear(w, r, ip, group)
	case errors.As(err, &ref):
		s.m.ChallengesFailed.WithLabelValues(ref.body.Error).Inc()
		if n := s.failures.add(ip, s.cfg.Now()); n == failureLogAt {
			s.warn("challenge: client fails challenges unusually often",
				"ip", ip, "failures", n, "window", offenderWindow, "last_reason", ref.body.Error)
		}
		writeJSON(w, ref.status, ref.body)
	default:
		s.m.StoreErrors.WithLabelValues("challenge").Inc()
		s.warn("challenge: cannot verify a solution", "err", err)
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, Refusal{Error: "unavailable", Reason: "challenges cannot be checked right now; retry shortly"})
	}
}

// readSolution decodes and checks the shape of a verification request.
func readSolution(w http.ResponseWriter, r *http.Request) (Solution, error) {
	malformed := func(text string) error { return refuse(http.StatusBadRequest, FailedMalformed, text) }
	r.Body = http.MaxBytesReader(w, r.Body, maxSolutionBytes)
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var sol Solution
	switch mt {
	case "application/json":
		var raw struct {
			ID    string          `json:"id"`
			Nonce json.RawMessage `json:"nonce"`
		}
		if err := json.NewDecoder(r.Body).Decode(&raw); err != nil {
			return sol, malformed("the body is not a JSON object {\"id\":\"...\",\"nonce\":\"...\"}")
		}
		sol.ID = raw.ID
		// The nonce is a decimal string; a bare JSON integer is accepted too.
		if err := json.Unmarshal(raw.Nonce, &sol.Nonce); err != nil {
			sol.Nonce = string(bytes.TrimSpace(raw.Nonce))
		}
	case "application/x-www-form-urlencoded":
		if err := r.ParseForm(); err != nil {
			return sol, malformed("the form could not be read")
		}
		sol.ID, sol.Nonce = r.PostForm.Get("id"), r.PostForm.Get("nonce")
	default:
		return sol, malformed("send the solution as application/json or application/x-www-form-urlencoded")
	}
	if !validID(sol.ID) {
		return sol, malformed("id is not a challenge id")
	}
	if !validNonce(sol.Nonce) {
		return sol, malformed(fmt.Sprintf("nonce must be 1-%d decimal digits", maxNonceLen))
	}
	return sol, nil
}

func validID(id string) bool {
	if len(id) != idLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !isIDByte(id[i]) {
			return false
		}
	}
	return true
}

// verify checks sol against its stored challenge and marks the challenge
// used. Exactly one verification of a challenge succeeds, whichever replica
// runs it: the "used" marker is created with a KV Create, which fails for
// every later caller. On success it calls OnSolved. Errors are *refusal, or
// wrap errStore.
func (s *Service) verify(ctx context.Context, ip string, sol Solution) (group string, err error) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	entry, err := s.kv.Get(ctx, recordKey(sol.ID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", refuse(http.StatusForbidden, FailedUnknown, "no such challenge (never issued, or expired long ago); request a new one")
	}
	if err != nil {
		return "", fmt.Errorf("%w: get: %w", errStore, err)
	}
	var rec record
	if err := json.Unmarshal(entry.Value(), &rec); err != nil {
		return "", fmt.Errorf("%w: decode record: %w", errStore, err)
	}
	now := s.cfg.Now()
	if !now.Before(rec.ExpiresAt) {
		return "", refuse(http.StatusForbidden, FailedExpired, "the challenge has expired; request a new one")
	}
	if rec.IPHash != ipHash(ip) {
		return "", refuse(http.StatusForbidden, FailedWrongIP, "the challenge was issued to another address")
	}
	if !Solves(rec.Seed, sol.Nonce, rec.Difficulty) {
		return "", refuse(http.StatusForbidden, FailedWrongNonce,
			fmt.Sprintf("sha256(seed + nonce) does not start with %d zeros", rec.Difficulty))
	}
	// The marker outlives the record, so a replayed solution is always
	// "used", never taken for a fresh one.
	ttl := min(max(rec.ExpiresAt.Sub(now), 0)+2*expiredGrace, s.cfg.TTL+2*expiredGrace)
	if _, err := s.kv.Create(ctx, usedKey(sol.ID), nil, jetstream.KeyTTL(ttl)); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return "", refuse(http.StatusForbidden, FailedUsed, "the challenge was already solved; request a new one")
		}
		return "", fmt.Errorf("%w: mark used: %w", errStore, err)
	}
	s.m.ChallengesSolved.Inc()
	s.unsolved.reset(rec.BucketKey)
	s.solves.add(rec.BucketKey, now)
	if s.cfg.OnSolved != nil {
		s.cfg.OnSolved(ctx, rec.Group, rec.BucketKey)
	}
	return rec.Group, nil
}
