package challenge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Defaults and bounds of Config.
const (
	// DefaultDifficulty is the number of leading hex zeros asked for: 16^4 =
	// 65,536 hashes on average, about a second in a browser on a small
	// machine and milliseconds for a Go client.
	DefaultDifficulty = 4
	// MaxAllowedDifficulty bounds Difficulty and MaxDifficulty: 16^8 hashes is
	// already minutes of a browser's time.
	MaxAllowedDifficulty = 8
	// DefaultMaxSteps is how far above Difficulty a client's difficulty may
	// rise by default (MaxDifficulty 0): one step, 16 times the work. At
	// 4 + 1, a phone 8 times slower than headless chromium on a small
	// server solves the hardest page in a median of 6-13 s (see
	// docs/operations.md); at 4 + 2 it would take minutes, so a person
	// sharing an address with a script that kept solving could not get
	// through.
	DefaultMaxSteps = 1
	// DefaultTTL is how long a challenge may be solved.
	DefaultTTL = 5 * time.Minute
	// MaxTTL bounds TTL: a challenge is a moment's work, not a credential.
	MaxTTL = time.Hour
	// DefaultClearanceTTL is how long a clearance token is accepted.
	DefaultClearanceTTL = time.Hour
	// MaxClearanceTTL bounds ClearanceTTL.
	MaxClearanceTTL = 30 * 24 * time.Hour
	// DefaultVerifyPath is where solutions are posted.
	DefaultVerifyPath = "/challenge/verify"
	// DefaultEscalateAfter is how many unsolved challenges of one bucket key
	// add one to its difficulty.
	DefaultEscalateAfter = 5
	// DefaultEscalateAfterSolves is how many challenges one bucket key
	// solved within ten minutes add one to its difficulty. A person solves
	// one; a script that solves every challenge to keep registering pays 16
	// times more per solve after 8, and past MaxDifficulty waits.
	DefaultEscalateAfterSolves = 8
	// MinKeyLen is the shortest signing secret accepted, in bytes.
	MinKeyLen = 32
	// maxKIDLen bounds a key id, which travels in every token.
	maxKIDLen = 16
)

// Config configures a Service. The zero value is not valid: at least one
// signing key is required.
type Config struct {
	// Difficulty is the number of leading '0' characters the lowercase hex of
	// sha256(seed + nonce) must have; DefaultDifficulty when 0.
	Difficulty int
	// MaxDifficulty caps the difficulty of repeated offenders (clients with
	// many unsolved or solved challenges); Difficulty+DefaultMaxSteps when
	// 0, at most MaxAllowedDifficulty. No client is ever asked for more: one
	// whose counts would take it past gets a 429 without a challenge, whose
	// Retry-After lasts until its difficulty is back within the cap.
	MaxDifficulty int
	// EscalateAfter is the number of unsolved challenges of one bucket key
	// that raises its difficulty by one; DefaultEscalateAfter when 0.
	EscalateAfter int
	// EscalateAfterSolves is the number of challenges one bucket key solved
	// within ten minutes that raises its difficulty by one, so that solving
	// is no cheap way around the limits; DefaultEscalateAfterSolves when 0.
	EscalateAfterSolves int
	// TTL is a challenge's lifetime; DefaultTTL when 0, at most MaxTTL.
	TTL time.Duration
	// ClearanceTTL is a clearance token's lifetime; DefaultClearanceTTL when
	// 0, at most MaxClearanceTTL.
	ClearanceTTL time.Duration
	// Keys are the clearance signing keys, "kid:secret", newest first: the
	// first signs, all verify, so a key is rotated by adding a new one in
	// front and removing the old one once its tokens have expired. kid is
	// 1-16 of A-Z a-z 0-9 _ -; secret is at least MinKeyLen bytes.
	Keys []string
	// VerifyPath is where solutions are posted (POST); DefaultVerifyPath
	// when empty.
	VerifyPath string
	// ClientIP returns the client's address for a request: the rate
	// limiter's Identifier.ClientIP, so that a challenge and its clearance
	// are bound to the address the limiter counts. Required by New.
	ClientIP func(*http.Request) string
	// OnSolved is called after a challenge was solved, with the group and
	// bucket key it was issued for, so that the limiter's bucket can be
	// reset. It runs before the verify request is answered; nil skips it.
	OnSolved func(ctx context.Context, group, bucketKey string)
	// Now is the clock; time.Now when nil. Tests set it.
	Now func() time.Time
}

// signingKey is one parsed entry of Config.Keys.
type signingKey struct {
	kid    string
	secret []byte
}

