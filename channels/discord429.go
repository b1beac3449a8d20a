package channels

import (
	"encoding/json"
	"net/http"
)

// Limit429 is what a Discord 429 covers. Classify429 decides it, once, for
// the Discord channel (how long the job waits, and whether every webhook
// waits) and for pacing (which it learns through RateLimit.Covers).
type Limit429 int

const (
	// LimitNone: the answer is not a 429.
	LimitNone Limit429 = iota
	// LimitRoute: this webhook's own limit (scope "user"), or a limit shared
	// by everyone on the resource (scope "shared"). Only this webhook waits.
	LimitRoute
	// LimitGlobal: Discord's global per-IP limit. Every webhook waits.
	LimitGlobal
	// LimitBan: neither Discord's JSON body nor rate-limit headers, an HTML or
	// plain page: Cloudflare banning the relay's IP. Every webhook waits, for
	// longer.
	LimitBan
)

// String names the limit for logs.
func (l Limit429) String() string {
	switch l {
	case LimitRoute:
		return "route"
	case LimitGlobal:
		return "global"
	case LimitBan:
		return "ban"
	default:
		return "none"
	}
}

// Global reports whether every webhook must wait.
func (l Limit429) Global() bool { return l == LimitGlobal || l == LimitBan }

// discord429Body is what makes a JSON body Discord's: its error fields
// (message, code) or its rate-limit fields (retry_after, global).
type discord429Body struct {
	Message    *string  `json:"message"`
	Code       *int     `json:"code"`
	Global     *bool    `json:"global"`
	RetryAfter *float64 `json:"retry_after"`
}

func (b discord429Body) isDiscords() bool {
	return b.Message != nil || b.Code != nil || b.Global != nil || b.RetryAfter != nil
}

// Classify429 says what a 429 with headers h (parsed as rl) and body covers,
// as FACTS.md describes Discord: Discord's own JSON body (an object with its
// message, code, retry_after or global) decides ("global": true, or a global
// header, is the global limit; otherwise that route's limit, even when a
// proxy stripped the headers); without that body, X-RateLimit-Global or scope
// "global" is the global limit and any other rate-limit header a route's;
// with neither body nor headers it is Cloudflare's ban. status other than 429
// gives LimitNone.
func Classify429(status int, rl RateLimit, body []byte) Limit429 {
	if status != http.StatusTooManyRequests {
		return LimitNone
	}
	var b discord429Body
	if isJSONObject(body) && json.Unmarshal(body, &b) == nil && b.isDiscords() {
		if b.Global != nil && *b.Global || rl.Global || rl.Scope == "global" {
			return LimitGlobal
		}
		return LimitRoute
	}
	switch {
	case rl.Global || rl.Scope == "global":
		return LimitGlobal
	case rl.Present:
		return LimitRoute
	default:
		return LimitBan
	}
}
