package challenge_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald/client"
	"github.com/heraldrelay/herald/internal/challenge"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestJSONChallengeShape(t *testing.T) {
	kv, _ := connectKV(t, testkit.NewServer(t))
	f := newFixture(t, kv, nil)
	srv := newServer(t, f)

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/page", nil)
	res, err := srv.Client().Do(req) // no Accept header: JSON
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429", res.StatusCode)
	}
	if got := res.Header.Get("Retry-After"); got != "2" {
		t.Errorf("Retry-After %q, want 2", got)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var raw map[string]json.RawMessage
	if err := json.NewDecoder(res.Body).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	if string(raw["error"]) != `"rate_limited"` || string(raw["retry_after"]) != "2" {
		t.Errorf("error %s retry_after %s", raw["error"], raw["retry_after"])
	}
	var ch map[string]any
	if err := json.Unmarshal(raw["challenge"], &ch); err != nil {
		t.Fatal(err)
	}
	if len(ch) != 6 {
		t.Errorf("challenge has fields %v, want id algorithm seed difficulty expires_at verify_url", ch)
	}
	if ch["algorithm"] != "sha256" || ch["difficulty"] != float64(4) || ch["verify_url"] != "/challenge/verify" {
		t.Errorf("challenge %v", ch)
	}
	if seed, _ := ch["seed"].(string); !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(seed) {
		t.Errorf("seed %q is not hex", seed)
	}
	if id, _ := ch["id"].(string); id == "" {
		t.Error("no id")
	}
	exp, err := time.Parse(time.RFC3339, ch["expires_at"].(string))
	if err != nil {
		t.Fatalf("expires_at: %v", err)
	}
	if d := time.Until(exp); d < 4*time.Minute || d > 6*time.Minute {
		t.Errorf("expires in %s, want about the default 5m", d)
	}
	if got := testutil.ToFloat64(f.m.ChallengesIssued.WithLabelValues("json")); got != 1 {
		t.Errorf("issued{json} = %v, want 1", got)
	}
}

func TestGoClientSolvesJSONChallenge(t *testing.T) {
	kv, _ := connectKV(t, testkit.NewServer(t))
	f := newFixture(t, kv, nil)
	srv := newServer(t, f)
	c, err := client.New(client.Options{BaseURL: srv.URL, SolveChallenges: true, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}

	for i := range 2 {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL+"/page", nil)
		res, err := c.Do(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), "welcome") {
			t.Fatalf("request %d: %d %s, want the protected page", i, res.StatusCode, body)
		}
	}
	if c.Clearance() == "" {
		t.Error("the client holds no clearance")
	}
	// One challenge solved; the second request went through on the clearance.
	if got := f.solvedCalls(); len(got) != 1 || got[0] != (solvedCall{"api", bucketOf("127.0.0.1")}) {
		t.Errorf("OnSolved calls %v, want one with group api and the bucket key", got)
	}
	for name, got := range map[string]float64{
		"issued":    testutil.ToFloat64(f.m.ChallengesIssued.WithLabelValues("json")),
		"solved":    testutil.ToFloat64(f.m.ChallengesSolved),
		"clearance": testutil.ToFloat64(f.m.ClearancesIssued),
	} {
		if got != 1 {
			t.Errorf("%s = %v, want 1", name, got)
		}
	}
}

