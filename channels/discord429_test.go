package channels

import (
	"net/http"
	"testing"
)

func TestClassify429(t *testing.T) {
	withHeaders := func(kv ...string) RateLimit {
		h := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return ParseRateLimit(h)
	}
	none := RateLimit{}
	tests := []struct {
		name   string
		status int
		rl     RateLimit
		body   string
		want   Limit429
	}{
		{"not a 429", 204, none, "", LimitNone},
		{"route body, headers stripped by a proxy", 429, none, `{"message":"You are being rate limited.","retry_after":17.2,"global":false}`, LimitRoute},
		{"route body with headers", 429, withHeaders("X-RateLimit-Scope", "user", "X-RateLimit-Limit", "5"), `{"message":"You are being rate limited.","retry_after":1,"global":false}`, LimitRoute},
		{"global body", 429, none, `{"message":"You are being rate limited.","retry_after":1,"global":true}`, LimitGlobal},
		{"global header, body says false", 429, withHeaders("X-RateLimit-Global", "true"), `{"retry_after":1,"global":false}`, LimitGlobal},
		{"global scope, no body", 429, withHeaders("X-RateLimit-Scope", "global"), "", LimitGlobal},
		{"shared scope", 429, withHeaders("X-RateLimit-Scope", "shared"), `{"retry_after":3,"global":false}`, LimitRoute},
		{"headers only", 429, withHeaders("X-RateLimit-Limit", "5", "X-RateLimit-Reset-After", "2"), "", LimitRoute},
		{"Discord error body without rate-limit fields", 429, none, `{"message":"slow down"}`, LimitRoute},
		{"HTML page, no headers: ban", 429, none, "<html><body>Error 1015: You are being rate limited</body></html>", LimitBan},
		{"plain text, no headers: ban", 429, none, "error code: 1015", LimitBan},
		{"empty, no headers: ban", 429, none, "", LimitBan},
		{"some other JSON, no headers: ban", 429, none, `{"error":"blocked"}`, LimitBan},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify429(tt.status, tt.rl, []byte(tt.body)); got != tt.want {
				t.Errorf("Classify429 = %s, want %s", got, tt.want)
			}
		})
	}
}
