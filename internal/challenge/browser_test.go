package challenge_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/internal/testkit/browser"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/heraldrelay/herald/client"
	"github.com/heraldrelay/herald/internal/challenge"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// browserWait bounds how long a page may take to solve its challenge and
// continue; generous, as the machine is shared.
const browserWait = 90 * time.Second

func waitText(t *testing.T, ctx context.Context, want string) {
	t.Helper()
	browser.WaitText(t, ctx, want, browserWait)
}

func navigate(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	browser.Navigate(t, ctx, url)
}

func TestBrowserSolvesHTMLChallenge(t *testing.T) {
	kv, _ := connectKV(t, testkit.NewServer(t))
	f := newFixture(t, kv, func(c *challenge.Config) { c.Difficulty = 3 })
	srv := newServer(t, f)
	ctx := browser.New(t)

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
	kv, _ := connectKV(t, testkit.NewServer(t))
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
	ctx := browser.New(t)

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

// The hardest page the defaults ever ask of a person: an address pushed to
// the cap (here by challenges left unsolved, as a script sharing it would)
// gets a page at the cap, which headless chromium solves, landing on the
// page asked for.
func TestBrowserSolvesTheHardestPage(t *testing.T) {
	kv, _ := connectKV(t, testkit.NewServer(t))
	f := newFixture(t, kv, nil) // default difficulty and cap
	srv := newServer(t, f)
	hardest := challenge.DefaultDifficulty + challenge.DefaultMaxSteps
	// The browser comes from 127.0.0.1: push that address to the cap.
	for range challenge.DefaultEscalateAfter {
		getChallenge(t, srv, "127.0.0.1")
	}
	if d := getChallenge(t, srv, "127.0.0.1").Difficulty; d != hardest {
		t.Fatalf("the address is at difficulty %d, want the cap %d", d, hardest)
	}
	ctx := browser.New(t)
	start := time.Now()
	navigate(t, ctx, srv.URL+"/protected")
	waitText(t, ctx, "welcome (GET)")
	t.Logf("difficulty %d solved and continued in %s", hardest, time.Since(start).Round(time.Millisecond))
	if got := f.solvedCalls(); len(got) != 1 {
		t.Errorf("OnSolved calls %v, want one", got)
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
	kv, _ := connectKV(t, testkit.NewServer(t))
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
	ctx := browser.New(t)
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

// slowDevice is how many times slower than this machine's chromium a slow
// device is taken to solve: a low-end phone's cores run SHA-256 in
// JavaScript about 4-8 times slower than a desktop's; the pessimistic end.
const slowDevice = 8

// TestBrowserSolveTimes measures how long a browser takes at the default
// difficulty and at the hardest the defaults ever ask (the cap), and the
// page's hash rate, from which it states the median on a slow device:
// HERALD_BROWSER_BENCH=1 go test -run BrowserSolveTimes -v ./internal/challenge
func TestBrowserSolveTimes(t *testing.T) {
	if os.Getenv("HERALD_BROWSER_BENCH") == "" {
		t.Skip("a measurement, not a test: set HERALD_BROWSER_BENCH=1 to run it")
	}
	const rounds = 15
	ctx := browser.New(t)

	// Solving alone, in the page's workers (as many as the page would start).
	openSolverPage(t, ctx)
	workers := "Math.max(1, Math.min(navigator.hardwareConcurrency || 2, 8))"
	for _, d := range []int{challenge.DefaultDifficulty, challenge.DefaultDifficulty + challenge.DefaultMaxSteps} {
		for _, subtle := range []bool{true, false} {
			if subtle && d > challenge.DefaultDifficulty {
				continue // minutes at 5: WebCrypto is only for comparison
			}
			var ms []float64
			var hashes, total float64
			for i := range rounds {
				seed := fmt.Sprintf("%032x", time.Now().UnixNano()+int64(i))
				r, err := runHarness(ctx, seed, d, workers, subtle)
				if err != nil {
					t.Fatal(err)
				}
				ms = append(ms, r.MS)
				// Workers try nonces 0, 1, 2, ... between them: the nonce
				// found is about the hashes tried.
				n, _ := strconv.ParseFloat(r.Nonce, 64)
				hashes += n + 1
				total += r.MS
			}
			rate := hashes / total * 1000
			// The median of the hashes a solve takes is ln 2 * 16^d.
			slow := math.Ln2 * math.Pow(16, float64(d)) / (rate / slowDevice)
			t.Logf("solve only, difficulty %d, %s: median %.0f ms, p90 %.0f ms (%d challenges); %.0f hashes/s; "+
				"a device %dx slower: median %.1f s",
				d, map[bool]string{true: "WebCrypto", false: "JS SHA-256"}[subtle],
				quantile(ms, 0.5), quantile(ms, 0.9), rounds, rate, slowDevice, slow)
		}
	}

	// The whole way: 429 page, solve, verify, reload, protected page; at the
	// default difficulty and at the hardest page the defaults ask for.
	for _, d := range []int{challenge.DefaultDifficulty, challenge.DefaultDifficulty + challenge.DefaultMaxSteps} {
		kv, _ := connectKV(t, testkit.NewServer(t))
		f := newFixture(t, kv, func(c *challenge.Config) {
			// Every round at d: the same address solving again and again
			// would otherwise be escalated after 8.
			c.Difficulty, c.MaxDifficulty, c.EscalateAfterSolves = d, d, 1000
		})
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
			d, quantile(ms, 0.5), quantile(ms, 0.9), rounds)
	}
}

// quantile returns the q-quantile of xs (nearest rank).
func quantile(xs []float64, q float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(q*float64(len(s)) + 0.5)
	return s[min(max(i-1, 0), len(s)-1)]
}
