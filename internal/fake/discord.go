package fake

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"
)

// DiscordBucket is the X-RateLimit-Bucket the fake sends. As on Discord, the
// hash names the route, so every webhook gets the same one; the limit itself
// applies per webhook (the route's major parameter).
const DiscordBucket = "6f2a8c0e1d3b5a79e4c2f0a1b3d5e7f9"

// Default per-webhook limit the fake reports in its headers when Limit has
// not been called (about what Discord allows: 5 requests per 2 s). It is
// reported, not enforced.
const (
	DefaultDiscordLimit  = 5
	DefaultDiscordWindow = 2 * time.Second
)

var discordPath = regexp.MustCompile(`^/api/(?:(v[0-9]+)/)?webhooks/([^/]+)/([^/]+)$`)

// DiscordRequest is one request the Discord fake received.
type DiscordRequest struct {
	// WebhookID and Token are the path's parts ("" when the path is not a
	// webhook path).
	WebhookID, Token string
	// Version is the path's API version segment, e.g. "v10"; "" for the
	// unversioned /api/webhooks/... form.
	Version string
	// ThreadID is the thread_id query parameter.
	ThreadID string
	Method   string
	Path     string
	Query    url.Values
	Header   http.Header
	// Body is the JSON body decoded generically (nil when it is not a JSON
	// object). Treat it as read-only.
	Body map[string]any
	// Raw is the body as received.
	Raw []byte
	// At is when the request arrived.
	At time.Time
}

// Discord is a fake Discord webhook API. It is safe for concurrent use.
type Discord struct {
	s *server

	mu      sync.Mutex
	reqs    []DiscordRequest
	perHook map[string]int
	script  func(DiscordRequest, int) Response
	limit   discordLimit
	buckets map[string]*discordBucket
	gStart  time.Time // global window start
	gCount  int
	msgSeq  int64
	now     func() time.Time
}

type discordLimit struct {
	perWebhook int
	window     time.Duration
	global     int // per second, 0 = off
	enforce    bool
}

type discordBucket struct {
	reset time.Time
	used  int
}

// NewDiscord starts a fake Discord. t.Cleanup closes it; with a nil t the
// caller must call Close. By default every valid execute request is answered
// 204 with X-RateLimit-* headers of a 5-per-2-s bucket that is tracked but
// not enforced (see Limit).
func NewDiscord(t testing.TB) *Discord {
	f := &Discord{
		perHook: make(map[string]int),
		buckets: make(map[string]*discordBucket),
		limit:   discordLimit{perWebhook: DefaultDiscordLimit, window: DefaultDiscordWindow},
		now:     time.Now,
	}
	f.s = newServer(t, http.HandlerFunc(f.serveHTTP))
	return f
}

// Close shuts the server down, releasing hanging requests. Safe to call twice.
func (f *Discord) Close() { f.s.close() }

// URL is the server's base URL, e.g. "http://127.0.0.1:40123".
func (f *Discord) URL() string { return f.s.srv.URL }

// WebhookURL is the unversioned webhook URL Discord would hand out for id and
// token, on this server: URL() + "/api/webhooks/<id>/<token>".
func (f *Discord) WebhookURL(id, token string) string {
	return f.URL() + "/api/webhooks/" + id + "/" + token
}

// Requests returns a copy of the requests received so far, oldest first.
func (f *Discord) Requests() []DiscordRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]DiscordRequest(nil), f.reqs...)
}

// Count is the number of requests received so far.
func (f *Discord) Count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

// Script sets fn to answer well-formed execute requests. n is the number of
// requests received for that webhook so far, this one included (1-based).
// Returning the zero Response falls back to the default answer. fn runs on
// the server's goroutines, without the fake's lock (it may call Count), and
// must be safe for concurrent use. Script(nil) removes it.
func (f *Discord) Script(fn func(r DiscordRequest, n int) Response) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script = fn
}