func TestVerify(t *testing.T) {
	kv, _ := connectKV(t, testkit.NewServer(t))
	f := newFixture(t, kv, func(c *challenge.Config) { c.Difficulty = 2 })
	srv := newServer(t, f)
	failed := func(reason string) float64 { return testutil.ToFloat64(f.m.ChallengesFailed.WithLabelValues(reason)) }

	t.Run("success sets the cookie, the same solution again is used", func(t *testing.T) {
		ch := getChallenge(t, srv, "")
		nonce := client.Solve(ch.Seed, ch.Difficulty)
		a := postJSON(t, srv, "", ch.ID, nonce)
		if a.status != http.StatusOK || a.str("clearance") == "" {
			t.Fatalf("verify: %d %v", a.status, a.body)
		}
		if _, err := time.Parse(time.RFC3339, a.str("expires_at")); err != nil {
			t.Errorf("expires_at: %v", err)
		}
		if len(a.cookies) != 1 {
			t.Fatalf("cookies %v, want herald_clearance", a.cookies)
		}
		ck := a.cookies[0]
		if ck.Name != challenge.ClearanceCookie || ck.Value != a.str("clearance") || !ck.HttpOnly ||
			ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Secure {
			t.Errorf("cookie %+v", ck)
		}
		again := postJSON(t, srv, "", ch.ID, nonce)
		if again.status != http.StatusForbidden || again.str("error") != challenge.FailedUsed || again.str("reason") == "" {
			t.Errorf("second verify: %d %v, want 403 used", again.status, again.body)
		}
		if failed("used") != 1 {
			t.Errorf("failed{used} = %v", failed("used"))
		}
	})

	t.Run("form-encoded", func(t *testing.T) {
		ch := getChallenge(t, srv, "")
		a := post(t, srv, "", "application/x-www-form-urlencoded", formBody(ch.ID, client.Solve(ch.Seed, ch.Difficulty)))
		if a.status != http.StatusOK || a.str("clearance") == "" {
			t.Errorf("verify: %d %v", a.status, a.body)
		}
	})

	t.Run("wrong nonce", func(t *testing.T) {
		ch := getChallenge(t, srv, "")
		a := postJSON(t, srv, "", ch.ID, wrongNonce(ch))
		if a.status != http.StatusForbidden || a.str("error") != challenge.FailedWrongNonce {
			t.Errorf("got %d %v, want 403 wrong_nonce", a.status, a.body)
		}
		// A wrong guess does not use the challenge up.
		if a := postJSON(t, srv, "", ch.ID, client.Solve(ch.Seed, ch.Difficulty)); a.status != http.StatusOK {
			t.Errorf("right nonce after a wrong one: %d %v", a.status, a.body)
		}
	})

	t.Run("unknown", func(t *testing.T) {
		a := postJSON(t, srv, "", "AAAAAAAAAAAAAAAAAAAAAA", "1")
		if a.status != http.StatusForbidden || a.str("error") != challenge.FailedUnknown {
			t.Errorf("got %d %v, want 403 unknown", a.status, a.body)
		}
	})

	t.Run("another address", func(t *testing.T) {
		ch := getChallenge(t, srv, "192.0.2.1")
		a := postJSON(t, srv, "192.0.2.2", ch.ID, client.Solve(ch.Seed, ch.Difficulty))
		if a.status != http.StatusForbidden || a.str("error") != challenge.FailedWrongIP {
			t.Errorf("got %d %v, want 403 wrong_ip", a.status, a.body)
		}
	})

	t.Run("expired", func(t *testing.T) {
		ch := getChallenge(t, srv, "")
		nonce := client.Solve(ch.Seed, ch.Difficulty)
		f.clock.Advance(challenge.DefaultTTL + time.Second)
		defer f.clock.Advance(-challenge.DefaultTTL - time.Second)
		a := postJSON(t, srv, "", ch.ID, nonce)
		if a.status != http.StatusForbidden || a.str("error") != challenge.FailedExpired {
			t.Errorf("got %d %v, want 403 expired", a.status, a.body)
		}
		if failed("expired") != 1 {
			t.Errorf("failed{expired} = %v", failed("expired"))
		}
	})

	t.Run("malformed", func(t *testing.T) {
		ch := getChallenge(t, srv, "")
		for _, tc := range []struct{ name, contentType, body string }{
			{"not JSON", "application/json", "{"},
			{"nonce not decimal", "application/json", `{"id":"` + ch.ID + `","nonce":"12a"}`},
			{"no id", "application/json", `{"nonce":"1"}`},
			{"text", "text/plain", "id=x"},
			{"form without nonce", "application/x-www-form-urlencoded", "id=" + ch.ID},
		} {
			a := post(t, srv, "", tc.contentType, tc.body)
			if a.status != http.StatusBadRequest || a.str("error") != challenge.FailedMalformed {
				t.Errorf("%s: got %d %v, want 400 malformed", tc.name, a.status, a.body)
			}
		}
		// A JSON integer nonce is accepted as well as a string.
		a := post(t, srv, "", "application/json", `{"id":"`+ch.ID+`","nonce":`+client.Solve(ch.Seed, ch.Difficulty)+`}`)
		if a.status != http.StatusOK {
			t.Errorf("integer nonce: %d %v", a.status, a.body)
		}
	})

	t.Run("other methods and paths", func(t *testing.T) {
		res, err := srv.Client().Get(srv.URL + challenge.DefaultVerifyPath)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "POST" {
			t.Errorf("GET verify: %d Allow %q", res.StatusCode, res.Header.Get("Allow"))
		}
		res, err = srv.Client().Post(srv.URL+"/challenge/other", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("POST /challenge/other: %d", res.StatusCode)
		}
	})
}

