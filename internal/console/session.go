package console

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"sync"
	"time"
)

// session is one signed-in operator.
type session struct {
	expires time.Time
	// csrf is the token every state-changing form of the session carries.
	csrf string
}

// sessions are kept in memory, keyed by a hash of their random id: a
// restart signs everyone out, and each ingest replica has its own (sign in
// on the one the browser reaches). Bounded by max: a new session evicts the
// one closest to expiry.
type sessions struct {
	mu  sync.Mutex
	max int
	ttl time.Duration
	m   map[[sha256.Size]byte]*session
}

func newSessions(max int, ttl time.Duration) *sessions {
	return &sessions{max: max, ttl: ttl, m: map[[sha256.Size]byte]*session{}}
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session at now and returns its id (the cookie's value).
func (s *sessions) create(now time.Time) (string, *session) {
	id := randomToken()
	sess := &session{expires: now.Add(s.ttl), csrf: randomToken()}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.m {
		if !now.Before(v.expires) {
			delete(s.m, k)
		}
	}
	for len(s.m) >= s.max {
		var oldest [sha256.Size]byte
		var at time.Time
		for k, v := range s.m {
			if at.IsZero() || v.expires.Before(at) {
				oldest, at = k, v.expires
			}
		}
		delete(s.m, oldest)
	}
	s.m[sha256.Sum256([]byte(id))] = sess
	return id, sess
}

// get returns the live session of id at now, or nil (an expired one is
// forgotten).
func (s *sessions) get(id string, now time.Time) *session {
	if id == "" {
		return nil
	}
	k := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.m[k]
	if sess == nil {
		return nil
	}
	if !now.Before(sess.expires) {
		delete(s.m, k)
		return nil
	}
	return sess
}

// end forgets the session of id.
func (s *sessions) end(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, sha256.Sum256([]byte(id)))
}
