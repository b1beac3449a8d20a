// Package fake provides scriptable httptest servers that behave like the
// Discord webhook API and the Telegram Bot API as Herald's FACTS.md describes
// them: realistic success answers and rate-limit headers, a per-webhook and
// global limiter answering 429 like Discord, and request validation that
// refuses what the real services refuse (Discord's embed limits, Telegram's
// HTML entity parsing and 4096-character limit), so tests prove that what the
// channels send is acceptable.
//
// Both fakes serve loopback only. Other packages' tests may use them: the
// constructors take a testing.TB and close the server in t.Cleanup (a nil
// TB is allowed, e.g. in examples; the caller then calls Close).
//
// Every request, valid or not, is recorded. A request is answered in this
// order: malformed requests are refused like the real service would (400 and
// friends); then the Script, if set, may answer; then the fake's default
// (Discord: the limiter, then 204).
package fake

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Response is a scripted answer. The zero Response means "answer as by
// default"; a Response with only Delay set waits, then answers as by default.
type Response struct {
	// Status is the HTTP status; 0 means the default answer.
	Status int
	// Header is added to the answer as is (a scripted answer gets no other
	// headers, except a Content-Type guessed from Body when Header has none).
	Header http.Header
	// Body is written as is.
	Body string
	// Delay waits before answering (or until the client gives up).
	Delay time.Duration
	// Hang never answers: the handler waits until the client gives up or the
	// fake is closed.
	Hang bool
}

func (r Response) isDefault() bool { return r.Status == 0 && !r.Hang }

// server is the part both fakes share: the httptest server and its shutdown.
type server struct {
	srv  *httptest.Server
	done chan struct{}
	once sync.Once
}

func newServer(t testing.TB, h http.Handler) *server {
	s := &server{srv: httptest.NewServer(h), done: make(chan struct{})}
	if t != nil {
		t.Cleanup(s.close)
	}
	return s
}

// close releases hanging handlers first: httptest.Server.Close waits for
// every active request.
func (s *server) close() {
	s.once.Do(func() {
		close(s.done)
		s.srv.CloseClientConnections()
		s.srv.Close()
	})
}

// sleep waits d; false when the client left or the fake closed meanwhile.
func (s *server) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.done:
		return false
	}
}

// respond writes a scripted (non-default) answer.
func (s *server) respond(w http.ResponseWriter, r *http.Request, resp Response) {
	if !s.sleep(r.Context(), resp.Delay) {
		return
	}
	if resp.Hang {
		select {
		case <-r.Context().Done():
		case <-s.done:
		}
		return
	}
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	if resp.Body != "" && w.Header().Get("Content-Type") == "" {
		ct := "text/plain; charset=utf-8"
		if b := strings.TrimSpace(resp.Body); strings.HasPrefix(b, "{") || strings.HasPrefix(b, "[") {
			ct = "application/json"
		}
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(resp.Status)
	_, _ = io.WriteString(w, resp.Body)
}

// writeJSON answers status with v encoded as JSON and extra headers.
func writeJSON(w http.ResponseWriter, status int, v any, h http.Header) {
	for k, vs := range h {
		for _, x := range vs {
			w.Header().Add(k, x)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