func TestFailuresAreLogged(t *testing.T) {
	kv, _ := connectKV(t, testkit.NewServer(t))
	f := newFixture(t, kv, func(c *challenge.Config) { c.Difficulty = 1 })
	srv := newServer(t, f)
	ch := getChallenge(t, srv, "198.51.100.7")
	for range 12 {
		postJSON(t, srv, "198.51.100.7", ch.ID, wrongNonce(ch))
	}
	logs := f.logs.String()
	if n := strings.Count(logs, "fails challenges unusually often"); n != 1 {
		t.Fatalf("%d warnings, want one:\n%s", n, logs)
	}
	if !strings.Contains(logs, "ip=198.51.100.7") || !strings.Contains(logs, "last_reason=wrong_nonce") {
		t.Errorf("warning lacks the address or reason:\n%s", logs)
	}
	if strings.Contains(logs, ch.Seed) || strings.Contains(logs, oldKey[3:]) {
		t.Errorf("log holds a seed or key:\n%s", logs)
	}
}

func TestDifficultyEscalatesForUnsolvedChallenges(t *testing.T) {
	kv, _ := connectKV(t, testkit.NewServer(t))
	f := newFixture(t, kv, func(c *challenge.Config) {
		c.Difficulty, c.MaxDifficulty, c.EscalateAfter = 1, 3, 2
	})
	srv := newServer(t, f)
	var got []int
	var ch challenge.Challenge
	for range 6 {
		ch = getChallenge(t, srv, "203.0.113.9")
		got = append(got, ch.Difficulty)
	}
	if want := []int{1, 1, 2, 2, 3, 3}; !equal(got, want) {
		t.Errorf("difficulties %v, want %v", got, want)
	}
	// The next would be past MaxDifficulty: a plain 429, no challenge.
	if res, b := limitedAs(t, srv, "203.0.113.9", "application/json"); b.Challenge != nil || res.StatusCode != http.StatusTooManyRequests {
		t.Errorf("past the cap: %d %+v, want a 429 without a challenge", res.StatusCode, b)
	}
	// Other clients are not affected.
	if d := getChallenge(t, srv, "203.0.113.10").Difficulty; d != 1 {
		t.Errorf("another client got difficulty %d, want 1", d)
	}
	// Solving one (the last issued) resets the count.
	if a := postJSON(t, srv, "203.0.113.9", ch.ID, client.Solve(ch.Seed, ch.Difficulty)); a.status != http.StatusOK {
		t.Fatalf("verify: %d %v", a.status, a.body)
	}
	if d := getChallenge(t, srv, "203.0.113.9").Difficulty; d != 1 {
		t.Errorf("difficulty after a solve %d, want 1", d)
	}
}

