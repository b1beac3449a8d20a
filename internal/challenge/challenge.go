// Package challenge answers rate-limited clients with a proof-of-work
// challenge and, once one is solved, issues a clearance token.
//
// A challenge asks for a nonce (a decimal string) such that the lowercase
// hex of sha256(seed + nonce) starts with a number of '0' characters (the
// difficulty). Browsers get an HTML page that solves it by itself and carries
// on to the page they asked for; API clients get JSON and solve it in code
// (see package client). Challenges live in a shared key-value bucket with a
// TTL, so any replica can verify a challenge another issued, and each can be
// used once: the first verification creates a "used" marker, atomically
// across replicas, and every later one is refused.
//
// A clearance is an HMAC-SHA256 signed token bound to the client's address
// and an expiry, presented as the herald_clearance cookie or the
// X-Herald-Clearance header. Signing keys are rotatable: the token names its
// key, the first configured key signs, all of them verify.
package challenge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"time"

	"github.com/heraldrelay/herald/internal/metrics"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"
)

// Service issues and verifies challenges and clearance tokens. It is safe for
// concurrent use; several Services (one per replica) may share one bucket.
type Service struct {
	cfg  Config
	keys []signingKey
	kv   jetstream.KeyValue
	m    *metrics.Metrics
	log  *slog.Logger
	page *template.Template

	unsolved *tally // challenges issued and not solved, by bucket key
	solves   *tally // challenges solved, by bucket key
	failures *tally // failed verifications, by client address
	logLimit *rate.Limiter
}

// New returns a Service storing its challenges in kv (see EnsureBucket). m
// and cfg.ClientIP are required; a nil log means slog.Default(). The caller
// owns kv.
func New(cfg Config, kv jetstream.KeyValue, m *metrics.Metrics, log *slog.Logger) (*Service, error) {
	cfg, keys, err := cfg.parse()
	if err != nil {
		return nil, err
	}
	if kv == nil {
		return nil, errors.New("challenge: no key-value bucket")
	}
	if m == nil {
		return nil, errors.New("challenge: no metrics")
	}
	if cfg.ClientIP == nil {
		return nil, errors.New("challenge: no client address function (Config.ClientIP)")
	}
	if log == nil {
		log = slog.Default()
	}
	page, err := parsePage()
	if err != nil {
		return nil, err
	}
	return &Service{
		cfg:      cfg,
		keys:     keys,
		kv:       kv,
		m:        m,
		log:      log.With("component", "challenge"),
		page:     page,
		unsolved: newTally(),
		failures: newTally(),
		solves:   newTally(),
		// Unusual-client warnings: a burst of a few, then one every ten
		// seconds, whatever the number of clients misbehaving.
		logLimit: rate.NewLimiter(rate.Every(10*time.Second), 3),
	}, nil
}

// Challenge is the "challenge" object of a 429 JSON answer.
type Challenge struct {
	// ID names the challenge in the verification request.
	ID string `json:"id"`
	// Algorithm is always "sha256".
	Algorithm string `json:"algorithm"`
	// Seed is a random hex string, the prefix of what is hashed.
	Seed string `json:"seed"`
	// Difficulty is the number of leading '0' characters the hex digest
	// must have.
	Difficulty int `json:"difficulty"`
	// ExpiresAt is when the challenge can no longer be verified.
	ExpiresAt time.Time `json:"expires_at"`
	// VerifyURL is where to POST {"id","nonce"}: a path on the same host.
	VerifyURL string `json:"verify_url"`
}

// errNotIssued means no challenge was issued on purpose (a client over its
// quota of unsolved challenges).
var errNotIssued = errors.New("challenge: not issued")

// pastCapError means the client's difficulty would pass MaxDifficulty: it
// is asked for no work, only to come back at until, when its difficulty is
// back within the cap.
type pastCapError struct{ until time.Time }

func (e *pastCapError) Error() string { return "challenge: difficulty past the cap" }