// Limit enforces a realistic limiter from now on: perWebhook requests per
// window for each webhook (a fixed window starting at the first request, as
// X-RateLimit-Reset-After counts down), and, when global > 0, global requests
// per second over all webhooks. A request over a limit is answered 429 with
// {"message": "You are being rate limited.", "retry_after": <float s>,
// "global": <bool>} and Retry-After, X-RateLimit-Scope (and
// X-RateLimit-Global) headers. On the unversioned path, like Discord's old API
// version, retry_after is in milliseconds. perWebhook <= 0 leaves webhooks
// unlimited; window <= 0 means DefaultDiscordWindow.
func (f *Discord) Limit(perWebhook int, window time.Duration, global int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if window <= 0 {
		window = DefaultDiscordWindow
	}
	f.limit = discordLimit{perWebhook: perWebhook, window: window, global: global, enforce: true}
	if perWebhook <= 0 {
		f.limit.perWebhook = 0
	}
	f.buckets = make(map[string]*discordBucket)
}

func (f *Discord) serveHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	req := DiscordRequest{
		Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Raw: raw,
	}
	req.ThreadID = req.Query.Get("thread_id")
	m := discordPath.FindStringSubmatch(r.URL.Path)
	if m != nil {
		req.Version, req.WebhookID, req.Token = m[1], m[2], m[3]
	}
	var body map[string]any
	if json.Unmarshal(raw, &body) == nil {
		req.Body = body
	}

	f.mu.Lock()
	req.At = f.now()
	f.reqs = append(f.reqs, req)
	n := 0
	if m != nil {
		f.perHook[req.WebhookID]++
		n = f.perHook[req.WebhookID]
	}
	script := f.script
	f.mu.Unlock()

	if m == nil {
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "404: Not Found", "code": 0}, nil)
		return
	}
	if r.Method != http.MethodPost {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"message": "405: Method Not Allowed", "code": 0}, nil)
		return
	}
	if !isSnowflake(req.WebhookID) {
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": "Value \"" + req.WebhookID + "\" is not snowflake.", "code": 50035}, nil)
		return
	}
	if status, e := validateDiscordMessage(r.Header.Get("Content-Type"), raw); e != nil {
		writeJSON(w, status, e, nil)
		return
	}
	if script != nil {
		resp := script(req, n)
		if !resp.isDefault() {
			f.s.respond(w, r, resp)
			return
		}
		if !f.s.sleep(r.Context(), resp.Delay) {
			return
		}
	}

	f.mu.Lock()
	h, rl := f.take(req.WebhookID, f.now())
	f.msgSeq++
	seq := f.msgSeq
	f.mu.Unlock()

	if rl != nil {
		retry := rl.after
		if oldDiscordAPI(req.Version) {
			retry = math.Ceil(rl.after * 1000) // milliseconds before v8
		}
		writeJSON(w, http.StatusTooManyRequests, map[string]any{
			"message": "You are being rate limited.", "retry_after": retry, "global": rl.global,
		}, h)
		return
	}
	if v := req.Query.Get("wait"); v == "true" || v == "1" {
		writeJSON(w, http.StatusOK, discordMessage(seq, req), h)
		return
	}
	for k, vs := range h {
		w.Header()[k] = vs
	}
	w.WriteHeader(http.StatusNoContent)
}

type rateLimited struct {
	after  float64 // seconds
	global bool
}

