package ratelimit

import (
	"errors"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

// GroupOf maps a request to its route group by path: /send-notification is
// GroupStreaky; /v1, /admin and /console (its sign-in too) and below GroupAPI; /register* GroupRegister;
// /challenge and below GroupChallenge. Anything else ("" : not limited)
// includes /health, /readyz and /metrics. The path is cleaned first, so
// "/x/../v1/" is still GroupAPI.
func GroupOf(r *http.Request) string {
	p := r.URL.Path
	if p == "" {
		p = "/"
	}
	p = path.Clean(p)
	switch {
	case p == "/send-notification":
		return GroupStreaky
	case under(p, "/v1"), under(p, "/admin"), under(p, "/console"):
		return GroupAPI
	case strings.HasPrefix(p, "/register"):
		return GroupRegister
	case under(p, "/challenge"):
		return GroupChallenge
	}
	return ""
}

// under reports whether p is dir or below it.
func under(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// Middleware limits requests: group(r) names the request's route group (nil
// means GroupOf), "" means not limited. A limited request is identified by
// id (nil: by its peer address alone), carries its Client in its context
// (ClientFrom), and takes a token from its bucket.
//
// Over the limit, onLimited answers (the challenge's 429); when it is nil,
// the answer is 429 with Retry-After and {"error":"rate_limited",
// "retry_after":<seconds>}. When the store is unreachable and
// Config.OnStoreError is OnStoreErrorDeny, the answer is 503 with Retry-After
// and {"error":"rate_limiter_unavailable","retry_after":<seconds>}: the
// client is not known to be over its limit, and no challenge it could solve
// would help, so it is told to retry as for any other outage.
func (l *Limiter) Middleware(id *Identifier, group func(*http.Request) string,
	onLimited func(w http.ResponseWriter, r *http.Request, c Client, group string, d Decision)) func(http.Handler) http.Handler {
	if group == nil {
		group = GroupOf
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			g := group(r)
			if g == "" {
				next.ServeHTTP(w, r)
				return
			}
			c := id.Identify(r)
			key := c.KeyFor(g)
			r = r.WithContext(WithClient(r.Context(), c))
			d, err := l.Take(r.Context(), g, key)
			switch {
			case err != nil:
				if !errors.Is(err, ErrUnavailable) && r.Context().Err() == nil {
					l.log.ErrorContext(r.Context(), "rate limiter failed", "group", g, "err", err.Error())
				}
				writeRetry(w, http.StatusServiceUnavailable, "rate_limiter_unavailable", UnavailableRetryAfter)
			case !d.Allowed:
				l.noteRefusal(r.Context(), c, key, g)
				if onLimited != nil {
					onLimited(w, r, c, g, d)
					return
				}
				WriteLimited(w, d)
			default:
				next.ServeHTTP(w, r)
			}
		})
	}
}

// WriteLimited answers 429 with Retry-After and the JSON body
// {"error":"rate_limited","retry_after":<seconds>}.
func WriteLimited(w http.ResponseWriter, d Decision) {
	writeRetry(w, http.StatusTooManyRequests, "rate_limited", d.RetryAfter)
}

// RetryAfterSeconds is d in whole seconds as Retry-After states it: rounded
// up, at least 1.
func RetryAfterSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	return max(s, 1)
}

func writeRetry(w http.ResponseWriter, code int, reason string, after time.Duration) {
	s := strconv.Itoa(RetryAfterSeconds(after))
	h := w.Header()
	h.Set("Retry-After", s)
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(`{"error":"` + reason + `","retry_after":` + s + `}`))
}
