package bench

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// newTestDestination starts a fake recording the job numbers it delivers.
func newTestDestination(t *testing.T, cfg DestinationConfig) (*Destination, *deliveries) {
	t.Helper()
	got := &deliveries{}
	cfg.Marker = "hb-test-"
	cfg.Deliver = got.add
	d, err := NewDestination(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d, got
}

type deliveries struct {
	mu   sync.Mutex
	seqs []int
}

func (d *deliveries) add(seq int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.seqs = append(d.seqs, seq)
}

func (d *deliveries) list() []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]int(nil), d.seqs...)
}

// post sends a webhook execute request as Herald's Discord channel does (to
// the versioned path) and returns the answer with its body.
func post(t *testing.T, url, body string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func versioned(d *Destination, i int) string {
	return strings.Replace(d.WebhookURL(i), "/api/webhooks/", "/api/v10/webhooks/", 1)
}

func jobBody(seq int) string {
	return `{"embeds":[{"title":"Herald bench","description":"hb-test-` + strconv.Itoa(seq) + `"}]}`
}

func TestDestinationDeliversWithDiscordHeaders(t *testing.T) {
	d, got := newTestDestination(t, DestinationConfig{})
	for _, url := range []string{versioned(d, 0), d.WebhookURL(1)} {
		resp, body := post(t, url, jobBody(42))
		if resp.StatusCode != http.StatusNoContent || body != "" {
			t.Fatalf("%d %q, want 204 and no body", resp.StatusCode, body)
		}
		h := resp.Header
		if h.Get("X-RateLimit-Bucket") != FakeBucket || h.Get("X-RateLimit-Limit") != "1000000" ||
			h.Get("X-RateLimit-Remaining") != "999999" || h.Get("X-RateLimit-Reset-After") == "" || h.Get("X-RateLimit-Reset") == "" {
			t.Errorf("rate-limit headers of an unlimited fake: %v", h)
		}
		if h.Get("Retry-After") != "" || h.Get("X-RateLimit-Scope") != "" {
			t.Errorf("a success carries 429 headers: %v", h)
		}
	}
	if s := got.list(); len(s) != 2 || s[0] != 42 || s[1] != 42 {
		t.Errorf("delivered %v, want job 42 twice", s)
	}
	resp, _ := post(t, versioned(d, 2), `{"content":"no marker"}`)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("foreign message: %d", resp.StatusCode)
	}
	st := d.Stats()
	if st != (DestinationStats{Requests: 3, Delivered: 3, Foreign: 1}) {
		t.Errorf("stats %+v", st)
	}
}

func TestDestinationRateLimitsLikeDiscord(t *testing.T) {
	d, got := newTestDestination(t, DestinationConfig{RateLimit: RateLimit{Limit: 2, Window: time.Hour}})
	url := versioned(d, 0)
	for i, wantRemaining := range []string{"1", "0"} {
		resp, _ := post(t, url, jobBody(i))
		if resp.StatusCode != http.StatusNoContent || resp.Header.Get("X-RateLimit-Remaining") != wantRemaining ||
			resp.Header.Get("X-RateLimit-Limit") != "2" {
			t.Fatalf("request %d: %d, remaining %q", i, resp.StatusCode, resp.Header.Get("X-RateLimit-Remaining"))
		}
	}
	resp, body := post(t, url, jobBody(2))
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third request in the window: %d, want 429", resp.StatusCode)
	}
	h := resp.Header
	if h.Get("Content-Type") != "application/json" || h.Get("X-RateLimit-Scope") != "user" || h.Get("X-RateLimit-Remaining") != "0" ||
		h.Get("X-RateLimit-Bucket") != FakeBucket || h.Get("X-RateLimit-Global") != "" {
		t.Errorf("429 headers: %v", h)
	}
	retry, err := strconv.Atoi(h.Get("Retry-After"))
	if err != nil || retry < 3599 || retry > 3600 {
		t.Errorf("Retry-After %q, want whole seconds to the window's end", h.Get("Retry-After"))
	}
	var rl struct {
		Message    string   `json:"message"`
		RetryAfter *float64 `json:"retry_after"`
		Global     *bool    `json:"global"`
	}
	if err := json.Unmarshal([]byte(body), &rl); err != nil {
		t.Fatalf("429 body %q: %v", body, err)
	}
	if rl.Message != "You are being rate limited." || rl.RetryAfter == nil || *rl.RetryAfter <= 3598 || *rl.RetryAfter > 3600 ||
		rl.Global == nil || *rl.Global {
		t.Errorf("429 body %q", body)
	}
	// Another webhook has its own bucket.
	if resp, _ := post(t, versioned(d, 1), jobBody(3)); resp.StatusCode != http.StatusNoContent {
		t.Errorf("other webhook: %d, want 204", resp.StatusCode)
	}
	if s := got.list(); len(s) != 3 {
		t.Errorf("delivered %v: a 429 must not count as a delivery", s)
	}
	if st := d.Stats(); st.RateLimited != 1 || st.Delivered != 3 {
		t.Errorf("stats %+v", st)
	}
}

