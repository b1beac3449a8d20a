package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/internal/testkit/browser"
)

// TestRegisterPageChallengeInBrowser opens the registration page in headless
// chromium through the real `serve` wiring until its bucket is empty: the
// 429 page solves the proof of work in the browser, and the visitor lands on
// the registration form again. The test fails, never skips, without chromium.
func TestRegisterPageChallengeInBrowser(t *testing.T) {
	app := newTestApp(t, map[string]string{
		"HERALD_RATELIMIT_GROUPS_REGISTER_MAX_TOKENS":  "1",
		"HERALD_RATELIMIT_GROUPS_REGISTER_REFILL_RATE": "1",
		"HERALD_RATELIMIT_GROUPS_REGISTER_REFILL_TIME": "1h",
		"HERALD_CHALLENGE_DIFFICULTY":                  "3",
	})
	ctx := browser.New(t)
	navigate := func(url string) {
		t.Helper()
		actx, cancel := context.WithTimeout(ctx, 90*time.Second)
		defer cancel()
		browser.Navigate(t, actx, url)
	}
	heading := func() (string, error) {
		return browser.Eval(ctx, `document.querySelector("h1") ? document.querySelector("h1").innerText : ""`)
	}
	navigate(app.URL + "/register")
	text, err := heading()
	if err != nil || text != "Register a destination" {
		t.Fatalf("first visit shows %q (%v)", text, err)
	}
	// The bucket is empty now: the second visit gets the challenge page,
	// which solves it and continues to the form.
	navigate(app.URL + "/register")
	sawChallenge := false
	testkit.WaitFor(t, 90*time.Second, "the registration form after the challenge page", func() bool {
		text, err = heading()
		if err == nil && strings.HasPrefix(text, "One moment") {
			sawChallenge = true
		}
		return err == nil && text == "Register a destination" && sawChallenge
	})
	if !sawChallenge || text != "Register a destination" {
		t.Fatalf("after the challenge the page shows %q (challenge page seen: %v)", text, sawChallenge)
	}
	metrics := get(t, app.MetricsURL+"/metrics")
	for _, want := range []string{
		`herald_requests_limited_total{group="register"} 1`,
		`herald_challenges_issued_total{format="html"} 1`,
		`herald_challenges_solved_total 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
