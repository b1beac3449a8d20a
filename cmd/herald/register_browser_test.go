package main

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestRegisterPageChallengeInBrowser opens the registration page in headless
// chromium through the real `serve` wiring until its bucket is empty: the
// 429 page solves the proof of work in the browser, and the visitor lands on
// the registration form again. The test fails, never skips, without chromium.
func TestRegisterPageChallengeInBrowser(t *testing.T) {
	app := newAppFor(t, map[string]string{
		"HERALD_RATELIMIT_GROUPS_REGISTER_MAX_TOKENS":  "1",
		"HERALD_RATELIMIT_GROUPS_REGISTER_REFILL_RATE": "1",
		"HERALD_RATELIMIT_GROUPS_REGISTER_REFILL_TIME": "1h",
		"HERALD_CHALLENGE_DIFFICULTY":                  "3",
	})
	ctx := browser(t)
	navigate := func(url string) {
		t.Helper()
		actx, cancel := context.WithTimeout(ctx, 90*time.Second)
		defer cancel()
		if _, err := chromedp.Run(actx, chromedp.Navigate(url)); err != nil {
			t.Fatal(err)
		}
	}
	heading := func() (string, error) {
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return chromedp.Run(tctx, chromedp.Evaluate[string](`document.querySelector("h1") ? document.querySelector("h1").innerText : ""`))
	}
	navigate(app.URL + "/register")
	text, err := heading()
	if err != nil || text != "Register a destination" {
		t.Fatalf("first visit shows %q (%v)", text, err)
	}
	// The bucket is empty now: the second visit gets the challenge page,
	// which solves it and continues to the form.
	navigate(app.URL + "/register")
	deadline := time.Now().Add(90 * time.Second)
	sawChallenge := false
	for time.Now().Before(deadline) {
		text, err = heading()
		if err == nil && strings.HasPrefix(text, "One moment") {
			sawChallenge = true
		}
		if err == nil && text == "Register a destination" && sawChallenge {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !sawChallenge || text != "Register a destination" {
		t.Fatalf("after the challenge the page shows %q (challenge page seen: %v)", text, sawChallenge)
	}
	metrics := get(t, app.URL+"/metrics")
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

// browser starts headless chromium with a fresh profile.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := "/usr/bin/chromium"
	if _, err := os.Stat(path); err != nil {
		p, lerr := exec.LookPath("chromium")
		if lerr != nil {
			t.Fatal("chromium not found: install it with `apt-get update && apt-get install -y chromium` (CI's .ci/run does this)")
		}
		path = p
	}
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		// The network here is closed: chromium's own background connections
		// would be refused and slow everything down.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`1`)); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}
