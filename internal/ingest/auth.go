package ingest

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"
)

// secret is one accepted API secret, kept only as digests.
type secret struct {
	// digest is SHA-256 of the secret: comparing fixed-length digests keeps
	// the secret's length out of the comparison's timing.
	digest [sha256.Size]byte
	// scope identifies the client in idempotency ids without being the
	// secret, or the digest compared at login.
	scope string
}

// scopePrefix separates the idempotency scope's hash from the auth digest.
const scopePrefix = "herald idempotency scope\x00"

func newSecrets(plain []string) []secret {
	out := make([]secret, len(plain))
	for i, p := range plain {
		out[i].digest = sha256.Sum256([]byte(p))
		sum := sha256.Sum256([]byte(scopePrefix + p))
		out[i].scope = hex.EncodeToString(sum[:16])
	}
	return out
}

// match returns the secret given equals, comparing against every configured
// secret in constant time.
func (s *Server) match(given string) (*secret, bool) {
	if given == "" {
		return nil, false
	}
	d := sha256.Sum256([]byte(given))
	found := -1
	for i := range s.secrets {
		// No early exit: the time taken does not say which secret matched.
		if subtle.ConstantTimeCompare(d[:], s.secrets[i].digest[:]) == 1 && found < 0 {
			found = i
		}
	}
	if found < 0 {
		return nil, false
	}
	return &s.secrets[found], true
}

// authStreaky checks X-API-Secret, the only credential a Streaky Worker sends.
func (s *Server) authStreaky(r *http.Request) (*secret, bool) {
	return s.match(r.Header.Get("X-API-Secret"))
}

// authAPI checks X-API-Secret, or else "Authorization: Bearer <secret>".
func (s *Server) authAPI(r *http.Request) (*secret, bool) {
	if v := r.Header.Get("X-API-Secret"); v != "" {
		return s.match(v)
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, false
	}
	return s.match(strings.TrimSpace(token))
}

// ClientID returns the id of the valid API secret r carries (X-API-Secret,
// or "Authorization: Bearer <secret>"): a digest that names the client in
// rate limits without being, or revealing, the secret.
func (s *Server) ClientID(r *http.Request) (string, bool) {
	sec, ok := s.authAPI(r)
	if !ok {
		return "", false
	}
	return sec.scope, true
}