// TestDifficultyEscalatesForRepeatedSolves: solving every challenge is no
// way around the limits: each EscalateAfterSolves solves within the window
// add one to the client's difficulty (up to MaxDifficulty); other clients are
// not affected.
func TestDifficultyEscalatesForRepeatedSolves(t *testing.T) {
	kv, _ := connectKV(t, testkit.NewServer(t))
	f := newFixture(t, kv, func(c *challenge.Config) {
		c.Difficulty, c.MaxDifficulty, c.EscalateAfterSolves = 1, 3, 2
	})
	srv := newServer(t, f)
	var got []int
	for range 6 {
		ch := getChallenge(t, srv, "203.0.113.20")
		got = append(got, ch.Difficulty)
		if a := postJSON(t, srv, "203.0.113.20", ch.ID, client.Solve(ch.Seed, ch.Difficulty)); a.status != http.StatusOK {
			t.Fatalf("verify: %d %v", a.status, a.body)
		}
	}
	if want := []int{1, 1, 2, 2, 3, 3}; !equal(got, want) {
		t.Errorf("difficulties of a client solving every challenge %v, want %v", got, want)
	}
	if d := getChallenge(t, srv, "203.0.113.21").Difficulty; d != 1 {
		t.Errorf("another client got difficulty %d, want 1", d)
	}
}

func TestUnsolvedQuotaStopsIssuing(t *testing.T) {
	kv, _ := connectKV(t, testkit.NewServer(t))
	f := newFixture(t, kv, func(c *challenge.Config) {
		// Escalation out of the way: the quota alone stops issuing.
		c.Difficulty, c.MaxDifficulty, c.EscalateAfter = 1, challenge.MaxAllowedDifficulty, 1000
	})
	srv := newServer(t, f)
	last := func() limitedBody {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/page", nil)
		req.Header.Set(testIPHeader, "203.0.113.50")
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var b limitedBody
		_ = json.NewDecoder(res.Body).Decode(&b)
		return b
	}
	for i := range 100 {
		if b := last(); b.Challenge == nil {
			t.Fatalf("request %d: no challenge", i)
		}
	}
	b := last()
	if b.Challenge != nil || b.Error != "rate_limited" || b.RetryAfter != 2 {
		t.Errorf("101st 429 %+v, want rate_limited without a challenge", b)
	}
	if !strings.Contains(f.logs.String(), "leaves challenges unsolved") {
		t.Errorf("no warning logged:\n%s", f.logs.String())
	}
}

