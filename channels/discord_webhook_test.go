package channels

import (
	"regexp"
	"strings"
	"testing"
)

// webhookPathRE is the definition matchWebhookPath implements.
var webhookPathRE = regexp.MustCompile(`^/api/(?:v[0-9]{1,3}/)?webhooks/([0-9]{1,20})/([A-Za-z0-9_-]{1,256})$`)

func FuzzMatchWebhookPath(f *testing.F) {
	for _, p := range []string{
		"/api/webhooks/123/abc", "/api/v10/webhooks/123/abc-_X", "/api/v1000/webhooks/1/a", "/api/v/webhooks/1/a",
		"/api/webhooks/123/abc/", "/api/webhooks//abc", "/api/webhooks/12a/abc", "/api/v9/v9/webhooks/1/a",
		"/api/webhooks/123456789012345678901/a", "/api/webhooks/1/a.b", "/api/webhooks/1/\xff", "api/webhooks/1/a",
		"/api/webhooks/1", "/api/vx/webhooks/1/a", "/api/v01/webhooks/1/a", "",
	} {
		f.Add(p)
	}
	f.Add("/api/webhooks/1/" + strings.Repeat("t", 256))
	f.Add("/api/webhooks/1/" + strings.Repeat("t", 257))
	f.Fuzz(func(t *testing.T, p string) {
		id, token, ok := matchWebhookPath(p)
		m := webhookPathRE.FindStringSubmatch(p)
		if ok != (m != nil) || ok && (id != m[1] || token != m[2]) {
			t.Fatalf("matchWebhookPath(%q) = %q, %q, %t; regexp %q", p, id, token, ok, m)
		}
	})
}
