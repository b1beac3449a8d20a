package console

import (
	"html"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldrelay/herald/consumer"
	"github.com/heraldrelay/herald/internal/testkit"
)

func TestDisabledAnswers404(t *testing.T) {
	c, err := New(Config{}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/console/", "/console/login", "/console/dlq"} {
		w := testRecorder(c, http.MethodGet, p)
		if w != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, w)
		}
	}
}

func TestSignInCookieAndSignOut(t *testing.T) {
	v := newEnv(t, Config{SessionTTL: time.Hour, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
	// Not signed in: sent to the sign-in form, which asks for "secret".
	r := v.do(http.MethodGet, "/console/dlq?since=2h", "", nil, nil)
	if r.code != http.StatusSeeOther || r.header.Get("Location") != "/console/login?next="+url.QueryEscape("/console/dlq?since=2h") {
		t.Fatalf("unauthenticated GET: %d %q", r.code, r.header.Get("Location"))
	}
	login := v.do(http.MethodGet, "/console/login", "", nil, nil)
	if !strings.Contains(login.body, `name="secret"`) || login.header.Get("Content-Security-Policy") == "" {
		t.Fatalf("sign-in page:\n%s", login.body)
	}
	// A wrong secret is refused.
	if r := v.do(http.MethodPost, "/console/login", "", url.Values{"secret": {"wrong-secret-0123456789"}}, sameSite); r.code != http.StatusUnauthorized || !strings.Contains(r.body, "Wrong secret") {
		t.Fatalf("wrong secret: %d", r.code)
	}
	// The cookie: HttpOnly, SameSite=Strict, expiring; Secure only over TLS or a trusted proxy's https.
	for _, tc := range []struct {
		name   string
		mod    func(*http.Request)
		secure bool
	}{
		{"plain", sameSite, false},
		{"tls", func(r *http.Request) { sameSite(r); withTLS(r) }, true},
		{"trusted proxy", func(r *http.Request) {
			sameSite(r)
			r.RemoteAddr = "192.0.2.7:1234"
			r.Header.Set("X-Forwarded-Proto", "https")
		}, true},
		{"untrusted proxy", func(r *http.Request) {
			sameSite(r)
			r.RemoteAddr = "198.51.100.7:1234"
			r.Header.Set("X-Forwarded-Proto", "https")
		}, false},
	} {
		r := v.do(http.MethodPost, "/console/login", "", url.Values{"secret": {adminSecret}, "next": {"/console/dlq"}}, tc.mod)
		ck := parseSetCookie(t, r.header)
		if r.code != http.StatusSeeOther || r.header.Get("Location") != "/console/dlq" {
			t.Errorf("%s: sign-in %d to %q", tc.name, r.code, r.header.Get("Location"))
		}
		if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.MaxAge != 3600 || ck.Path != "/console/" || ck.Secure != tc.secure {
			t.Errorf("%s: cookie %+v (secure want %v)", tc.name, ck, tc.secure)
		}
	}
	// An open redirect is not: next stays inside the console.
	if r := v.do(http.MethodPost, "/console/login", "", url.Values{"secret": {adminSecret}, "next": {"//evil.example/"}}, sameSite); r.header.Get("Location") != "/console/" {
		t.Errorf("next=//evil.example/ redirected to %q", r.header.Get("Location"))
	}

	ck := v.signIn()
	page := v.do(http.MethodGet, "/console/", ck.Value, nil, nil)
	if page.code != http.StatusOK || !strings.Contains(page.body, "Queue depth") {
		t.Fatalf("overview: %d\n%s", page.code, page.body)
	}
	// Sign out ends the session: the same cookie is sent to sign in.
	out := v.do(http.MethodPost, "/console/logout", ck.Value, url.Values{"csrf": {csrfOf(t, page.body)}}, sameSite)
	if out.code != http.StatusOK || !strings.Contains(out.body, "Signed out") || parseSetCookie(t, out.header).MaxAge >= 0 {
		t.Fatalf("sign-out: %d %v", out.code, out.header)
	}
	if r := v.do(http.MethodGet, "/console/", ck.Value, nil, nil); r.code != http.StatusSeeOther {
		t.Errorf("after sign-out: %d, want a redirect to sign in", r.code)
	}
}

func TestExpiredSessionSentToSignIn(t *testing.T) {
	v := newEnv(t, Config{SessionTTL: time.Hour})
	ck := v.signIn()
	v.clock.Advance(59 * time.Minute)
	if r := v.do(http.MethodGet, "/console/dlq", ck.Value, nil, nil); r.code != http.StatusOK {
		t.Fatalf("within the TTL: %d", r.code)
	}
	v.clock.Advance(2 * time.Minute)
	if r := v.do(http.MethodGet, "/console/dlq", ck.Value, nil, nil); r.code != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/console/login") {
		t.Fatalf("after the TTL: %d %q", r.code, r.header.Get("Location"))
	}
}

func TestCrossSiteFormRefused(t *testing.T) {
	v := newEnv(t, Config{})
	v.kill("job-a1", plainWebhook, consumer.CausePermanent, "404 Unknown Webhook", "hello")
	ck := v.signIn()
	token := csrfOf(t, v.do(http.MethodGet, "/console/dlq", ck.Value, nil, nil).body)
	for _, tc := range []struct {
		name string
		form url.Values
		mod  func(*http.Request)
	}{
		{"no token", url.Values{}, sameSite},
		{"wrong token", url.Values{"csrf": {"x" + token}}, sameSite},
		{"cross-site", url.Values{"csrf": {token}}, func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "cross-site") }},
		{"other origin", url.Values{"csrf": {token}}, func(r *http.Request) { r.Header.Set("Origin", "https://evil.example") }},
	} {
		if r := v.do(http.MethodPost, "/console/dlq/purge", ck.Value, tc.form, tc.mod); r.code != http.StatusForbidden {
			t.Errorf("%s: purge answered %d, want 403", tc.name, r.code)
		}
	}
	if n := v.letters(); n != 1 {
		t.Fatalf("%d letters after refused purges, want 1", n)
	}
	// The same form from the console's own page goes through.
	if r := v.do(http.MethodPost, "/console/dlq/purge", ck.Value, url.Values{"csrf": {token}}, sameSite); r.code != http.StatusSeeOther {
		t.Fatalf("same-origin purge: %d\n%s", r.code, r.body)
	}
	if n := v.letters(); n != 0 {
		t.Errorf("%d letters after the purge, want 0", n)
	}
}