func TestStoreUnavailable(t *testing.T) {
	kv, nc := connectKV(t, testkit.NewServer(t))
	f := newFixture(t, kv, nil)
	srv := newServer(t, f)
	ch := getChallenge(t, srv, "")
	nc.Close()

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/page", nil)
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var b limitedBody
	_ = json.NewDecoder(res.Body).Decode(&b)
	res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests || b.Error != "rate_limited" || b.Challenge != nil {
		t.Errorf("got %d %+v, want a plain 429", res.StatusCode, b)
	}
	a := postJSON(t, srv, "", ch.ID, client.Solve(ch.Seed, ch.Difficulty))
	if a.status != http.StatusServiceUnavailable || a.str("error") != "unavailable" {
		t.Errorf("verify: %d %v, want 503", a.status, a.body)
	}
	if got := testutil.ToFloat64(f.m.StoreErrors.WithLabelValues("challenge")); got != 2 {
		t.Errorf("store errors = %v, want 2", got)
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Challenges and used markers carry a per-key TTL, so the bucket forgets them
// by itself shortly after they expire.
func TestChallengesExpireFromTheBucket(t *testing.T) {
	kv, nc := connectKV(t, testkit.NewServer(t))
	f := newFixture(t, kv, func(c *challenge.Config) { c.Difficulty, c.TTL = 1, time.Minute })
	srv := newServer(t, f)
	ch := getChallenge(t, srv, "")
	if a := postJSON(t, srv, "", ch.ID, client.Solve(ch.Seed, ch.Difficulty)); a.status != http.StatusOK {
		t.Fatalf("verify: %d %v", a.status, a.body)
	}
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, "KV_"+challenge.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"c." + ch.ID, "u." + ch.ID} {
		msg, err := stream.GetLastMsgForSubject(ctx, "$KV."+challenge.Bucket+"."+key)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		ttl, err := time.ParseDuration(msg.Header.Get(jetstream.MsgTTLHeader))
		if err != nil || ttl <= time.Minute || ttl > 5*time.Minute {
			t.Errorf("%s: TTL header %q, want a little over the challenge's minute", key, msg.Header.Get(jetstream.MsgTTLHeader))
		}
	}
}

func TestHTMLChallengePage(t *testing.T) {
	kv, _ := connectKV(t, testkit.NewServer(t))
	f := newFixture(t, kv, nil)
	srv := newServer(t, f)
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/page", nil)
	req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	page := string(body)
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") != "2" {
		t.Errorf("status %d Retry-After %q", res.StatusCode, res.Header.Get("Retry-After"))
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type %q", ct)
	}
	csp := res.Header.Get("Content-Security-Policy")
	nonce := regexp.MustCompile(`script-src 'nonce-([A-Za-z0-9_-]+)'`).FindStringSubmatch(csp)
	if nonce == nil || !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "worker-src blob:") ||
		!strings.Contains(csp, "connect-src 'self'") {
		t.Fatalf("CSP %q", csp)
	}
	if n := strings.Count(page, `<script nonce="`+nonce[1]+`">`); n != 2 || strings.Count(page, "<script") != 2 {
		t.Errorf("page has %d scripts with the CSP nonce, %d in all; want 2 and 2", n, strings.Count(page, "<script"))
	}
	if !strings.Contains(page, "65,536") || !strings.Contains(page, `"verify_url":"/challenge/verify"`) {
		t.Errorf("page lacks the expected work or the verify path:\n%s", page)
	}
	if got := testutil.ToFloat64(f.m.ChallengesIssued.WithLabelValues("html")); got != 1 {
		t.Errorf("issued{html} = %v, want 1", got)
	}
}

// limitedAs asks srv for a page as ip with the Accept header accept, and
// returns the answer (its body read into b for JSON, kept for HTML).
func limitedAs(t *testing.T, srv *httptest.Server, ip, accept string) (*http.Response, limitedBody) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/page", nil)
	req.Header.Set("Accept", accept)
	req.Header.Set(testIPHeader, ip)
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var b limitedBody
	if strings.Contains(accept, "json") {
		if err := json.Unmarshal(raw, &b); err != nil {
			t.Fatalf("decode 429: %v: %s", err, raw)
		}
	} else {
		res.Body = io.NopCloser(strings.NewReader(string(raw)))
	}
	return res, b
}

