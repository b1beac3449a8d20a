package main

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/heraldrelay/herald/internal/console"
	"github.com/heraldrelay/herald/internal/fake"
)

// TestServeConsole: herald serve mounts the console when admin.secret is
// set (a sign-in leads to the dead letters, grouped with a masked
// destination) and answers 404 without it.
func TestServeConsole(t *testing.T) {
	off := newTestApp(t, nil)
	if r, err := http.Get(off.URL + "/console/login"); err != nil || r.StatusCode != http.StatusNotFound {
		t.Fatalf("without admin.secret: %v %v", r.StatusCode, err)
	}

	discord := fake.NewDiscord(t)
	discord.Script(func(fake.DiscordRequest, int) fake.Response { return fake.Respond404UnknownWebhook() })
	app := newTestApp(t, map[string]string{"HERALD_ADMIN_SECRET": testAdminSecret})
	if code, _ := postStreakyDiscord(t, app, discord.WebhookURL("9001", "console-token-9001")); code != 502 {
		t.Fatalf("streaky reply %d, want 502", code)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodPost, app.URL+"/console/login", strings.NewReader(url.Values{"secret": {testAdminSecret}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client.Do(req)
	if err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %v %v", resp, err)
	}
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == console.SessionCookie {
			session = c
		}
	}
	if session == nil {
		t.Fatal("no session cookie")
	}
	req, _ = http.NewRequest(http.MethodGet, app.URL+"/console/dlq", nil)
	req.AddCookie(session)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "1 dead letters match") || !strings.Contains(string(body), "webhook 9001 #") {
		t.Fatalf("dead letters page %d:\n%s", resp.StatusCode, body)
	}
	if strings.Contains(string(body), "console-token-9001") || strings.Contains(string(body), testAdminSecret) {
		t.Fatal("the page shows a secret")
	}
}

// Sign-in attempts are rate-limited with the api group (per client): past
// its bucket, even the right secret is answered 429 and gets no session.
func TestConsoleSignInRateLimited(t *testing.T) {
	app := newTestApp(t, map[string]string{
		"HERALD_ADMIN_SECRET":                     testAdminSecret,
		"HERALD_RATELIMIT_GROUPS_API_MAX_TOKENS":  "3",
		"HERALD_RATELIMIT_GROUPS_API_REFILL_RATE": "1",
		"HERALD_RATELIMIT_GROUPS_API_REFILL_TIME": "1h",
	})
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	signIn := func(secret string) *http.Response {
		t.Helper()
		resp, err := client.PostForm(app.URL+"/console/login", url.Values{"secret": {secret}})
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	for i := range 3 {
		if r := signIn("guess-number-" + strings.Repeat("x", 16+i)); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d, want 401", i+1, r.StatusCode)
		}
	}
	r := signIn(testAdminSecret)
	if r.StatusCode != http.StatusTooManyRequests || len(r.Cookies()) != 0 {
		t.Fatalf("the right secret past the bucket: %d %v, want 429 and no cookie", r.StatusCode, r.Cookies())
	}
	if !strings.Contains(get(t, app.MetricsURL+"/metrics"), `herald_requests_limited_total{group="api"} 1`) {
		t.Error("the refused sign-in is not counted in the api group")
	}
}
