// Package browser is the test kit's headless chromium, driven with chromedp,
// for the tests of pages a person sees (the challenge page, the
// registration page).
package browser

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

// ChromiumPath is where Debian's chromium package installs the browser.
const ChromiumPath = "/usr/bin/chromium"

// RequireEnv names the environment variable that makes a missing chromium a
// failure instead of a skip: CI (.ci/run) sets it, so that the browser
// tests run there for certain, while `go test ./...` on a fresh machine
// passes without a browser.
const RequireEnv = "REQUIRE_BROWSER_TESTS"

// notFound is the message of a skipped (or, with RequireEnv, failed) test.
const notFound = "chromium not found, so this browser test cannot run: install it with `apt-get update && apt-get install -y chromium` (.ci/run does, and sets " + RequireEnv + "=1 so that it never skips)"

// New starts a headless chromium with a fresh profile and returns a context
// to drive its tab; both end with the test. Without chromium the test is
// skipped with a message saying so, or fails when RequireEnv is set.
func New(t testing.TB) context.Context {
	t.Helper()
	path, ok := findChromium()
	if !ok {
		if os.Getenv(RequireEnv) != "" {
			t.Fatal(notFound)
		}
		t.Skip(notFound)
	}
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		// The network here is closed: without these, chromium's own
		// background connections are refused and slow everything down.
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
	// The first Run starts the browser; it must not carry a timeout.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`1`)); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// findChromium finds the browser; a variable for the kit's own tests.
var findChromium = chromium

// chromium finds the browser: Debian's path, else chromium on the PATH.
func chromium() (string, bool) {
	if _, err := os.Stat(ChromiumPath); err == nil {
		return ChromiumPath, true
	}
	p, err := exec.LookPath("chromium")
	return p, err == nil
}

// Navigate opens url in the tab.
func Navigate(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("navigate %s: %v", url, err)
	}
}

// Eval evaluates a JavaScript expression giving a string, within 5 s.
func Eval(ctx context.Context, expr string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[string](expr))
}

// Text returns the text of the current document, or "" while it loads.
func Text(ctx context.Context) string {
	s, err := Eval(ctx, `document.body ? document.body.innerText : ""`)
	if err != nil {
		return ""
	}
	return s
}

// WaitText waits up to timeout until the document shows want. Polling from
// Go survives the page's navigations, which an in-page poll does not.
func WaitText(t *testing.T, ctx context.Context, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		text := Text(ctx)
		if strings.Contains(text, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page did not show %q within %s; it shows:\n%s", want, timeout, text)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
