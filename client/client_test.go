package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/client"
	"github.com/heraldrelay/herald/internal/challenge"
	"github.com/heraldrelay/herald/internal/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const secret = "s3cret-api-key"

// fakeHerald is Herald's API as far as the client sees it: a real challenge
// Service (on an embedded NATS) in front of canned /v1 handlers.
type fakeHerald struct {
	srv     *httptest.Server
	svc     *challenge.Service
	m       *metrics.Metrics
	limited atomic.Bool // refuse requests without a clearance

	mu       sync.Mutex
	received []received
}

type received struct {
	body           client.Notification
	idempotencyKey string
	clearance      string
}

func newFakeHerald(t *testing.T, difficulty int) *fakeHerald {
	t.Helper()
	_, _, js := testkit.JetStream(t)
	kv, err := challenge.EnsureBucket(testkit.Context(t, 10*time.Second), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeHerald{m: metrics.New(prometheus.NewRegistry())}
	log, _ := testkit.Logger(t, secret)
	f.svc, err = challenge.New(challenge.Config{
		Difficulty: difficulty,
		Keys:       []string{"k1:0123456789abcdef0123456789abcdef"},
		ClientIP:   peerIP,
	}, kv, f.m, log)
	if err != nil {
		t.Fatal(err)
	}

	api := http.NewServeMux()
	api.HandleFunc("POST /v1/notifications", func(w http.ResponseWriter, r *http.Request) {
		var n client.Notification
		if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.received = append(f.received, received{n, r.Header.Get("Idempotency-Key"), r.Header.Get(challenge.ClearanceHeader)})
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"id":"job-1","status":"queued","duplicate":false}`)
	})
	api.HandleFunc("GET /v1/notifications/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.PathValue("id") != "job-1" {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":{"code":"not_found","message":"no such notification"}}`)
			return
		}
		io.WriteString(w, `{"id":"job-1","channel":"discord","state":"delivered","attempts":0,"updated_at":"2026-01-02T03:04:05Z"}`)
	})

	mux := http.NewServeMux()
	mux.Handle("/challenge/", f.svc.Handler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-API-Secret") != secret {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":{"code":"unauthorized","message":"missing or wrong API secret"}}`)
			return
		}
		if _, _, ok := f.svc.Clearance(r, "127.0.0.1"); !ok && f.limited.Load() {
			f.svc.Respond(w, r, "127.0.0.1", "api", "key-of-this-client", 3*time.Second)
			return
		}
		api.ServeHTTP(w, r)
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeHerald) client(t *testing.T, opts client.Options) *client.Client {
	t.Helper()
	opts.BaseURL = f.srv.URL + "/"
	if opts.Secret == "" {
		opts.Secret = secret
	}
	c, err := client.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var note = client.Notification{
	Channel:     herald.ChannelDiscord,
	Credentials: herald.Credentials{Webhook: "sealed"},
	Message:     herald.Message{Title: "Deploy", Text: "done"},
}

func TestSendSolvesTheChallengeAndRetries(t *testing.T) {
	f := newFakeHerald(t, 3)
	f.limited.Store(true)
	c := f.client(t, client.Options{SolveChallenges: true})

	for i := range 2 {
		acc, err := c.Send(context.Background(), note, "deploy-42")
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if acc.ID != "job-1" || acc.Status != herald.StateQueued {
			t.Errorf("send %d: %+v", i, acc)
		}
	}
	if c.Clearance() == "" {
		t.Fatal("no clearance kept")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.received) != 2 {
		t.Fatalf("the API got %d notifications, want 2", len(f.received))
	}
	for _, r := range f.received {
		if r.body.Message.Title != "Deploy" || r.idempotencyKey != "deploy-42" || r.clearance != c.Clearance() {
			t.Errorf("received %+v", r)
		}
	}
	// One challenge for both sends: the second went through on the clearance.
	if got := testutil.ToFloat64(f.m.ChallengesSolved); got != 1 {
		t.Errorf("challenges solved = %v, want 1", got)
	}
}

func TestRateLimitedWithoutSolving(t *testing.T) {
	f := newFakeHerald(t, 3)
	f.limited.Store(true)
	for name, opts := range map[string]client.Options{
		"solving off":   {},
		"too difficult": {SolveChallenges: true, MaxDifficulty: 2},
	} {
		_, err := f.client(t, opts).Send(context.Background(), note, "")
		var e *client.Error
		if !errors.As(err, &e) || e.StatusCode != http.StatusTooManyRequests || e.Code != "rate_limited" || e.RetryAfter != 3*time.Second {
			t.Errorf("%s: got %v, want a 429 rate_limited error with Retry-After 3s", name, err)
		}
	}
	if got := testutil.ToFloat64(f.m.ChallengesSolved); got != 0 {
		t.Errorf("challenges solved = %v, want 0", got)
	}
}

func TestStatus(t *testing.T) {
	f := newFakeHerald(t, 1)
	c := f.client(t, client.Options{})
	st, err := c.Status(context.Background(), "job-1")
	if err != nil || st.State != herald.StateDelivered || st.Channel != herald.ChannelDiscord {
		t.Errorf("Status = %+v, %v", st, err)
	}
	_, err = c.Status(context.Background(), "job-2")
	var e *client.Error
	if !errors.As(err, &e) || e.StatusCode != http.StatusNotFound || e.Code != "not_found" || e.Message != "no such notification" {
		t.Errorf("unknown job: %v", err)
	}
}

func TestWrongSecret(t *testing.T) {
	f := newFakeHerald(t, 1)
	const given = "not-the-secret-42"
	_, err := f.client(t, client.Options{Secret: given}).Send(context.Background(), note, "")
	var e *client.Error
	if !errors.As(err, &e) || e.StatusCode != http.StatusUnauthorized || e.Code != "unauthorized" {
		t.Fatalf("got %v, want 401 unauthorized", err)
	}
	if strings.Contains(err.Error(), given) {
		t.Errorf("error %q holds the secret", err)
	}
}

// A challenge whose verify URL points at another host is not answered: the
// solution (and any header) would go somewhere else.
func TestVerifyURLOnAnotherHostIsIgnored(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, `{"error":"rate_limited","retry_after":1,"challenge":{"id":"x","algorithm":"sha256",`+
			`"seed":"ab","difficulty":1,"expires_at":"2030-01-01T00:00:00Z","verify_url":"`+other.URL+`/challenge/verify"}}`)
	}))
	defer srv.Close()
	c, _ := client.New(client.Options{BaseURL: srv.URL, SolveChallenges: true})
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/x", nil)
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests || elsewhere.Load() != 0 {
		t.Errorf("status %d, %d requests to the other host", res.StatusCode, elsewhere.Load())
	}
}

func TestNewChecksBaseURL(t *testing.T) {
	for _, u := range []string{"", "herald.example.com", "ftp://x", "http://x/?q=1"} {
		if _, err := client.New(client.Options{BaseURL: u}); err == nil {
			t.Errorf("BaseURL %q accepted", u)
		}
	}
}

// peerIP is the address of r's peer, the client's address in these tests
// (no proxy in front).
func peerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