// TestUntrustedTextEscaped: a dead letter whose error and message hold
// markup is shown as text on every page, and no page holds a secret
// (checked by every v.do).
func TestUntrustedTextEscaped(t *testing.T) {
	v := newEnv(t, Config{})
	evil := `<script>alert(1)</script> "><img src=x onerror=alert(2)>`
	v.kill("job-x1", plainWebhook, consumer.CausePermanent, evil, evil)
	ck := v.signIn()
	for _, p := range []string{"/console/", "/console/dlq", "/console/job?id=job-x1", "/console/dlq/confirm?action=replay", "/console/breakers"} {
		r := v.do(http.MethodGet, p, ck.Value, nil, nil)
		if r.code != http.StatusOK {
			t.Errorf("GET %s: %d", p, r.code)
		}
		if strings.Contains(r.body, "<script>") || strings.Contains(r.body, "<img") {
			t.Errorf("GET %s shows markup unescaped:\n%s", p, r.body)
		}
	}
	dlqPage := v.do(http.MethodGet, "/console/dlq", ck.Value, nil, nil).body
	job := v.do(http.MethodGet, "/console/job?id=job-x1", ck.Value, nil, nil).body
	if !strings.Contains(dlqPage, "404: &lt;script&gt;alert(1)&lt;/script&gt; &#34;&gt;&lt;img src=x onerror=alert(2)&gt;") {
		t.Errorf("the dead-letter page does not show the error as text:\n%s", dlqPage)
	}
	if strings.Count(job, "&lt;script&gt;alert(1)&lt;/script&gt; &#34;&gt;&lt;img src=x onerror=alert(2)&gt;") != 3 {
		t.Errorf("the job page should show the last error, the reason and the message as text:\n%s", job)
	}
}

