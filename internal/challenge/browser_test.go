package challenge_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/heraldrelay/herald/client"
	"github.com/heraldrelay/herald/internal/challenge"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// chromiumPath is where Debian's chromium package installs the browser.
const chromiumPath = "/usr/bin/chromium"

// browserWait bounds how long a page may take to solve its challenge and
// continue; generous, as the machine is shared.
const browserWait = 90 * time.Second

// newBrowser starts a headless chromium with a fresh profile and returns a
// context to drive its tab. The test fails, never skips, without chromium.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath
	if _, err := os.Stat(path); err != nil {
		if p, lerr := exec.LookPath("chromium"); lerr == nil {
			path = p
		} else {
			t.Fatalf("chromium not found: install it with `apt-get update && apt-get install -y chromium` (CI's .ci/run does this)")
		}
	}
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		// This machine's network is closed: without these, chromium's own
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

// pageText returns the text of the current document, or "" while it loads.
func pageText(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		return ""
	}
	return s
}

// waitText waits until the document shows want. Polling from Go survives the
// page's navigations, which an in-page poll does not.
func waitText(t *testing.T, ctx context.Context, want string) {
	t.Helper()
	deadline := time.Now().Add(browserWait)
	for {
		text := pageText(ctx)
		if strings.Contains(text, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page did not show %q within %s; it shows:\n%s", want, browserWait, text)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func navigate(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("navigate %s: %v", url, err)
	}
}

func TestBrowserSolvesHTMLChallenge(t *testing.T) {
	kv, _ := connectKV(t, startNATS(t))
	f := newFixture(t, kv, func(c *challenge.Config) { c.Difficulty = 3 })
	srv := newServer(t, f)
	ctx := newBrowser(t)

	navigate(t, ctx, srv.URL+"/protected?x=1")
	waitText(t, ctx, "welcome (GET)")

	if got := testutil.ToFloat64(f.m.ChallengesIssued.WithLabelValues("html")); got < 1 {
		t.Errorf("issued{html} = %v", got)
	}
	if got := f.solvedCalls(); len(got) != 1 || got[0] != (solvedCall{"api", bucketOf("127.0.0.1")}) {
		t.Errorf("OnSolved calls %v, want one for the page's bucket", got)
	}
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil || loc != srv.URL+"/protected?x=1" {
		t.Errorf("ended at %q (%v), want the page first asked for", loc, err)
	}
}

func TestBrowserContinuesAfterFormPost(t *testing.T) {
	kv, _ := connectKV(t, startNATS(t))
	f := newFixture(t, kv, func(c *challenge.Config) { c.Difficulty = 3 })
	mux := http.NewServeMux()
	mux.HandleFunc("GET /form", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>form</title><form id="f" method="post" action="/register">`+
			`<input name="name" value="octocat"><button>Register</button></form>`)
	})
	mux.Handle("/", protectedHandler(f))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	ctx := newBrowser(t)

	navigate(t, ctx, srv.URL+"/form")
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`document.getElementById("f").submit()`)); err != nil {
		t.Fatalf("submit: %v", err)
	}
	// The refused POST is continued with a GET of the same address.
	waitText(t, ctx, "welcome (GET)")
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); loc != srv.URL+"/register" {
		t.Errorf("ended at %q, want /register", loc)
	}
}

// solveResult is what the in-page solver harness returns.
type solveResult struct {
	Nonce string  `json:"nonce"`
	MS    float64 `json:"ms"`
}

// solverHarness runs the page's own worker code (heraldSolver) in workers,
// outside the page's flow, and returns the nonce found and the time taken.
const solverHarness = `(async (seed, difficulty, workers, subtle) => {
  const src = heraldSolver;
  const url = URL.createObjectURL(new Blob([src], {type: "text/javascript"}));
  const started = performance.now(), ws = [];
  try {
    const nonce = await new Promise((resolve, reject) => {
      for (let i = 0; i < workers; i++) {
        const w = new Worker(url);
        w.onmessage = (e) => {
          if (e.data.type === "solved") resolve(e.data.nonce);
          if (e.data.type === "error") reject(new Error(e.data.message));
        };
        w.onerror = () => reject(new Error("worker failed"));
        w.postMessage({seed, difficulty, start: i, step: workers, batch: 256, subtle});
        ws.push(w);
      }
    });
    return {nonce, ms: performance.now() - started};
  } finally {
    ws.forEach((w) => w.terminate());
    URL.revokeObjectURL(url);
  }
})(%q, %d, %s, %t)`

// openSolverPage opens a challenge page whose own verification goes nowhere
// (the server has no verify route), so the page stays put for the harness.
func openSolverPage(t *testing.T, ctx context.Context) {
	t.Helper()
	kv, _ := connectKV(t, startNATS(t))
	f := newFixture(t, kv, func(c *challenge.Config) { c.Difficulty = 1 })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/solver" {
			http.NotFound(w, r)
			return
		}
		f.svc.Respond(w, r, "127.0.0.1", "api", "harness", time.Second)
	}))
	t.Cleanup(srv.Close)
	navigate(t, ctx, srv.URL+"/solver")
	waitText(t, ctx, "refused")
}

// runHarness solves (seed, difficulty) with the page's worker code in the
// number of workers the JS expression workers gives.
func runHarness(ctx context.Context, seed string, difficulty int, workers string, subtle bool) (solveResult, error) {
	ctx, cancel := context.WithTimeout(ctx, browserWait)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[solveResult](
		fmt.Sprintf(solverHarness, seed, difficulty, workers, subtle), chromedp.EvalAwaitPromise))
}

// TestBrowserSolverAgreesWithGo checks both hashing paths of the page (WebCrypto
// and the plain JS SHA-256 used where WebCrypto is missing) against the Go
// solver: scanning nonces in order from 0, each must find the same first
// solution.
func TestBrowserSolverAgreesWithGo(t *testing.T) {
	ctx := newBrowser(t)
	openSolverPage(t, ctx)
	for _, seed := range []string{"00112233445566778899aabbccddeeff", "deadbeef", "é✓"} {
		want := client.Solve(seed, 3)
		for _, subtle := range []bool{true, false} {
			got, err := runHarness(ctx, seed, 3, "1", subtle)
			if err != nil {
				t.Fatalf("seed %q subtle %v: %v", seed, subtle, err)
			}
			if got.Nonce != want {
				t.Errorf("seed %q subtle %v: browser found %q, Go %q", seed, subtle, got.Nonce, want)
			}
		}
	}
}

// TestBrowserSolveTimes measures how long a browser takes at the default
// difficulty: HERALD_BROWSER_BENCH=1 go test -run BrowserSolveTimes -v ./challenge
func TestBrowserSolveTimes(t *testing.T) {
	if os.Getenv("HERALD_BROWSER_BENCH") == "" {
		t.Skip("a measurement, not a test: set HERALD_BROWSER_BENCH=1 to run it")
	}
	const rounds = 15
	ctx := newBrowser(t)

	// Solving alone, in the page's workers (as many as the page would start).
	openSolverPage(t, ctx)
	for _, subtle := range []bool{true, false} {
		var ms []float64
		for i := range rounds {
			seed := fmt.Sprintf("%032x", time.Now().UnixNano()+int64(i))
			r, err := runHarness(ctx, seed, challenge.DefaultDifficulty, "Math.max(1, Math.min(navigator.hardwareConcurrency || 2, 8))", subtle)
			if err != nil {
				t.Fatal(err)
			}
			ms = append(ms, r.MS)
		}
		t.Logf("solve only, difficulty %d, %s: median %.0f ms, p90 %.0f ms (%d challenges)",
			challenge.DefaultDifficulty, map[bool]string{true: "WebCrypto", false: "JS SHA-256"}[subtle],
			quantile(ms, 0.5), quantile(ms, 0.9), rounds)
	}

	// The whole way: 429 page, solve, verify, reload, protected page.
	kv, _ := connectKV(t, startNATS(t))
	f := newFixture(t, kv, nil) // default difficulty
	srv := newServer(t, f)
	var ms []float64
	for range rounds {
		if _, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		navigate(t, ctx, srv.URL+"/protected")
		waitText(t, ctx, "welcome")
		ms = append(ms, float64(time.Since(start).Microseconds())/1000)
	}
	t.Logf("page to protected page, difficulty %d: median %.0f ms, p90 %.0f ms (%d challenges)",
		challenge.DefaultDifficulty, quantile(ms, 0.5), quantile(ms, 0.9), rounds)
}

// quantile returns the q-quantile of xs (nearest rank).
func quantile(xs []float64, q float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(q*float64(len(s)) + 0.5)
	return s[min(max(i-1, 0), len(s)-1)]
}
