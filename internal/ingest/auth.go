package ingest

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"net/http"
	"strings"
	"sync/atomic"
)

// secret is one accepted API secret, kept only as digests.
type secret struct {
	// digest is SHA-256 of the secret: comparing fixed-length digests keeps
	// the secret's length out of the comparison's timing.
	digest [sha256.Size]byte
	// scope identifies the client in idempotency ids without being the
	// secret, or the digest compared at login.
	scope string
	// credentialOwner is the owner recorded with the credentials this
	// secret stores, and carried by its jobs that name one (herald.Job.Owner):
	// a keyed id of the secret (see credentialOwnerOf), not the secret.
	credentialOwner string
	// owner keys the tags that tie job and secret ids to this secret.
	owner [sha256.Size]byte
	// waiting counts the Streaky requests sent with this secret that wait
	// for their result (Config.MaxWaitingPerSecret caps it).
	waiting atomic.Int64
	// keys counts the Idempotency-Keys this secret claimed over the window
	// (Config.MaxKeysPerSecret caps it).
	keys keyCount
}

// scopePrefix separates the idempotency scope's hash from the auth digest.
const scopePrefix = "herald idempotency scope\x00"

func newSecrets(plain []string) []secret {
	out := make([]secret, len(plain))
	for i, p := range plain {
		out[i].digest = sha256.Sum256([]byte(p))
		sum := sha256.Sum256([]byte(scopePrefix + p))
		out[i].scope = hex.EncodeToString(sum[:16])
		out[i].owner = sha256.Sum256([]byte(ownerPrefix + p))
		out[i].credentialOwner = credentialOwnerOf(out[i].owner)
	}
	return out
}

// credentialOwnerPurpose is the message whose HMAC under a secret's owner key
// is the secret's credential owner id.
const credentialOwnerPurpose = "herald credential owner"

// credentialOwnerOf returns the credential owner id of the secret whose
// owner key is key: 128 bits of HMAC-SHA256 in lower-case base32 (26
// characters). It is stored in vault records and carried in jobs, so it must
// not lead back to the secret: it is a keyed hash of a hash of it, and it
// grants nothing by itself (every API route asks for the secret).
func credentialOwnerOf(key [sha256.Size]byte) string {
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte(credentialOwnerPurpose))
	return strings.ToLower(ownerEncoding.EncodeToString(m.Sum(nil)[:16]))
}

// ownerPrefix separates the owner key from the other digests of a secret.
const ownerPrefix = "herald owner\x00"

// ownerTagLen is the length of an owner tag: 50 bits of HMAC in base32.
const ownerTagLen = 10

var ownerEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// tag is the owner tag of id: who cannot compute it did not create id.
func (sec *secret) tag(id string) string {
	m := hmac.New(sha256.New, sec.owner[:])
	m.Write([]byte(id))
	return strings.ToLower(ownerEncoding.EncodeToString(m.Sum(nil)))[:ownerTagLen]
}

// own returns id tied to sec: "<id>_<tag>". Job ids and secret ids made
// through the API are owned, so that only the API secret that created a
// record can read it.
func (sec *secret) own(id string) string { return id + "_" + sec.tag(id) }

// split returns the base of an owned id and its tag, or ok false for an id
// that carries no owner tag (a job published straight to NATS or through
// the Streaky endpoint).
func split(id string) (base, tag string, ok bool) {
	i := len(id) - ownerTagLen - 1
	if i < 1 || id[i] != '_' {
		return "", "", false
	}
	for _, c := range id[i+1:] {
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return "", "", false
		}
	}
	return id[:i], id[i+1:], true
}

// mayRead reports whether sec may read the record id: an owned id only by
// its owner, an id without an owner tag by any API secret.
func (sec *secret) mayRead(id string) bool {
	base, tag, owned := split(id)
	return !owned || hmac.Equal([]byte(sec.tag(base)), []byte(tag))
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
