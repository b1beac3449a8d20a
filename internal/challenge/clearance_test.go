package challenge_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/challenge"
	"github.com/heraldrelay/herald/internal/metrics"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestClearance(t *testing.T) {
	kv, _ := connectKV(t, testkit.NewServer(t))
	f := newFixture(t, kv, func(c *challenge.Config) { c.Difficulty = 1 })
	srv := newServer(t, f)
	token := solveVia(t, srv, "192.0.2.10")
	refused := func(reason string) float64 {
		return testutil.ToFloat64(f.m.ClearancesRefused.WithLabelValues(reason))
	}

	if got, _, ok := f.svc.Clearance(withHeader(token), "192.0.2.10"); !ok || got != token {
		t.Fatalf("header: got %q %v, want the token", got, ok)
	}
	cookieReq := httptest.NewRequest(http.MethodGet, "/", nil)
	cookieReq.AddCookie(&http.Cookie{Name: challenge.ClearanceCookie, Value: token})
	if got, _, ok := f.svc.Clearance(cookieReq, "192.0.2.10"); !ok || got != token {
		t.Errorf("cookie: got %q %v, want the token", got, ok)
	}
	if _, _, ok := f.svc.Clearance(httptest.NewRequest(http.MethodGet, "/", nil), "192.0.2.10"); ok {
		t.Error("a request without a token was cleared")
	}

	// Another address.
	if _, _, ok := f.svc.Clearance(withHeader(token), "192.0.2.11"); ok {
		t.Error("token accepted from another address")
	}
	if refused("wrong_ip") != 1 {
		t.Errorf("refused{wrong_ip} = %v, want 1", refused("wrong_ip"))
	}

	// Tampered: every field changed in turn.
	parts := strings.Split(token, ".")
	for i := range parts {
		p := append([]string(nil), parts...)
		p[i] = flip(p[i])
		if _, _, ok := f.svc.Clearance(withHeader(strings.Join(p, ".")), "192.0.2.10"); ok {
			t.Errorf("token with field %d changed was accepted", i)
		}
	}
	if refused("bad_signature") < 4 {
		t.Errorf("refused{bad_signature} = %v, want at least 4", refused("bad_signature"))
	}

	// (A tampered group field may already count as malformed.)
	before := refused("malformed")
	for _, bad := range []string{"x", "a.b.c.d.e", token + ".x", strings.Repeat("a", 300)} {
		if _, _, ok := f.svc.Clearance(withHeader(bad), "192.0.2.10"); ok {
			t.Errorf("malformed token %q accepted", bad)
		}
	}
	if got := refused("malformed") - before; got != 4 {
		t.Errorf("refused{malformed} rose by %v, want 4", got)
	}

	// Expired.
	f.clock.Advance(challenge.DefaultClearanceTTL + time.Second)
	if _, _, ok := f.svc.Clearance(withHeader(token), "192.0.2.10"); ok {
		t.Error("expired token accepted")
	}
	if refused("expired") != 1 {
		t.Errorf("refused{expired} = %v, want 1", refused("expired"))
	}
}

func TestClearanceWithIPv4MappedAddress(t *testing.T) {
	kv, _ := connectKV(t, testkit.NewServer(t))
	f := newFixture(t, kv, func(c *challenge.Config) { c.Difficulty = 1 })
	token := solveVia(t, newServer(t, f), "192.0.2.20")
	if _, _, ok := f.svc.Clearance(withHeader(token), "::ffff:192.0.2.20"); !ok {
		t.Error("the same address spelled as IPv4-mapped IPv6 was refused")
	}
}

func TestSigningKeyRotation(t *testing.T) {
	kv, _ := connectKV(t, testkit.NewServer(t))
	easy := func(keys ...string) func(*challenge.Config) {
		return func(c *challenge.Config) { c.Difficulty, c.Keys = 1, keys }
	}
	before := newFixture(t, kv, easy(oldKey))         // only the old key
	during := newFixture(t, kv, easy(newKey, oldKey)) // new key signs, old still verifies
	after := newFixture(t, kv, easy(newKey))          // old key removed

	oldToken := solveVia(t, newServer(t, before), "192.0.2.30")
	newToken := solveVia(t, newServer(t, during), "192.0.2.30")
	if !strings.HasPrefix(oldToken, "k1.") || !strings.HasPrefix(newToken, "k2.") {
		t.Fatalf("tokens %q %q do not name their keys k1 and k2", oldToken, newToken)
	}
	for _, tc := range []struct {
		name  string
		f     *fixture
		token string
		want  bool
	}{
		{"old token, both keys", during, oldToken, true},
		{"new token, both keys", during, newToken, true},
		{"old token, old key removed", after, oldToken, false},
		{"new token, only the old key", before, newToken, false},
	} {
		if _, _, ok := tc.f.svc.Clearance(withHeader(tc.token), "192.0.2.30"); ok != tc.want {
			t.Errorf("%s: accepted %v, want %v", tc.name, ok, tc.want)
		}
	}
	if got := testutil.ToFloat64(after.m.ClearancesRefused.WithLabelValues("bad_signature")); got != 1 {
		t.Errorf("refused{bad_signature} = %v, want 1", got)
	}
}

func TestConfigValidate(t *testing.T) {
	long := strings.Repeat("s", challenge.MinKeyLen)
	for _, tc := range []struct {
		name string
		cfg  challenge.Config
		ok   bool
	}{
		{"defaults", challenge.Config{Keys: []string{"a:" + long}}, true},
		{"no key", challenge.Config{}, false},
		{"no kid", challenge.Config{Keys: []string{long}}, false},
		{"bad kid", challenge.Config{Keys: []string{"a.b:" + long}}, false},
		{"short secret", challenge.Config{Keys: []string{"a:short"}}, false},
		{"kid twice", challenge.Config{Keys: []string{"a:" + long, "a:" + long + "x"}}, false},
		{"difficulty too high", challenge.Config{Keys: []string{"a:" + long}, Difficulty: 9}, false},
		{"max below difficulty", challenge.Config{Keys: []string{"a:" + long}, Difficulty: 5, MaxDifficulty: 4}, false},
		{"ttl too long", challenge.Config{Keys: []string{"a:" + long}, TTL: 2 * time.Hour}, false},
		{"relative verify path", challenge.Config{Keys: []string{"a:" + long}, VerifyPath: "verify"}, false},
	} {
		err := tc.cfg.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok %v", tc.name, err, tc.ok)
		}
		if err != nil && strings.Contains(err.Error(), long) {
			t.Errorf("%s: error holds the secret", tc.name)
		}
	}
}

// TestNewRequiresClientIP: a Service must be told how the limiter sees a
// client's address, or challenges would be bound to the proxy's.
func TestNewRequiresClientIP(t *testing.T) {
	kv, _ := connectKV(t, testkit.NewServer(t))
	cfg := challenge.Config{Keys: []string{oldKey}}
	if _, err := challenge.New(cfg, kv, metrics.New(prometheus.NewRegistry()), nil); err == nil {
		t.Fatal("New without ClientIP succeeded")
	}
	cfg.ClientIP = testClientIP
	if _, err := challenge.New(cfg, kv, metrics.New(prometheus.NewRegistry()), nil); err != nil {
		t.Fatalf("New with ClientIP: %v", err)
	}
}

// flip changes the first character of s to another of the same alphabet.
func flip(s string) string {
	c := byte('A')
	if s[0] == 'A' {
		c = 'B'
	}
	if s[0] >= '0' && s[0] <= '9' {
		c = '1'
		if s[0] == '1' {
			c = '2'
		}
	}
	return string(c) + s[1:]
}