func TestDestinationGlobalLimit(t *testing.T) {
	d, _ := newTestDestination(t, DestinationConfig{GlobalLimit: 1})
	d.limiter.now = func() time.Time { return time.Unix(1000, 0) } // one frozen second
	if resp, _ := post(t, versioned(d, 0), jobBody(0)); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("first: %d", resp.StatusCode)
	}
	resp, body := post(t, versioned(d, 1), jobBody(1))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("X-RateLimit-Global") != "true" ||
		resp.Header.Get("X-RateLimit-Scope") != "global" || resp.Header.Get("Retry-After") != "1" ||
		!strings.Contains(body, `"global": true`) || !strings.Contains(body, `"retry_after": 1`) {
		t.Errorf("global 429: %d %v %q", resp.StatusCode, resp.Header, body)
	}
}

func TestLimiterWindowResets(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(RateLimit{Limit: 1, Window: 2 * time.Second}, 0)
	l.now = func() time.Time { return now }
	if v := l.take("1"); v.limited || v.remaining != 0 || v.resetAfter != 2 {
		t.Fatalf("first: %+v", v)
	}
	now = now.Add(500 * time.Millisecond)
	if v := l.take("1"); !v.limited || v.retryAfter != 1.5 {
		t.Fatalf("second in the window: %+v, want limited with 1.5 s to wait", v)
	}
	now = now.Add(1500 * time.Millisecond)
	if v := l.take("1"); v.limited {
		t.Fatalf("after the window: %+v", v)
	}
}

func TestDestinationRefusesWhatDiscordRefuses(t *testing.T) {
	d, got := newTestDestination(t, DestinationConfig{})
	badToken := strings.TrimSuffix(versioned(d, 0), webhookToken(webhookID(0))) + "wrong"
	tests := []struct {
		name, method, url, body string
		want                    int
	}{
		{"not a webhook path", http.MethodPost, d.URL() + "/api/v10/channels/1/messages", jobBody(1), http.StatusNotFound},
		{"non-numeric id", http.MethodPost, d.URL() + "/api/v10/webhooks/abc/tok", jobBody(1), http.StatusNotFound},
		{"wrong token", http.MethodPost, badToken, jobBody(1), http.StatusUnauthorized},
		{"GET", http.MethodGet, versioned(d, 0), "", http.StatusMethodNotAllowed},
		{"empty body", http.MethodPost, versioned(d, 0), "", http.StatusBadRequest},
		{"not JSON", http.MethodPost, versioned(d, 0), "hb-test-1", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, tt.url, strings.NewReader(tt.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("%d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
	if s := got.list(); len(s) != 0 {
		t.Errorf("refused requests delivered %v", s)
	}
	if st := d.Stats(); st.Refused != int64(len(tests)) || st.Delivered != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestFindSeq(t *testing.T) {
	m := []byte("hb-ab12-")
	for _, tt := range []struct {
		body string
		want int
		ok   bool
	}{
		{`{"description":"hb-ab12-0"}`, 0, true},
		{`{"description":"hb-ab12-12345\n"}`, 12345, true},
		{`{"description":"hb-ab12-"}`, 0, false},
		{`{"description":"hb-ff00-7"}`, 0, false},
		{`{}`, 0, false},
	} {
		got, ok := findSeq([]byte(tt.body), m)
		if got != tt.want || ok != tt.ok {
			t.Errorf("findSeq(%s) = %d, %v; want %d, %v", tt.body, got, ok, tt.want, tt.ok)
		}
	}
}
