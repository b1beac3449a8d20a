package channels

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestNewHTTPClient(t *testing.T) {
	c := NewHTTPClient(7 * time.Second)
	if c.Timeout != 7*time.Second {
		t.Errorf("Timeout = %v", c.Timeout)
	}
	tr, ok := c.Transport.(*http.Transport)
	if !ok || tr == http.DefaultTransport {
		t.Fatalf("Transport = %T, want its own *http.Transport", c.Transport)
	}
	if tr.MaxIdleConnsPerHost != maxIdleConns || tr.MaxIdleConns != maxIdleConns || tr.IdleConnTimeout != 90*time.Second || tr.TLSHandshakeTimeout <= 0 || !tr.ForceAttemptHTTP2 {
		t.Errorf("transport settings: %+v", tr)
	}

	var hits int
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	defer target.Close()
	redirector := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusFound))
	defer redirector.Close()
	resp, err := c.Get(redirector.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || hits != 0 {
		t.Fatalf("status %d, target hits %d: redirect followed", resp.StatusCode, hits)
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestScrubTransport(t *testing.T) {
	const secretURL = "https://discord.com/api/v10/webhooks/1/SeCrEt"
	tests := []struct {
		name    string
		err     error
		is      error
		timeout bool
	}{
		{"deadline", &url.Error{Op: "Post", URL: secretURL, Err: context.DeadlineExceeded}, context.DeadlineExceeded, true},
		{"canceled", &url.Error{Op: "Post", URL: secretURL, Err: context.Canceled}, context.Canceled, false},
		{"net timeout", &url.Error{Op: "Post", URL: secretURL, Err: &net.OpError{Op: "dial", Net: "tcp", Err: timeoutErr{}}}, nil, true},
		{"nested url.Error", &url.Error{Op: "Post", URL: secretURL, Err: &url.Error{Op: "Get", URL: secretURL, Err: errors.New("boom")}}, nil, false},
		{"secret in cause", &url.Error{Op: "Post", URL: secretURL, Err: errors.New("bad thing at " + secretURL)}, nil, false},
		{"secret in timeout cause", &url.Error{Op: "Post", URL: secretURL, Err: fmt.Errorf("at %s: %w", secretURL, context.DeadlineExceeded)}, context.DeadlineExceeded, true},
		{"nil cause", &url.Error{Op: "Post", URL: secretURL}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := scrubTransport(tt.err, secretURL, "SeCrEt")
			assertNoSecrets(t, err, "SeCrEt", secretURL)
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			var ne net.Error
			if got := errors.As(err, &ne) && ne.Timeout(); tt.timeout && !got {
				t.Errorf("%v: not a net.Error timeout", err)
			}
			if err.Error() == "" {
				t.Error("empty text")
			}
		})
	}
}

func TestParseRateLimit(t *testing.T) {
	h := http.Header{}
	if rl := ParseRateLimit(h); rl != (RateLimit{}) {
		t.Fatalf("no headers: %+v", rl)
	}
	h.Set("X-RateLimit-Limit", "5")
	h.Set("X-RateLimit-Remaining", "4")
	h.Set("X-RateLimit-Reset", "1470173023.123")
	h.Set("X-RateLimit-Reset-After", "1.5")
	h.Set("X-RateLimit-Bucket", "abcd1234")
	h.Set("X-RateLimit-Global", "true")
	h.Set("X-RateLimit-Scope", "Shared")
	want := RateLimit{Bucket: "abcd1234", Limit: 5, Remaining: 4, ResetAfter: 1500 * time.Millisecond, Global: true, Scope: "shared", Present: true}
	if rl := ParseRateLimit(h); rl != want {
		t.Fatalf("got %+v, want %+v", rl, want)
	}
	bad := http.Header{"X-Ratelimit-Limit": {"x"}, "X-Ratelimit-Remaining": {"-3"}, "X-Ratelimit-Reset-After": {"NaN"}}
	if rl := ParseRateLimit(bad); rl != (RateLimit{Present: true}) {
		t.Fatalf("malformed: %+v", rl)
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		s    string
		n    int
		want string
	}{
		{"hello", 5, "hello"},
		{"hello", 4, "hel…"},
		{"hello", 1, "…"},
		{"hello", 0, ""},
		{"héllo😀", 3, "hé…"},
	}
	for _, tt := range tests {
		if got := truncateRunes(tt.s, tt.n); got != tt.want {
			t.Errorf("truncateRunes(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
		}
	}
	u16 := []struct {
		s    string
		n    int
		want string
	}{
		{"ab😀", 4, "ab😀"},
		{"ab😀c", 4, "ab…"}, // the pair does not fit beside "…"
		{"😀😀😀", 5, "😀😀…"},
		{"😀😀😀", 4, "😀…"},
		{"x", 0, ""},
	}
	for _, tt := range u16 {
		if got := truncateUTF16(tt.s, tt.n); got != tt.want || utf16Len(got) > tt.n {
			t.Errorf("truncateUTF16(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
		}
	}
	if got := description("a\x00b\nc "+strings.Repeat("x", 300), "b"); strings.ContainsAny(got, "\x00\n") || !strings.HasPrefix(got, "a [redacted] c") || len([]rune(got)) != maxDescription {
		t.Errorf("description = %q", got)
	}
}

func TestClampRetryAfter(t *testing.T) {
	for _, tt := range []struct {
		in   float64
		want time.Duration
	}{
		{0.8, 800 * time.Millisecond},
		{0, minRetryAfter},
		{-5, minRetryAfter},
		{math.NaN(), minRetryAfter},
		{math.Inf(1), time.Hour},
		{1e300, time.Hour},
		{0.001, minRetryAfter},
	} {
		if got := clampRetryAfter(tt.in, time.Hour); got != tt.want {
			t.Errorf("clampRetryAfter(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
	if s, ok := parseRetryAfterHeader(time.Unix(100, 0).UTC().Format(http.TimeFormat), time.Unix(40, 0)); !ok || s != 60 {
		t.Errorf("HTTP-date Retry-After: %v %v", s, ok)
	}
}
