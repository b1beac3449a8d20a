package main

import (
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"
)

// herald_http_requests_total counts every request the HTTP port answers:
// the ingest's, /register's and the admin API's, and the 429s of the token
// buckets in front of them, each under its route pattern.
func TestEveryRequestIsCounted(t *testing.T) {
	app := newTestApp(t, map[string]string{
		"HERALD_RATELIMIT_GROUPS_REGISTER_MAX_TOKENS":  "1",
		"HERALD_RATELIMIT_GROUPS_REGISTER_REFILL_TIME": "1h",
		"HERALD_RATELIMIT_GROUPS_STREAKY_MAX_TOKENS":   "1",
		"HERALD_RATELIMIT_GROUPS_STREAKY_REFILL_TIME":  "1h",
		"HERALD_ADMIN_SECRET":                          testAdminSecret,
	})
	for _, want := range []int{200, 429} {
		if code, _, _ := call(t, "GET", app.URL+"/register", "", "", ""); code != want {
			t.Fatalf("GET /register = %d, want %d", code, want)
		}
	}
	for i := range 2 {
		// The first is refused for its body, the second by the bucket.
		if code, _, _ := call(t, "POST", app.URL+"/send-notification", "X-API-Secret", testSecret, "{}"); (code == 429) != (i == 1) {
			t.Fatalf("POST /send-notification %d = %d", i+1, code)
		}
	}
	if code, _ := adminCall(t, app, "GET", "/admin/dlq", ""); code != 200 {
		t.Fatalf("GET /admin/dlq = %d", code)
	}
	if code, _, _ := call(t, "GET", app.URL+"/nowhere", "", "", ""); code != 404 {
		t.Fatalf("GET /nowhere = %d", code)
	}
	body := get(t, app.MetricsURL+"/metrics")
	for _, want := range []string{
		`herald_http_requests_total{code="200",route="/register"} 1`,
		`herald_http_requests_total{code="429",route="/register"} 1`,
		`herald_http_requests_total{code="429",route="POST /send-notification"} 1`,
		`herald_http_requests_total{code="200",route="/admin/"} 1`,
		`herald_http_requests_total{code="404",route="unmatched"} 1`,
		`herald_http_request_duration_seconds_count{route="/register"} 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "herald_http_requests_total") {
				t.Log(line)
			}
		}
	}
}

// herald_nats_connected follows the process's NATS connection: 1 while it
// is connected, 0 while the server is gone, 1 again once it reconnected.
func TestNATSConnectedMetric(t *testing.T) {
	srv := testkit.NewServer(t)
	app := newTestApp(t, sharedNATSEnv(srv.URL()))
	connected := func(want string) func() bool {
		return func() bool {
			return strings.Contains(get(t, app.MetricsURL+"/metrics"), "\nherald_nats_connected "+want+"\n")
		}
	}
	testkit.WaitFor(t, 10*time.Second, "herald_nats_connected 1", connected("1"))
	srv.Shutdown()
	testkit.WaitFor(t, 10*time.Second, "herald_nats_connected 0 with the server down", connected("0"))
	srv.Start()
	testkit.WaitFor(t, 30*time.Second, "herald_nats_connected 1 after the server came back", connected("1"))
}
