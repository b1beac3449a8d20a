package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// firstWebhookID is the id of the fake's webhook 0: a snowflake-sized number.
const firstWebhookID = 100_000_000_000_000_000

// maxFakeBody bounds what the fake reads of a request.
const maxFakeBody = 1 << 20

// DestinationConfig configures the fake Discord.
type DestinationConfig struct {
	// Listen is host:port (DefaultFakeListen when empty).
	Listen string
	// Marker prefixes the job number in each message text ("hb-<run>-"):
	// a request whose body holds Marker followed by digits delivers that job.
	Marker string
	// Deliver is called for every successful (2xx) request carrying Marker,
	// with the job number that follows it. It must be safe for concurrent use.
	Deliver func(seq int)
	// Latency delays every answer.
	Latency time.Duration
	// RateLimit and GlobalLimit: see Config.
	RateLimit   RateLimit
	GlobalLimit int
}

// Destination is a lean fake of Discord's webhook execute endpoint,
// POST /api[/v{N}]/webhooks/{id}/{token}, built for throughput rather than
// inspection: it keeps counters, not requests. A valid request is answered
// 204 with X-RateLimit-* headers (after Latency), or, over a RateLimit or
// GlobalLimit, 429 with Retry-After, X-RateLimit-Scope and the body
// {"message": "You are being rate limited.", "retry_after": <float s>,
// "global": <bool>}, as Discord's v10 API answers. A path that is not a
// webhook's is answered 404; a token that is not the one WebhookURL handed
// out, 401; an empty or non-JSON body, 400.
type Destination struct {
	cfg     DestinationConfig
	marker  []byte
	limiter *limiter
	ln      net.Listener
	srv     *http.Server
	served  chan struct{}

	requests, delivered, rateLimited, refused, foreign atomic.Int64
}

// DestinationStats are the fake's counters.
type DestinationStats struct {
	// Requests is every request received.
	Requests int64 `json:"requests"`
	// Delivered counts 2xx answers; Foreign those of them that carried no job
	// of this run.
	Delivered int64 `json:"delivered"`
	Foreign   int64 `json:"foreign"`
	// RateLimited counts 429 answers.
	RateLimited int64 `json:"rate_limited"`
	// Refused counts other 4xx answers (bad path, token or body).
	Refused int64 `json:"refused"`
}

// NewDestination listens on cfg.Listen and serves until Close.
func NewDestination(cfg DestinationConfig) (*Destination, error) {
	if cfg.Listen == "" {
		cfg.Listen = DefaultFakeListen
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("fake discord: listen on %s: %w", cfg.Listen, err)
	}
	d := &Destination{
		cfg:     cfg,
		marker:  []byte(cfg.Marker),
		limiter: newLimiter(cfg.RateLimit, cfg.GlobalLimit),
		ln:      ln,
		served:  make(chan struct{}),
	}
	d.srv = &http.Server{Handler: d, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() {
		defer close(d.served)
		_ = d.srv.Serve(ln)
	}()
	return d, nil
}

// URL is the fake's base URL, e.g. "http://127.0.0.1:40123".
func (d *Destination) URL() string { return "http://" + d.ln.Addr().String() }

// WebhookURL is the URL of webhook i, in the unversioned form Discord hands
// out: URL() + "/api/webhooks/<id>/<token>".
func (d *Destination) WebhookURL(i int) string {
	id := webhookID(i)
	return d.URL() + "/api/webhooks/" + id + "/" + webhookToken(id)
}

func webhookID(i int) string { return strconv.FormatInt(firstWebhookID+int64(i), 10) }

// webhookToken is the token of webhook id: not secret, only checked.
func webhookToken(id string) string { return "bench_" + id }

// Stats returns the counters so far.
func (d *Destination) Stats() DestinationStats {
	return DestinationStats{
		Requests: d.requests.Load(), Delivered: d.delivered.Load(), Foreign: d.foreign.Load(),
		RateLimited: d.rateLimited.Load(), Refused: d.refused.Load(),
	}
}

// Close stops the server, cutting requests still waiting out a Latency.
func (d *Destination) Close() error {
	err := d.srv.Close()
	<-d.served
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (d *Destination) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.requests.Add(1)
	id, token, ok := parseWebhookPath(r.URL.Path)
	if !ok {
		d.fail(w, http.StatusNotFound, `{"message": "404: Not Found", "code": 0}`)
		return
	}
	if r.Method != http.MethodPost {
		d.fail(w, http.StatusMethodNotAllowed, `{"message": "405: Method Not Allowed", "code": 0}`)
		return
	}
	if token != webhookToken(id) {
		d.fail(w, http.StatusUnauthorized, `{"message": "Invalid Webhook Token", "code": 50027}`)
		return
	}
	buf := bodyPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bodyPool.Put(buf)
	if _, err := buf.ReadFrom(io.LimitReader(r.Body, maxFakeBody)); err != nil {
		return // the client went away
	}
	body := bytes.TrimSpace(buf.Bytes())
	if len(body) == 0 || body[0] != '{' {
		d.fail(w, http.StatusBadRequest, `{"message": "Cannot send an empty message", "code": 50006}`)
		return
	}
	seq, found := findSeq(body, d.marker)

	v := d.limiter.take(id)
	v.writeHeaders(w.Header())
	if v.limited {
		d.rateLimited.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprintf(w, `{"message": "You are being rate limited.", "retry_after": %s, "global": %t}`,
			strconv.FormatFloat(v.retryAfter, 'f', -1, 64), v.global)
		return
	}
	if !sleepCtx(r.Context(), d.cfg.Latency) {
		return
	}
	d.delivered.Add(1)
	if found && d.cfg.Deliver != nil {
		d.cfg.Deliver(seq)
	} else {
		d.foreign.Add(1)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (d *Destination) fail(w http.ResponseWriter, status int, body string) {
	d.refused.Add(1)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// parseWebhookPath splits /api/webhooks/{id}/{token} or
// /api/v{N}/webhooks/{id}/{token}; the id must be numeric.
func parseWebhookPath(p string) (id, token string, ok bool) {
	rest, ok := strings.CutPrefix(p, "/api/")
	if !ok {
		return "", "", false
	}
	if strings.HasPrefix(rest, "v") {
		v, after, found := strings.Cut(rest, "/")
		if !found || !isDigits(v[1:]) {
			return "", "", false
		}
		rest = after
	}
	rest, ok = strings.CutPrefix(rest, "webhooks/")
	if !ok {
		return "", "", false
	}
	id, token, ok = strings.Cut(rest, "/")
	if !ok || !isDigits(id) || token == "" || strings.Contains(token, "/") {
		return "", "", false
	}
	return id, token, true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// findSeq finds marker in body and reads the decimal number after it.
func findSeq(body, marker []byte) (int, bool) {
	if len(marker) == 0 {
		return 0, false
	}
	i := bytes.Index(body, marker)
	if i < 0 {
		return 0, false
	}
	n, digits := 0, 0
	for _, c := range body[i+len(marker):] {
		if c < '0' || c > '9' || digits == 9 {
			break
		}
		n = n*10 + int(c-'0')
		digits++
	}
	return n, digits > 0
}

// sleepCtx waits d; false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
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
	}
}
