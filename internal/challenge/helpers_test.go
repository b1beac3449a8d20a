package challenge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"

	"github.com/heraldrelay/herald/client"
	"github.com/heraldrelay/herald/internal/challenge"
	"github.com/heraldrelay/herald/internal/metrics"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

const (
	oldKey = "k1:0123456789abcdef0123456789abcdef-old"
	newKey = "k2:fedcba9876543210fedcba9876543210-new"
	// testIPHeader lets a test speak for another client address.
	testIPHeader = "X-Test-IP"
)

// connectKV opens a connection of its own to the kit's server s (as a
// replica would) and returns the challenge bucket and the connection.
func connectKV(t *testing.T, s *testkit.Server) (jetstream.KeyValue, *nats.Conn) {
	t.Helper()
	nc, js := s.Connect()
	kv, err := challenge.EnsureBucket(testkit.Context(t, 10*time.Second), js, 1)
	if err != nil {
		t.Fatalf("EnsureBucket: %v", err)
	}
	return kv, nc
}

// clock is an adjustable clock for Config.Now.
type clock = testkit.ShiftedClock

func testClientIP(r *http.Request) string { return ipOf(r) }

func ipOf(r *http.Request) string {
	if v := r.Header.Get(testIPHeader); v != "" {
		return v
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	return host
}

type solvedCall struct{ group, bucketKey string }

// fixture is one Service (a replica) with its metrics, clock and log.
type fixture struct {
	svc    *challenge.Service
	m      *metrics.Metrics
	clock  *clock
	logs   *testkit.LogBuffer
	mu     sync.Mutex
	solved []solvedCall
}

func (f *fixture) solvedCalls() []solvedCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]solvedCall(nil), f.solved...)
}

// newFixture builds a Service over kv; edit adjusts its Config. Its log is
// checked for the keys' secrets (and the kit's) when the test ends.
func newFixture(t *testing.T, kv jetstream.KeyValue, edit func(*challenge.Config)) *fixture {
	t.Helper()
	f := &fixture{m: metrics.New(prometheus.NewRegistry()), clock: &clock{}, logs: &testkit.LogBuffer{}}
	cfg := challenge.Config{
		Keys:     []string{oldKey},
		ClientIP: testClientIP,
		Now:      f.clock.Now,
		OnSolved: func(_ context.Context, group, bucketKey string) {
			f.mu.Lock()
			f.solved = append(f.solved, solvedCall{group, bucketKey})
			f.mu.Unlock()
		},
	}
	if edit != nil {
		edit(&cfg)
	}
	log := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	svc, err := challenge.New(cfg, kv, f.m, log)
	if err != nil {
		t.Fatalf("challenge.New: %v", err)
	}
	f.svc = svc
	t.Cleanup(func() { testkit.AssertNoSecrets(t, "challenge log", f.logs.String(), oldKey[3:], newKey[3:]) })
	return f
}

// bucketOf is the bucket key the test server limits ip under.
func bucketOf(ip string) string { return "bucket-" + ip }

// protectedHandler serves the challenge routes and, everywhere else, a page
// that answers "welcome" to a client presenting a valid clearance and a
// challenge (group "api") to any other.
func protectedHandler(f *fixture) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/challenge/", f.svc.Handler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		ip := ipOf(r)
		if _, _, ok := f.svc.Clearance(r, ip); ok {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, "<!doctype html><title>ok</title><p>welcome (%s)</p>", r.Method)
			return
		}
		f.svc.Respond(w, r, ip, "api", bucketOf(ip), 2*time.Second)
	})
	return mux
}

func newServer(t *testing.T, f *fixture) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(protectedHandler(f))
	t.Cleanup(srv.Close)
	return srv
}

// limitedBody is the JSON 429.
type limitedBody struct {
	Error      string               `json:"error"`
	RetryAfter int                  `json:"retry_after"`
	Challenge  *challenge.Challenge `json:"challenge"`
}

// getChallenge asks srv for a JSON challenge as ip ("" for the real address).
func getChallenge(t *testing.T, srv *httptest.Server, ip string) challenge.Challenge {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/page", nil)
	req.Header.Set("Accept", "application/json")
	if ip != "" {
		req.Header.Set(testIPHeader, ip)
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer res.Body.Close()
	var body limitedBody
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatalf("decode 429: %v", err)
	}
	if res.StatusCode != http.StatusTooManyRequests || body.Challenge == nil {
		t.Fatalf("got %d %+v, want 429 with a challenge", res.StatusCode, body)
	}
	return *body.Challenge
}

// answer is a verification's outcome.
type answer struct {
	status  int
	body    map[string]any
	cookies []*http.Cookie
}

func (a answer) str(key string) string { s, _ := a.body[key].(string); return s }

// postJSON posts {"id","nonce"} to srv's verify path as ip.
func postJSON(t *testing.T, srv *httptest.Server, ip, id, nonce string) answer {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"id": id, "nonce": nonce})
	return post(t, srv, ip, "application/json", string(body))
}

func post(t *testing.T, srv *httptest.Server, ip, contentType, body string) answer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+challenge.DefaultVerifyPath, strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	if ip != "" {
		req.Header.Set(testIPHeader, ip)
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Errorf("POST verify: %v", err)
		return answer{}
	}
	defer res.Body.Close()
	a := answer{status: res.StatusCode, cookies: res.Cookies()}
	if err := json.NewDecoder(res.Body).Decode(&a.body); err != nil {
		t.Errorf("decode verify answer: %v", err)
	}
	return a
}

// solveVia gets a challenge from srv as ip, solves it and returns the
// clearance.
func solveVia(t *testing.T, srv *httptest.Server, ip string) string {
	t.Helper()
	ch := getChallenge(t, srv, ip)
	a := postJSON(t, srv, ip, ch.ID, client.Solve(ch.Seed, ch.Difficulty))
	if a.status != http.StatusOK || a.str("clearance") == "" {
		t.Fatalf("verify: %d %v", a.status, a.body)
	}
	return a.str("clearance")
}

// withHeader builds a request presenting token as X-Herald-Clearance.
func withHeader(token string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set(challenge.ClearanceHeader, token)
	return r
}

func formBody(id, nonce string) string {
	return url.Values{"id": {id}, "nonce": {nonce}}.Encode()
}

// wrongNonce returns a nonce that does not solve ch.
func wrongNonce(ch challenge.Challenge) string {
	for n := 0; ; n++ {
		s := fmt.Sprint(n)
		if !challenge.Solves(ch.Seed, s, ch.Difficulty) {
			return s
		}
	}
}