// However hard one address pushes (challenges left unsolved, or solved one
// after another), no challenge is harder than MaxDifficulty. Past it the
// answer is a plain 429 whose Retry-After lasts until the address's
// difficulty is back within the cap, and then challenges come again.
func TestDifficultyNeverPassesTheCap(t *testing.T) {
	for _, tc := range []struct {
		name  string
		solve bool
	}{
		{"unsolved", false},
		{"solved", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kv, _ := connectKV(t, testkit.NewServer(t))
			f := newFixture(t, kv, func(c *challenge.Config) {
				c.Difficulty, c.MaxDifficulty, c.EscalateAfter, c.EscalateAfterSolves = 1, 3, 2, 2
			})
			srv := newServer(t, f)
			const ip = "203.0.113.70"
			start := f.clock.Now()
			var issued, refused int
			for range 40 {
				res, b := limitedAs(t, srv, ip, "application/json")
				if res.StatusCode != http.StatusTooManyRequests {
					t.Fatalf("status %d", res.StatusCode)
				}
				if b.Challenge == nil {
					refused++
					after, _ := strconv.Atoi(res.Header.Get("Retry-After"))
					// The count started at the first request: it is
					// forgotten ten minutes later.
					want := int((start.Add(10*time.Minute).Sub(f.clock.Now()) + time.Second - 1) / time.Second)
					if b.Error != "rate_limited" || b.RetryAfter != after || after < want || after > want+1 {
						t.Fatalf("past the cap: Retry-After %d, body %+v; want about %d s", after, b, want)
					}
					f.clock.Advance(time.Second)
					continue
				}
				issued++
				if b.Challenge.Difficulty > 3 {
					t.Fatalf("challenge %d: difficulty %d, above the cap 3", issued, b.Challenge.Difficulty)
				}
				if tc.solve {
					ch := *b.Challenge
					if a := postJSON(t, srv, ip, ch.ID, client.Solve(ch.Seed, ch.Difficulty)); a.status != http.StatusOK {
						t.Fatalf("verify: %d %v", a.status, a.body)
					}
				}
			}
			if refused == 0 {
				t.Fatal("never past the cap")
			}
			// Once the counts are forgotten, the address is asked again, at
			// the start.
			f.clock.Advance(10 * time.Minute)
			if d := getChallenge(t, srv, ip).Difficulty; d != 1 {
				t.Errorf("after the window: difficulty %d, want 1", d)
			}
		})
	}
}

// Past the cap a browser gets a page, not a challenge: a 429 with
// Retry-After, saying when to come back, and reloading by itself then.
func TestPastTheCapPageSaysWhenToComeBack(t *testing.T) {
	kv, _ := connectKV(t, testkit.NewServer(t))
	f := newFixture(t, kv, nil) // the defaults: 4, at most 5
	srv := newServer(t, f)
	const ip = "203.0.113.80"
	for range 10 { // 5 unsolved raise it to 5; 5 more would take it to 6
		if d := getChallenge(t, srv, ip).Difficulty; d > challenge.DefaultDifficulty+challenge.DefaultMaxSteps {
			t.Fatalf("difficulty %d above the default cap", d)
		}
	}
	res, _ := limitedAs(t, srv, ip, "text/html,application/xhtml+xml")
	raw, _ := io.ReadAll(res.Body)
	page := string(raw)
	after, _ := strconv.Atoi(res.Header.Get("Retry-After"))
	if res.StatusCode != http.StatusTooManyRequests || after < 590 || after > 600 {
		t.Errorf("status %d, Retry-After %q; want 429 and about 600 s", res.StatusCode, res.Header.Get("Retry-After"))
	}
	if !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Errorf("Content-Type %q", res.Header.Get("Content-Type"))
	}
	// Rendered a moment ago: this second or the one before.
	at := f.clock.Now().Add(time.Duration(after) * time.Second)
	back := at.UTC().Format("15:04:05 UTC")
	said := strings.Contains(page, "come back in about 10 minutes, at "+back) ||
		strings.Contains(page, "come back in about 10 minutes, at "+at.Add(-time.Second).UTC().Format("15:04:05 UTC"))
	if !said ||
		!strings.Contains(page, `<meta http-equiv="refresh" content="`+strconv.Itoa(after)+`">`) {
		t.Errorf("the page does not say when to come back (%s):\n%s", back, page)
	}
	if strings.Contains(page, "<script") || strings.Contains(page, "verify_url") {
		t.Errorf("the page past the cap asks for work:\n%s", page)
	}
	// An API client gets the same as JSON.
	res, b := limitedAs(t, srv, ip, "application/json")
	if res.StatusCode != http.StatusTooManyRequests || b.Challenge != nil || b.Error != "rate_limited" || b.RetryAfter < 590 {
		t.Errorf("JSON past the cap: %d %+v", res.StatusCode, b)
	}
}
