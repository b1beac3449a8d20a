package challenge

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// limited is the body of a JSON 429.
type limited struct {
	Error      string     `json:"error"`
	RetryAfter int        `json:"retry_after"`
	Challenge  *Challenge `json:"challenge,omitempty"`
}

// Respond writes the 429 answer of a rate-limited request, with Retry-After
// and a fresh challenge bound to ip, group and bucketKey: an HTML page that
// solves it when the Accept header contains text/html, else JSON
//
//	{"error":"rate_limited","retry_after":S,"challenge":{"id","algorithm","seed","difficulty","expires_at","verify_url"}}
//
// When no challenge can be stored (the bucket is unreachable, counted in
// herald_kv_store_errors_total{store="challenge"}), the client already
// holds too many unsolved ones, or its difficulty would pass MaxDifficulty,
// the answer carries none: the client waits Retry-After, and the page says
// when to come back. Past MaxDifficulty, Retry-After is at least the time
// until the client's difficulty is back within it.
func (s *Service) Respond(w http.ResponseWriter, r *http.Request, ip, group, bucketKey string, retryAfter time.Duration) {
	html := wantsHTML(r)
	format := "json"
	if html {
		format = "html"
	}
	c, err := s.issue(r.Context(), ip, group, bucketKey)
	var pastCap *pastCapError
	switch {
	case err == nil:
		s.m.ChallengesIssued.WithLabelValues(format).Inc()
	case errors.As(err, &pastCap):
		retryAfter = max(retryAfter, pastCap.until.Sub(s.cfg.Now()))
	case errors.Is(err, errNotIssued):
	default:
		s.m.StoreErrors.WithLabelValues("challenge").Inc()
		s.warn("challenge: cannot issue a challenge; answering 429 without one", "err", err)
	}
	secs := seconds(retryAfter)
	h := w.Header()
	h.Set("Retry-After", strconv.Itoa(secs))
	h.Set("Cache-Control", "no-store")
	h.Add("Vary", "Accept")
	if html {
		s.writePage(w, r, c, secs)
		return
	}
	writeJSON(w, http.StatusTooManyRequests, limited{Error: "rate_limited", RetryAfter: secs, Challenge: c})
}

// wantsHTML reports whether r's Accept header asks for HTML.
func wantsHTML(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		if strings.Contains(strings.ToLower(v), "text/html") {
			return true
		}
	}
	return false
}

// seconds rounds d up to whole seconds, at least 1.
func seconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	return max(s, 1)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may be gone; nothing to do
}