// take counts one request against the limiter; f.mu is held. It returns the
// rate-limit headers to send and, when the request is over a limit, the 429's
// details.
func (f *Discord) take(id string, now time.Time) (http.Header, *rateLimited) {
	l := f.limit
	h := http.Header{}
	if l.enforce && l.global > 0 {
		if f.gStart.IsZero() || now.Sub(f.gStart) >= time.Second {
			f.gStart, f.gCount = now, 0
		}
		if f.gCount >= l.global {
			after := f.gStart.Add(time.Second).Sub(now).Seconds()
			h.Set("Retry-After", ceilSeconds(after))
			h.Set("X-RateLimit-Global", "true")
			h.Set("X-RateLimit-Scope", "global")
			return h, &rateLimited{after: roundMillis(after), global: true}
		}
		f.gCount++
	}
	limit := l.perWebhook
	if limit == 0 {
		limit = DefaultDiscordLimit // reported, not enforced
	}
	b := f.buckets[id]
	if b == nil {
		b = &discordBucket{}
		f.buckets[id] = b
	}
	if !now.Before(b.reset) {
		b.reset, b.used = now.Add(l.window), 0
	}
	over := l.enforce && l.perWebhook > 0 && b.used >= l.perWebhook
	if !over {
		b.used++
	}
	resetAfter := b.reset.Sub(now).Seconds()
	h.Set("X-RateLimit-Bucket", DiscordBucket)
	h.Set("X-RateLimit-Limit", strconv.Itoa(limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(max(0, limit-b.used)))
	h.Set("X-RateLimit-Reset", strconv.FormatFloat(float64(b.reset.UnixMilli())/1000, 'f', 3, 64))
	h.Set("X-RateLimit-Reset-After", strconv.FormatFloat(resetAfter, 'f', 3, 64))
	if !over {
		return h, nil
	}
	h.Set("Retry-After", ceilSeconds(resetAfter))
	h.Set("X-RateLimit-Scope", "user")
	return h, &rateLimited{after: roundMillis(resetAfter)}
}

func oldDiscordAPI(version string) bool {
	if version == "" {
		return true
	}
	n, err := strconv.Atoi(version[1:])
	return err == nil && n < 8
}

func ceilSeconds(s float64) string { return strconv.Itoa(int(math.Ceil(s))) }

func roundMillis(s float64) float64 { return math.Round(s*1000) / 1000 }

func isSnowflake(s string) bool {
	if len(s) == 0 || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// discordMessage is the message object returned with ?wait=true.
func discordMessage(seq int64, r DiscordRequest) map[string]any {
	m := map[string]any{
		"id":         strconv.FormatInt(1_200_000_000_000_000_000+seq, 10),
		"type":       0,
		"channel_id": "1100000000000000001",
		"webhook_id": r.WebhookID,
		"content":    "",
		"embeds":     []any{},
		"timestamp":  r.At.UTC().Format(time.RFC3339Nano),
	}
	if c, ok := r.Body["content"].(string); ok {
		m["content"] = c
	}
	if e, ok := r.Body["embeds"].([]any); ok {
		m["embeds"] = e
	}
	return m
}

// Respond404UnknownWebhook is Discord's answer for a deleted webhook.
func Respond404UnknownWebhook() Response {
	return RespondDiscordError(http.StatusNotFound, 10015, "Unknown Webhook")
}

// RespondDiscordError is a Discord error answer {"message": message, "code":
// code} with status.
func RespondDiscordError(status, code int, message string) Response {
	return Response{Status: status, Body: mustJSON(map[string]any{"message": message, "code": code})}
}

// Respond429 is a per-webhook (scope "user") rate-limit answer asking to wait
// retryAfter seconds: the body's float retry_after, Retry-After rounded up to
// whole seconds, and exhausted X-RateLimit-* headers.
func Respond429(retryAfter float64) Response {
	return discord429(retryAfter, false)
}

// Respond429Global is Discord's global rate-limit answer: "global": true,
// X-RateLimit-Global: true, X-RateLimit-Scope: global.
func Respond429Global(retryAfter float64) Response {
	return discord429(retryAfter, true)
}

func discord429(retryAfter float64, global bool) Response {
	h := http.Header{}
	h.Set("Retry-After", ceilSeconds(retryAfter))
	if global {
		h.Set("X-RateLimit-Global", "true")
		h.Set("X-RateLimit-Scope", "global")
	} else {
		h.Set("X-RateLimit-Bucket", DiscordBucket)
		h.Set("X-RateLimit-Limit", strconv.Itoa(DefaultDiscordLimit))
		h.Set("X-RateLimit-Remaining", "0")
		h.Set("X-RateLimit-Reset", strconv.FormatFloat(float64(time.Now().Add(time.Duration(retryAfter*float64(time.Second))).UnixMilli())/1000, 'f', 3, 64))
		h.Set("X-RateLimit-Reset-After", strconv.FormatFloat(retryAfter, 'f', 3, 64))
		h.Set("X-RateLimit-Scope", "user")
	}
	return Response{Status: http.StatusTooManyRequests, Header: h, Body: mustJSON(map[string]any{
		"message": "You are being rate limited.", "retry_after": retryAfter, "global": global,
	})}
}

// RespondCloudflareBan is what a Cloudflare IP ban looks like: a plain 429
// with an HTML page, no rate-limit headers and no JSON.
func RespondCloudflareBan() Response {
	h := http.Header{}
	h.Set("Content-Type", "text/html; charset=UTF-8")
	h.Set("Server", "cloudflare")
	return Response{Status: http.StatusTooManyRequests, Header: h,
		Body: "<!DOCTYPE html><html><head><title>Access denied | discord.com used Cloudflare to restrict access</title></head>" +
			"<body><h1>Error 1015</h1><p>You are being rate limited</p></body></html>"}
}