func TestGroupsReplayAndPurge(t *testing.T) {
	v := newEnv(t, Config{ReplayRate: 1000})
	v.kill("job-a1", plainWebhook, consumer.CausePermanent, "404 Unknown Webhook", "a1")
	v.kill("job-a2", plainWebhook, consumer.CausePermanent, "404 Unknown Webhook again", "a2")
	v.kill("job-a3", plainWebhook, consumer.CauseBudgetExhausted, "500", "a3")
	v.kill("job-b1", otherWebhook, consumer.CausePermanent, "401 Unauthorized", "b1")
	ck := v.signIn()

	page := v.do(http.MethodGet, "/console/dlq", ck.Value, nil, nil).body
	if !strings.Contains(page, "4 dead letters match, in 3 groups") || !strings.Contains(page, "webhook 123456789012345678 #") {
		t.Fatalf("groups page:\n%s", page)
	}
	filtered := v.do(http.MethodGet, "/console/dlq?cause=budget_exhausted", ck.Value, nil, nil).body
	if !strings.Contains(filtered, "1 dead letters match the filter, in 1 groups") {
		t.Errorf("filtered page:\n%s", filtered)
	}
	// The first group (2 letters): a dry-run count, then the replay.
	group := groupForm(t, page)
	confirm := v.do(http.MethodGet, "/console/dlq/confirm?action=replay&"+group.Encode(), ck.Value, nil, nil)
	if !strings.Contains(confirm.body, `<strong id="count">2</strong>`) || v.letters() != 4 {
		t.Fatalf("confirm:\n%s", confirm.body)
	}
	post := url.Values{"csrf": {csrfOf(t, confirm.body)}}
	for k, vs := range group {
		post[k] = vs
	}
	if r := v.do(http.MethodPost, "/console/dlq/replay", ck.Value, post, sameSite); r.code != http.StatusSeeOther {
		t.Fatalf("replay: %d\n%s", r.code, r.body)
	}
	testkit.WaitFor(t, 20*time.Second, "the replay to finish", func() bool {
		st := v.c.replayStatus()
		return st != nil && !st.Running()
	})
	if st := v.c.replayStatus(); st.Result.Replayed != 2 || st.Result.Failed != 0 {
		t.Fatalf("replay result %+v", st.Result)
	}
	for range 2 {
		m, err := v.jobs.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			t.Fatal("a replayed job did not arrive:", err)
		}
		_ = m.Ack()
	}
	if n := v.letters(); n != 2 {
		t.Errorf("%d letters after replaying the group, want 2", n)
	}
	if body := v.do(http.MethodGet, "/console/dlq", ck.Value, nil, nil).body; !strings.Contains(body, "2 replayed, 0 failed") {
		t.Errorf("the page does not show the replay's result:\n%s", body)
	}
	// Purge all that match the cause filter: one letter.
	confirm = v.do(http.MethodGet, "/console/dlq/confirm?action=purge&cause=budget_exhausted", ck.Value, nil, nil)
	if !strings.Contains(confirm.body, `<strong id="count">1</strong>`) {
		t.Fatalf("purge confirm:\n%s", confirm.body)
	}
	r := v.do(http.MethodPost, "/console/dlq/purge", ck.Value, url.Values{"csrf": {csrfOf(t, confirm.body)}, "cause": {"budget_exhausted"}}, sameSite)
	if r.code != http.StatusSeeOther || !strings.Contains(r.header.Get("Location"), "purged=1") || v.letters() != 1 {
		t.Fatalf("purge: %d %q, %d letters left", r.code, r.header.Get("Location"), v.letters())
	}
	// The job page shows a replayed job's status and no letter.
	job := v.do(http.MethodGet, "/console/job?id=job-a1", ck.Value, nil, nil).body
	if !strings.Contains(job, `<dd id="state">queued</dd>`) || !strings.Contains(job, "No dead letter") {
		t.Errorf("job page after the replay:\n%s", job)
	}
}

// groupForm returns the hidden fields of the first group's Replay form.
func groupForm(t *testing.T, page string) url.Values {
	t.Helper()
	i := strings.Index(page, `<tr class="group">`)
	if i < 0 {
		t.Fatalf("no group row:\n%s", page)
	}
	row := page[i:]
	out := url.Values{}
	for _, name := range []string{"g_cause", "g_channel", "g_dest"} {
		marker := `name="` + name + `" value="`
		j := strings.Index(row, marker)
		if j < 0 {
			t.Fatalf("no %s in the row", name)
		}
		rest := row[j+len(marker):]
		out.Set(name, html.UnescapeString(rest[:strings.Index(rest, `"`)]))
	}
	return out
}

func parseSetCookie(t *testing.T, h http.Header) *http.Cookie {
	t.Helper()
	for _, line := range h.Values("Set-Cookie") {
		ck, err := http.ParseSetCookie(line)
		if err == nil && ck.Name == SessionCookie {
			return ck
		}
	}
	t.Fatalf("no %s cookie set: %v", SessionCookie, h)
	return nil
}

func testRecorder(c *Console, method, target string) int {
	w := httptestRecorder()
	c.Handler().ServeHTTP(w, httptestRequest(method, target))
	return w.Code
}
