package ratelimit

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const testSecret = "s3cret-api-key-do-not-log"

// serve sends one request through h.
func serve(h http.Handler, method, target, remote string, header map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	req.RemoteAddr = remote
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// counting returns a handler answering 200 and counting its calls.
func counting(n *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(http.StatusOK)
	})
}

func TestMiddlewareWrites429(t *testing.T) {
	s := testkit.NewServer(t)
	r := newReplica(t, s, Config{Default: Bucket{MaxTokens: 2, RefillRate: 1, RefillTime: 1500 * time.Millisecond}}, newFakeClock())
	var calls atomic.Int64
	h := r.lim.Middleware(nil, nil, nil)(counting(&calls))

	for i := range 2 {
		if rec := serve(h, http.MethodPost, "/v1/notifications", "203.0.113.7:4000", nil); rec.Code != http.StatusOK {
			t.Fatalf("request %d: %d", i+1, rec.Code)
		}
	}
	rec := serve(h, http.MethodPost, "/v1/notifications", "203.0.113.7:4001", nil)
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("third request: %d, want 429", rec.Code)
	}
	if got := rec.Header().Get("Retry-After"); got != "2" {
		t.Errorf("Retry-After = %q, want 2 (1.5s rounded up)", got)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if body := rec.Body.String(); body != `{"error":"rate_limited","retry_after":2}` {
		t.Errorf("body = %s", body)
	}
	var v struct {
		Error      string `json:"error"`
		RetryAfter int    `json:"retry_after"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || v.Error != "rate_limited" || v.RetryAfter != 2 {
		t.Errorf("body does not decode: %+v, %v", v, err)
	}
	if calls.Load() != 2 {
		t.Errorf("handler ran %d times, want 2", calls.Load())
	}
	// Another address has its own bucket; unlimited paths are never limited.
	if rec := serve(h, http.MethodPost, "/v1/notifications", "198.51.100.1:4000", nil); rec.Code != http.StatusOK {
		t.Errorf("another client: %d", rec.Code)
	}
	for _, p := range []string{"/health", "/readyz", "/metrics", "/"} {
		for range 3 {
			if rec := serve(h, http.MethodGet, p, "203.0.113.7:4000", nil); rec.Code != http.StatusOK {
				t.Errorf("%s limited: %d", p, rec.Code)
			}
		}
	}
	if got := testutil.ToFloat64(r.m.Limited.WithLabelValues(GroupAPI)); got != 1 {
		t.Errorf("limited{api} = %v, want 1", got)
	}
}

func TestMiddlewareIdentifiesAndCallsOnLimited(t *testing.T) {
	s := testkit.NewServer(t)
	r := newReplica(t, s, Config{Default: Bucket{MaxTokens: 1, RefillRate: 1, RefillTime: time.Minute}}, newFakeClock())
	id := &Identifier{
		APIClient: func(r *http.Request) (string, bool) {
			if r.Header.Get("X-API-Secret") == testSecret {
				return "client-7", true
			}
			return "", false
		},
		Clearance: func(r *http.Request, ip string) (string, string, bool) {
			tok := r.Header.Get("X-Herald-Clearance")
			return tok, GroupOf(r), tok != "" && ip == "203.0.113.7"
		},
	}
	var seen Client
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := ClientFrom(r.Context())
		if !ok {
			t.Error("no Client in the request context")
		}
		seen = c
	})
	var limited struct {
		c     Client
		group string
		d     Decision
	}
	onLimited := func(w http.ResponseWriter, r *http.Request, c Client, group string, d Decision) {
		limited.c, limited.group, limited.d = c, group, d
		if cc, ok := ClientFrom(r.Context()); !ok || cc != c {
			t.Error("onLimited's request lacks the Client")
		}
		w.WriteHeader(http.StatusTeapot)
	}
	h := r.lim.Middleware(id, nil, onLimited)(next)

	auth := map[string]string{"X-API-Secret": testSecret}
	serve(h, http.MethodPost, "/send-notification", "203.0.113.7:1", auth)
	if seen != (Client{IP: "203.0.113.7", Network: "203.0.113.7", ID: "client-7"}) {
		t.Fatalf("Client = %+v", seen)
	}
	rec := serve(h, http.MethodPost, "/send-notification", "203.0.113.7:1", auth)
	if rec.Code != http.StatusTeapot || limited.group != GroupStreaky || limited.c.ID != "client-7" || limited.d.Allowed || limited.d.RetryAfter != time.Minute {
		t.Fatalf("onLimited: code %d, %+v", rec.Code, limited)
	}
	// The API client is one bucket whatever its address...
	if rec := serve(h, http.MethodPost, "/send-notification", "198.51.100.9:1", auth); rec.Code != http.StatusTeapot {
		t.Errorf("API client from another address: %d, want limited", rec.Code)
	}
	// ...and a clearance gives it a bucket of its own.
	auth["X-Herald-Clearance"] = "tok-1"
	if rec := serve(h, http.MethodPost, "/send-notification", "203.0.113.7:1", auth); rec.Code != http.StatusOK {
		t.Errorf("with a clearance: %d, want a fresh bucket", rec.Code)
	}
	if seen.Clearance != "tok-1" {
		t.Errorf("Client = %+v, want the clearance", seen)
	}
	// Unauthenticated requests from the same address are another client.
	if rec := serve(h, http.MethodPost, "/send-notification", "203.0.113.7:1", nil); rec.Code != http.StatusOK {
		t.Errorf("anonymous client: %d", rec.Code)
	}
}

func TestMiddlewareTrustedProxies(t *testing.T) {
	s := testkit.NewServer(t)
	r := newReplica(t, s, Config{Default: Bucket{MaxTokens: 1, RefillRate: 1, RefillTime: time.Minute}}, newFakeClock())
	id := &Identifier{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	var calls atomic.Int64
	h := r.lim.Middleware(id, nil, nil)(counting(&calls))

	// Behind the trusted proxy, each CF-Connecting-IP is its own client.
	for _, ip := range []string{"203.0.113.1", "203.0.113.2"} {
		if rec := serve(h, http.MethodPost, "/register", "10.1.2.3:5000", map[string]string{"CF-Connecting-IP": ip}); rec.Code != http.StatusOK {
			t.Errorf("client %s behind the proxy: %d", ip, rec.Code)
		}
	}
	if rec := serve(h, http.MethodPost, "/register", "10.1.2.3:5000", map[string]string{"CF-Connecting-IP": "203.0.113.1"}); rec.Code != http.StatusTooManyRequests {
		t.Errorf("client 203.0.113.1 again: %d, want 429", rec.Code)
	}
	// From an untrusted peer the header is ignored: one client, one bucket.
	serve(h, http.MethodPost, "/register", "192.0.2.50:5000", map[string]string{"CF-Connecting-IP": "198.51.100.1"})
	if rec := serve(h, http.MethodPost, "/register", "192.0.2.50:5000", map[string]string{"CF-Connecting-IP": "198.51.100.2"}); rec.Code != http.StatusTooManyRequests {
		t.Errorf("forged CF-Connecting-IP got a fresh bucket: %d", rec.Code)
	}
}

func TestMiddlewareDenyAnswers503(t *testing.T) {
	s := testkit.NewServer(t)
	cfg := Config{Default: Bucket{MaxTokens: 5, RefillRate: 1, RefillTime: time.Minute}, OnStoreError: OnStoreErrorDeny}
	r := newReplica(t, s, cfg, newFakeClock())
	var calls atomic.Int64
	var challenged atomic.Bool
	h := r.lim.Middleware(nil, nil, func(w http.ResponseWriter, _ *http.Request, _ Client, _ string, _ Decision) {
		challenged.Store(true)
	})(counting(&calls))
	if err := r.js.DeleteKeyValue(testCtx(t), BucketName); err != nil {
		t.Fatal(err)
	}
	rec := serve(h, http.MethodPost, "/v1/notifications", "203.0.113.7:1", nil)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "5" {
		t.Fatalf("store gone, deny: %d Retry-After %q, want 503 and 5", rec.Code, rec.Header().Get("Retry-After"))
	}
	if body := rec.Body.String(); body != `{"error":"rate_limiter_unavailable","retry_after":5}` {
		t.Errorf("body = %s", body)
	}
	if calls.Load() != 0 || challenged.Load() {
		t.Error("request passed, or was challenged, while the limiter could not decide")
	}
}

func TestRepeatedRefusalsAreLogged(t *testing.T) {
	s := testkit.NewServer(t)
	clock := newFakeClock()
	r := newReplica(t, s, Config{Default: Bucket{MaxTokens: 1, RefillRate: 1, RefillTime: time.Hour}}, clock)
	id := &Identifier{APIClient: func(r *http.Request) (string, bool) {
		return "client-7", r.Header.Get("X-API-Secret") == testSecret
	}}
	var calls atomic.Int64
	h := r.lim.Middleware(id, nil, nil)(counting(&calls))
	auth := map[string]string{"X-API-Secret": testSecret}
	lines := func() []string {
		var out []string
		for _, l := range strings.Split(r.logs.String(), "\n") {
			if strings.Contains(l, "client rate limited repeatedly") {
				out = append(out, l)
			}
		}
		return out
	}

	serve(h, http.MethodPost, "/v1/notifications", "203.0.113.7:1", auth) // the one token
	for range 9 {
		serve(h, http.MethodPost, "/v1/notifications", "203.0.113.7:1", auth)
	}
	if got := lines(); len(got) != 0 {
		t.Fatalf("logged after 9 refusals: %q", got)
	}
	serve(h, http.MethodPost, "/v1/notifications", "203.0.113.7:1", auth)
	got := lines()
	if len(got) != 1 || !strings.Contains(got[0], "refusals=10") || !strings.Contains(got[0], "ip=203.0.113.7") ||
		!strings.Contains(got[0], "group=api") || !strings.Contains(got[0], "api_client=true") {
		t.Fatalf("after 10 refusals: %q", got)
	}
	// At most one line a minute per client, however many refusals.
	for range 20 {
		clock.Advance(time.Second)
		serve(h, http.MethodPost, "/v1/notifications", "203.0.113.7:1", auth)
	}
	if got := lines(); len(got) != 1 {
		t.Fatalf("second line within a minute: %q", got)
	}
	clock.Advance(time.Minute)
	serve(h, http.MethodPost, "/v1/notifications", "203.0.113.7:1", auth)
	got = lines()
	if len(got) != 2 || !strings.Contains(got[1], "refusals=21") || !strings.Contains(got[1], "over=1m19s") {
		t.Fatalf("after another minute: %q", got)
	}
	// An occasional refusal is no news.
	for range 15 {
		clock.Advance(10 * time.Second)
		serve(h, http.MethodPost, "/v1/notifications", "198.51.100.4:1", nil)
	}
	if got := lines(); len(got) != 2 {
		t.Fatalf("a client refused now and then was logged: %q", got)
	}
	if strings.Contains(r.logs.String(), testSecret) {
		t.Fatal("log carries the API secret")
	}
}
