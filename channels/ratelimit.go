package channels

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Discord's rate-limit headers (https://discord.com/developers/docs/topics/rate-limits).
const (
	headerRateLimitLimit      = "X-RateLimit-Limit"
	headerRateLimitRemaining  = "X-RateLimit-Remaining"
	headerRateLimitReset      = "X-RateLimit-Reset"
	headerRateLimitResetAfter = "X-RateLimit-Reset-After"
	headerRateLimitBucket     = "X-RateLimit-Bucket"
	headerRateLimitGlobal     = "X-RateLimit-Global"
	headerRateLimitScope      = "X-RateLimit-Scope"
)

// RateLimit is what one response's X-RateLimit-* headers say about the
// destination's bucket. Discord asks clients to read these rather than
// hard-code limits; the pacing layer learns from them.
type RateLimit struct {
	// Bucket is the opaque X-RateLimit-Bucket hash. Discord gives every webhook
	// the same hash for the same route; the limit still applies per webhook, so
	// key state by destination and bucket together.
	Bucket string
	// Limit is the number of requests the bucket allows per window.
	Limit int
	// Remaining is the number of requests left in the current window.
	Remaining int
	// ResetAfter is how long until the window resets (X-RateLimit-Reset-After,
	// which, unlike the epoch X-RateLimit-Reset, does not depend on clocks
	// agreeing).
	ResetAfter time.Duration
	// Global is true when X-RateLimit-Global says the limit hit is the global one.
	Global bool
	// Scope is X-RateLimit-Scope on a 429: "user", "global" or "shared".
	Scope string
	// Present is true when the response carried any X-RateLimit-* header.
	Present bool
	// Covers is what a 429 covers (Classify429, from the headers and
	// Discord's body): set by the Discord channel before it calls Observe,
	// LimitNone on any other answer. ParseRateLimit leaves it LimitNone.
	Covers Limit429
}

// ParseRateLimit reads h's X-RateLimit-* headers. Missing or malformed values
// are left zero; it never fails.
func ParseRateLimit(h http.Header) RateLimit {
	var rl RateLimit
	for _, k := range [...]string{
		headerRateLimitLimit, headerRateLimitRemaining, headerRateLimitReset,
		headerRateLimitResetAfter, headerRateLimitBucket, headerRateLimitGlobal, headerRateLimitScope,
	} {
		if len(h.Values(k)) > 0 {
			rl.Present = true
			break
		}
	}
	if !rl.Present {
		return rl
	}
	rl.Bucket = strings.TrimSpace(h.Get(headerRateLimitBucket))
	rl.Limit = headerInt(h, headerRateLimitLimit)
	rl.Remaining = headerInt(h, headerRateLimitRemaining)
	if f, err := strconv.ParseFloat(strings.TrimSpace(h.Get(headerRateLimitResetAfter)), 64); err == nil && f > 0 && f < 1e9 {
		rl.ResetAfter = time.Duration(f * float64(time.Second))
	}
	rl.Global = strings.EqualFold(strings.TrimSpace(h.Get(headerRateLimitGlobal)), "true")
	rl.Scope = strings.ToLower(strings.TrimSpace(h.Get(headerRateLimitScope)))
	return rl
}

func headerInt(h http.Header, key string) int {
	n, err := strconv.Atoi(strings.TrimSpace(h.Get(key)))
	if err != nil || n < 0 {
		return 0
	}
	return n
}
