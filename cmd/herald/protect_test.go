package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/client"
	"github.com/heraldrelay/herald/internal/fake"
	"github.com/heraldrelay/herald/internal/testkit"
)

// protectedEnv gives the API group a bucket of 3 that does not refill within
// a test, so the fourth request is over the limit.
var protectedEnv = map[string]string{
	"HERALD_RATELIMIT_GROUPS_API_MAX_TOKENS":  "3",
	"HERALD_RATELIMIT_GROUPS_API_REFILL_RATE": "1",
	"HERALD_RATELIMIT_GROUPS_API_REFILL_TIME": "1h",
	"HERALD_CHALLENGE_DIFFICULTY":             "3",
}

func TestServeLimitsAndChallengesAClient(t *testing.T) {
	discord := fake.NewDiscord(t)
	app := newTestApp(t, protectedEnv)
	n := client.Notification{
		Channel:     herald.ChannelDiscord,
		Credentials: herald.Credentials{Webhook: testkit.Seal(t, app.Keys, discord.WebhookURL("1", "tok"))},
		Message:     herald.Message{Title: "t", Text: "limited"},
	}
	ctx := context.Background()

	// Without solving: three accepted, the fourth refused with a challenge.
	plain, _ := client.New(client.Options{BaseURL: app.URL, Secret: testSecret})
	for i := range 3 {
		if _, err := plain.Send(ctx, n, ""); err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
	}
	code, header, body := call(t, http.MethodPost, app.URL+"/v1/notifications", "X-API-Secret", testSecret, `{}`)
	if code != http.StatusTooManyRequests || header.Get("Retry-After") == "" {
		t.Fatalf("4th request: %d Retry-After %q, want 429 with Retry-After", code, header.Get("Retry-After"))
	}
	var limited struct {
		Error      string `json:"error"`
		RetryAfter int    `json:"retry_after"`
		Challenge  struct {
			ID         string `json:"id"`
			Algorithm  string `json:"algorithm"`
			Seed       string `json:"seed"`
			Difficulty int    `json:"difficulty"`
			VerifyURL  string `json:"verify_url"`
		} `json:"challenge"`
	}
	if err := json.Unmarshal(body, &limited); err != nil {
		t.Fatalf("429 body %s: %v", body, err)
	}
	if limited.Error != "rate_limited" || limited.Challenge.Algorithm != "sha256" || limited.Challenge.Difficulty != 3 ||
		limited.Challenge.VerifyURL != "/challenge/verify" || limited.Challenge.Seed == "" {
		t.Fatalf("429 body = %s", body)
	}

	// A browser asking for HTML gets the page instead.
	req, _ := http.NewRequest(http.MethodPost, app.URL+"/v1/notifications", strings.NewReader(`{}`))
	req.Header.Set("X-API-Secret", testSecret)
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(string(page), "<html") {
		t.Fatalf("HTML 429: %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}

	// Health and metrics are never limited.
	for _, u := range []string{app.URL + "/health", app.URL + "/readyz", app.MetricsURL + "/metrics"} {
		if code, _, _ := call(t, http.MethodGet, u, "", "", ""); code != http.StatusOK {
			t.Fatalf("GET %s = %d while the client is limited", u, code)
		}
	}

	// Refused without a solver; a solving client earns a clearance and is
	// admitted.
	var herr *client.Error
	if _, err := plain.Send(ctx, n, ""); !errors.As(err, &herr) || herr.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("non-solving client over the limit: %v", err)
	}
	solver, _ := client.New(client.Options{BaseURL: app.URL, Secret: testSecret, SolveChallenges: true})
	if _, err := solver.Send(ctx, n, ""); err != nil {
		t.Fatalf("solving client: %v", err)
	}
	if solver.Clearance() == "" {
		t.Fatal("the solving client holds no clearance")
	}
	testkit.WaitFor(t, 10*time.Second, "4 deliveries", func() bool { return discord.Count() >= 4 })
	if got := discord.Count(); got != 4 {
		t.Fatalf("delivered %d, want the 3 admitted + 1 after the challenge", got)
	}

	metrics := get(t, app.MetricsURL+"/metrics")
	for _, want := range []string{
		`herald_requests_limited_total{group="api"}`,
		`herald_challenges_issued_total{format="json"}`,
		`herald_challenges_issued_total{format="html"}`,
		`herald_challenges_solved_total 1`,
		`herald_clearances_issued_total 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// The client's address and secret are not in any metric.
	testkit.AssertNoSecrets(t, "metrics", metrics, "127.0.0.1", testSecret)
	testkit.AssertNoSecrets(t, "log", app.Logs.String(), testSecret, solver.Clearance())
}

func TestServeWithoutRateLimit(t *testing.T) {
	env := map[string]string{"HERALD_RATELIMIT_ENABLED": "false"}
	for k, v := range protectedEnv {
		env[k] = v
	}
	app := newTestApp(t, env)
	for i := range 6 {
		if code, _, _ := call(t, http.MethodPost, app.URL+"/v1/notifications", "X-API-Secret", testSecret, `{}`); code != http.StatusUnprocessableEntity {
			t.Fatalf("request %d = %d, want 422 (invalid job, never limited)", i+1, code)
		}
	}
}

func TestParseTrustedProxies(t *testing.T) {
	got, err := parseTrustedProxies([]string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::ffff:198.51.100.1"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "198.51.100.1/32"}
	for i, p := range got {
		if p.String() != want[i] {
			t.Errorf("entry %d = %s, want %s", i, p, want[i])
		}
	}
	if _, err := parseTrustedProxies([]string{"cloudflare"}); err == nil || !strings.Contains(err.Error(), `"cloudflare"`) {
		t.Errorf("bad entry: %v", err)
	}
}

// TestChallengeGroupIsNeverChallenged: a client over its budget of solution
// checks gets a plain 429 to wait out, never another challenge, so solving
// cannot buy more solving (issue 11: one address sustained ~84
// registrations/s by solving its way through every limit).
func TestChallengeGroupIsNeverChallenged(t *testing.T) {
	app := newTestApp(t, map[string]string{
		"HERALD_RATELIMIT_GROUPS_CHALLENGE_MAX_TOKENS":  "1",
		"HERALD_RATELIMIT_GROUPS_CHALLENGE_REFILL_RATE": "1",
		"HERALD_RATELIMIT_GROUPS_CHALLENGE_REFILL_TIME": "1h",
	})
	body := `{"id":"AAAAAAAAAAAAAAAAAAAAAA","nonce":"1"}`
	if code, _, _ := call(t, http.MethodPost, app.URL+"/challenge/verify", "Accept", "application/json", body); code == http.StatusTooManyRequests {
		t.Fatal("the first solution check was limited")
	}
	code, header, raw := call(t, http.MethodPost, app.URL+"/challenge/verify", "Accept", "application/json", body)
	if code != http.StatusTooManyRequests || header.Get("Retry-After") == "" {
		t.Fatalf("second check: %d (Retry-After %q), want 429 with Retry-After", code, header.Get("Retry-After"))
	}
	if strings.Contains(string(raw), "challenge") || strings.Contains(string(raw), "seed") {
		t.Fatalf("the challenge group answered with a challenge: %s", raw)
	}
}