// difficulty is what a client is asked for with unsolved challenges (this
// one included) and solved ones within the window, before the cap.
func (s *Service) difficulty(unsolved, solved int) int {
	return s.cfg.Difficulty + max(unsolved-1, 0)/s.cfg.EscalateAfter + solved/s.cfg.EscalateAfterSolves
}

// comeBack is the first moment, if the client sends nothing more, at which
// its difficulty is back within the cap: when the count that pushed it
// over is forgotten, or both counts if one alone is not enough. unsolved
// counts the next request; a zero time means nothing to forget.
func (s *Service) comeBack(unsolved int, unsolvedUntil time.Time, solved int, solvedUntil time.Time) time.Time {
	both := unsolvedUntil
	if solvedUntil.After(both) {
		both = solvedUntil
	}
	at := both
	if !unsolvedUntil.IsZero() && unsolvedUntil.Before(at) && s.difficulty(1, solved) <= s.cfg.MaxDifficulty {
		at = unsolvedUntil
	}
	if !solvedUntil.IsZero() && solvedUntil.Before(at) && s.difficulty(unsolved, 0) <= s.cfg.MaxDifficulty {
		at = solvedUntil
	}
	return at
}

// issue stores a fresh challenge bound to ip, group and bucketKey. Its
// difficulty never passes MaxDifficulty: a client whose count would take it
// past gets a *pastCapError instead.
func (s *Service) issue(ctx context.Context, ip, group, bucketKey string) (*Challenge, error) {
	now := s.cfg.Now()
	// Leaving challenges unsolved raises the difficulty, and so does solving
	// many: a solve resets the first count, never the second.
	pending, unsolvedUntil := s.unsolved.get(bucketKey, now)
	solved, solvedUntil := s.solves.get(bucketKey, now)
	if s.difficulty(pending+1, solved) > s.cfg.MaxDifficulty {
		// Not counted as unsolved: nothing was asked of the client, and
		// its counts are forgotten on time.
		until := s.comeBack(pending+1, unsolvedUntil, solved, solvedUntil)
		s.warn("challenge: client past the difficulty cap; told to come back later",
			"ip", ip, "group", group, "max_difficulty", s.cfg.MaxDifficulty, "come_back_in", until.Sub(now).Round(time.Second))
		return nil, &pastCapError{until: until}
	}
	n := s.unsolved.add(bucketKey, now)
	if n > maxUnsolved {
		if n == maxUnsolved+1 {
			s.warn("challenge: client leaves challenges unsolved; no more are issued to it for a while",
				"ip", ip, "group", group, "unsolved", maxUnsolved, "window", offenderWindow)
		}
		return nil, errNotIssued
	}
	// min: another request of the same client may have counted meanwhile.
	difficulty := min(s.difficulty(n, solved), s.cfg.MaxDifficulty)

	idRaw := make([]byte, 16)
	seedRaw := make([]byte, 16)
	rand.Read(idRaw)
	rand.Read(seedRaw)
	c := &Challenge{
		ID:         b64.EncodeToString(idRaw),
		Algorithm:  Algorithm,
		Seed:       hex.EncodeToString(seedRaw),
		Difficulty: difficulty,
		ExpiresAt:  now.Add(s.cfg.TTL).UTC().Truncate(time.Second),
		VerifyURL:  s.cfg.VerifyPath,
	}
	data, err := json.Marshal(record{
		Seed: c.Seed, Difficulty: difficulty, IPHash: ipHash(ip),
		Group: group, BucketKey: bucketKey, ExpiresAt: c.ExpiresAt,
	})
	if err != nil {
		return nil, fmt.Errorf("challenge: encode: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	if _, err := s.kv.Create(ctx, recordKey(c.ID), data, jetstream.KeyTTL(s.cfg.TTL+expiredGrace)); err != nil {
		return nil, fmt.Errorf("challenge: store: %w", err)
	}
	return c, nil
}

// warn logs an unusual client, at most a few lines per ten seconds in all.
// Lines carry the client's address, never a token or secret.
func (s *Service) warn(msg string, args ...any) {
	if s.logLimit.Allow() {
		s.log.Warn(msg, args...)
	}
}