// Validate reports the first problem with c, naming the setting. Error texts
// never include a key's secret.
func (c Config) Validate() error {
	_, _, err := c.parse()
	return err
}

// parse validates c and returns it with defaults filled and its keys parsed.
func (c Config) parse() (Config, []signingKey, error) {
	if c.Difficulty < 0 || c.Difficulty > MaxAllowedDifficulty {
		return c, nil, fmt.Errorf("challenge: difficulty %d out of range 1..%d", c.Difficulty, MaxAllowedDifficulty)
	}
	if c.Difficulty == 0 {
		c.Difficulty = DefaultDifficulty
	}
	if c.MaxDifficulty == 0 {
		c.MaxDifficulty = min(c.Difficulty+DefaultMaxSteps, MaxAllowedDifficulty)
	}
	if c.MaxDifficulty < c.Difficulty || c.MaxDifficulty > MaxAllowedDifficulty {
		return c, nil, fmt.Errorf("challenge: max difficulty %d out of range %d..%d", c.MaxDifficulty, c.Difficulty, MaxAllowedDifficulty)
	}
	if c.EscalateAfter < 0 {
		return c, nil, fmt.Errorf("challenge: escalate after %d is negative", c.EscalateAfter)
	}
	if c.EscalateAfter == 0 {
		c.EscalateAfter = DefaultEscalateAfter
	}
	if c.EscalateAfterSolves < 0 {
		return c, nil, fmt.Errorf("challenge: escalate after solves %d is negative", c.EscalateAfterSolves)
	}
	if c.EscalateAfterSolves == 0 {
		c.EscalateAfterSolves = DefaultEscalateAfterSolves
	}
	if c.TTL < 0 || c.TTL > MaxTTL {
		return c, nil, fmt.Errorf("challenge: ttl %s out of range 0..%s", c.TTL, MaxTTL)
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.TTL < time.Second {
		return c, nil, fmt.Errorf("challenge: ttl %s is under a second", c.TTL)
	}
	if c.ClearanceTTL < 0 || c.ClearanceTTL > MaxClearanceTTL {
		return c, nil, fmt.Errorf("challenge: clearance ttl %s out of range 0..%s", c.ClearanceTTL, MaxClearanceTTL)
	}
	if c.ClearanceTTL == 0 {
		c.ClearanceTTL = DefaultClearanceTTL
	}
	if c.ClearanceTTL < time.Second {
		return c, nil, fmt.Errorf("challenge: clearance ttl %s is under a second", c.ClearanceTTL)
	}
	if c.VerifyPath == "" {
		c.VerifyPath = DefaultVerifyPath
	}
	if !strings.HasPrefix(c.VerifyPath, "/") || strings.HasPrefix(c.VerifyPath, "//") {
		return c, nil, fmt.Errorf("challenge: verify path %q must be an absolute path", c.VerifyPath)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	keys, err := parseKeys(c.Keys)
	if err != nil {
		return c, nil, err
	}
	return c, keys, nil
}

func parseKeys(entries []string) ([]signingKey, error) {
	if len(entries) == 0 {
		return nil, errors.New("challenge: at least one signing key (kid:secret) is required")
	}
	keys := make([]signingKey, 0, len(entries))
	seen := make(map[string]bool, len(entries))
	for i, e := range entries {
		kid, secret, ok := strings.Cut(e, ":")
		if !ok {
			return nil, fmt.Errorf("challenge: signing key %d is not kid:secret", i+1)
		}
		if !validKID(kid) {
			return nil, fmt.Errorf("challenge: signing key %d: kid must be 1-%d of A-Z a-z 0-9 _ -", i+1, maxKIDLen)
		}
		if seen[kid] {
			return nil, fmt.Errorf("challenge: signing key %d: kid %q is used twice", i+1, kid)
		}
		seen[kid] = true
		if len(secret) < MinKeyLen {
			return nil, fmt.Errorf("challenge: signing key %q: secret shorter than %d bytes", kid, MinKeyLen)
		}
		keys = append(keys, signingKey{kid: kid, secret: []byte(secret)})
	}
	return keys, nil
}

func validKID(kid string) bool {
	if kid == "" || len(kid) > maxKIDLen {
		return false
	}
	for i := 0; i < len(kid); i++ {
		if !isIDByte(kid[i]) {
			return false
		}
	}
	return true
}

// isIDByte reports whether b may appear in a key id or a challenge id: the
// base64url alphabet, which is also safe in KV keys and cookies.
func isIDByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '-'
}
