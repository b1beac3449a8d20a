package main

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/heraldrelay/herald/internal/console"
	"github.com/heraldrelay/herald/internal/dlq"
	"github.com/heraldrelay/herald/internal/fake"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/internal/testkit/browser"
)

// screenshotsEnv, when set, makes the console's browser tests write their
// screenshots to docs/console/*.png (the pictures of docs/console.md);
// otherwise they take none.
const screenshotsEnv = "UPDATE_SCREENSHOTS"

// consoleWait bounds every wait of the console's browser tests.
const consoleWait = 30 * time.Second

// evilText is untrusted text from a destination and a publisher: the pages
// must show it as text, never run it.
const evilText = `<script>window.pwned=1</script> "><img src=x onerror="window.pwned=2">`

// consoleTab drives one headless chromium tab through the console of app.
type consoleTab struct {
	t   *testing.T
	ctx context.Context
	app *testApp
}

func newConsoleTab(t *testing.T, app *testApp) *consoleTab {
	t.Helper()
	ctx := browser.New(t)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1100, 640)); err != nil {
		t.Fatal(err)
	}
	return &consoleTab{t: t, ctx: ctx, app: app}
}

// open navigates to url (a path is the app's) and waits for the page.
func (c *consoleTab) open(url string) {
	c.t.Helper()
	if strings.HasPrefix(url, "/") {
		url = c.app.URL + url
	}
	ctx, cancel := context.WithTimeout(c.ctx, consoleWait)
	defer cancel()
	browser.Navigate(c.t, ctx, url)
}

// eval evaluates a JavaScript expression giving a string.
func (c *consoleTab) eval(expr string) string {
	c.t.Helper()
	s, err := browser.Eval(c.ctx, expr)
	if err != nil {
		c.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return s
}

// act runs a script that leaves the page (a click on a submit button, a
// form's submission) and waits until the next document has loaded.
func (c *consoleTab) act(script string) {
	c.t.Helper()
	if _, err := browser.Eval(c.ctx, `(window.__before = "1", "")`); err != nil {
		c.t.Fatal(err)
	}
	if _, err := browser.Eval(c.ctx, `(()=>{`+script+`; return ""})()`); err != nil {
		c.t.Fatalf("run %s: %v", script, err)
	}
	c.waitJS("the next page after "+script, `!window.__before && document.readyState === "complete"`)
}

// waitJS waits until the expression is true on the current document.
func (c *consoleTab) waitJS(what, expr string) {
	c.t.Helper()
	testkit.WaitFor(c.t, consoleWait, what, func() bool {
		s, err := browser.Eval(c.ctx, `String(!!(`+expr+`))`)
		return err == nil && s == "true"
	})
}

func (c *consoleTab) heading() string {
	return c.eval(`document.querySelector("h1") ? document.querySelector("h1").innerText : ""`)
}

func (c *consoleTab) path() string { return c.eval(`location.pathname`) }

// text is the page's text, checked for secrets and for untrusted text run
// as code.
func (c *consoleTab) text() string {
	c.t.Helper()
	text := c.eval(`document.body.innerText`)
	html := c.eval(`document.documentElement.outerHTML`)
	testkit.AssertNoSecrets(c.t, "console page "+c.path(), text+html, testSecret, testAdminSecret, testkit.Key)
	if pwned := c.eval(`String(window.pwned || "")`); pwned != "" {
		c.t.Fatalf("untrusted text ran as code on %s (window.pwned = %s)", c.path(), pwned)
	}
	if n := c.eval(`String(document.querySelectorAll("script, img").length)`); n != "0" {
		c.t.Fatalf("%s has %s script or img elements; untrusted text became markup", c.path(), n)
	}
	return text
}

// signIn fills the sign-in form the tab shows with secret and submits it.
func (c *consoleTab) signIn(secret string) {
	c.t.Helper()
	if h := c.heading(); h != "Sign in" {
		c.t.Fatalf("expected the sign-in page, got %q at %s", h, c.path())
	}
	c.act(fmt.Sprintf(`document.getElementById("secret").value = %q; document.querySelector("main form button").click()`, secret))
}

// cookie is the console's session cookie in the browser, or nil.
func (c *consoleTab) cookie() *network.Cookie {
	c.t.Helper()
	res, err := chromedp.Call(c.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{c.app.URL + console.Prefix}})
	if err != nil {
		c.t.Fatal(err)
	}
	for _, ck := range res.Cookies {
		if ck.Name == console.SessionCookie {
			return ck
		}
	}
	return nil
}

// setCookie puts a session cookie of value back into the browser, without
// an expiry: a client that kept a cookie past its life.
func (c *consoleTab) setCookie(value string) {
	c.t.Helper()
	if _, err := chromedp.Call(c.ctx, network.SetCookie, network.SetCookieParams{
		Name: console.SessionCookie, Value: value, URL: c.app.URL + console.Prefix, Path: console.Prefix,
	}); err != nil {
		c.t.Fatal(err)
	}
}

// shoot saves a screenshot of the whole page as docs/console/<name>.png
// when UPDATE_SCREENSHOTS is set.
func (c *consoleTab) shoot(name string) {
	c.t.Helper()
	if os.Getenv(screenshotsEnv) == "" {
		return
	}
	png, err := chromedp.Run(c.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		c.t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := filepath.Join("..", "..", "docs", "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// pageGroup is one row of the dead-letter groups as the page shows it.
type pageGroup struct {
	Count       int    `json:"count"`
	Cause       string `json:"cause"`
	Channel     string `json:"channel"`
	Destination string `json:"dest"`
	LastError   string `json:"err"`
}

// groups reads the rows (tr.group) of the dead-letter page.
func (c *consoleTab) groups() []pageGroup {
	c.t.Helper()
	raw := c.eval(`JSON.stringify([...document.querySelectorAll("tr.group")].map(r => ({
		count: Number(r.cells[0].innerText), cause: r.cells[1].innerText, channel: r.cells[2].innerText,
		dest: r.cells[3].innerText, err: r.cells[6].innerText})))`)
	var out []pageGroup
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		c.t.Fatalf("groups: %v in %s", err, raw)
	}
	return out
}

// clickInGroup clicks the button labelled label in the row of the group
// whose destination contains dest.
func (c *consoleTab) clickInGroup(dest, label string) {
	c.t.Helper()
	c.act(fmt.Sprintf(`[...document.querySelectorAll("tr.group")].find(r => r.cells[3].innerText.includes(%q))
		.querySelectorAll("button").forEach(b => { if (b.innerText === %q) b.click() })`, dest, label))
}

// overviewFigure is the figure of the overview's row starting with label.
func (c *consoleTab) overviewFigure(label string) string {
	return c.eval(fmt.Sprintf(`(([...document.querySelectorAll("tr")].find(r => r.cells[0].innerText.startsWith(%q)) || {cells: [0, {innerText: "(no such row)"}]}).cells[1].innerText)`, label))
}

// letters counts the dead letters in JetStream, by webhook id.
func letters(t *testing.T, app *testApp) map[string]int {
	t.Helper()
	masker, err := destinationMasker(app.cfg.Encryption.Keys)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := app.letters.List(testkit.Context(t, 10*time.Second), dlq.Filter{All: true})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, l := range ls {
		// "webhook <id> #<hash>"
		out[strings.Fields(dlq.KeyOf(l, masker).Destination)[1]]++
	}
	return out
}

// postDiscordJob posts a job for webhook through the API; it returns the
// job's id.
func postDiscordJob(t *testing.T, app *testApp, webhook, title, text string) string {
	t.Helper()
	body := fmt.Sprintf(`{"channel":"discord","credentials":{"webhook":%q},"message":{"title":%q,"text":%q}}`,
		testkit.Seal(t, app.Keys, webhook), title, text)
	code, out := apiCall(t, app, http.MethodPost, "/v1/notifications", body, webhook)
	id, _ := out["id"].(string)
	if code != http.StatusAccepted || id == "" {
		t.Fatalf("post: %d %v", code, out)
	}
	return id
}

// sentTo counts the requests the fake received for webhook id.
func sentTo(d *fake.Discord, id string) int {
	n := 0
	for _, r := range d.Requests() {
		if r.WebhookID == id {
			n++
		}
	}
	return n
}

// TestConsoleInBrowser drives the operator console of the real `serve`
// wiring (real JetStream, the Discord fake) in headless chromium, as an
// operator would after an outage: sign in; the overview and the dead
// letters grouped with the right counts; replay one group (dry-run count,
// confirmation) and watch its letters leave and its jobs arrive at the
// fake; look a job up; a cross-site form post changes nothing; purge the
// other group; an open breaker; sign out, after which the old cookie opens
// nothing. Untrusted error and message texts stay text on every page. With
// UPDATE_SCREENSHOTS=1 it writes docs/console/*.png.
func TestConsoleInBrowser(t *testing.T) {
	discord := fake.NewDiscord(t)
	var healthy atomic.Bool
	discord.Script(func(r fake.DiscordRequest, _ int) fake.Response {
		switch {
		case r.WebhookID == "9003":
			return fake.RespondDiscordError(http.StatusServiceUnavailable, 0, "upstream connect error")
		case healthy.Load():
			return fake.Response{}
		case r.WebhookID == "9001":
			return fake.RespondDiscordError(http.StatusNotFound, 10015, "Unknown Webhook "+evilText)
		default:
			return fake.Respond404UnknownWebhook()
		}
	})
	app := newTestApp(t, map[string]string{"HERALD_ADMIN_SECRET": testAdminSecret})
	hookA, hookB := discord.WebhookURL("9001", "console-token-a"), discord.WebhookURL("9002", "console-token-b")
	var idsA, idsB []string
	for i := range 3 {
		idsA = append(idsA, postDiscordJob(t, app, hookA, "Streak at risk "+evilText, fmt.Sprintf("alert %d for octocat", i)))
	}
	for i := range 2 {
		idsB = append(idsB, postDiscordJob(t, app, hookB, "Daily digest "+evilText, fmt.Sprintf("digest %d", i)))
	}
	testkit.WaitFor(t, consoleWait, "5 dead letters", func() bool {
		n := letters(t, app)
		return n["9001"] == 3 && n["9002"] == 2
	})

	tab := newConsoleTab(t, app)

	// Every page asks for a sign-in first, and comes back after it.
	tab.open("/console/dlq")
	if tab.heading() != "Sign in" || tab.path() != "/console/login" {
		t.Fatalf("without a session /console/dlq shows %q at %s, want the sign-in page", tab.heading(), tab.path())
	}
	tab.shoot("signin")
	tab.signIn("not-the-admin-secret-at-all")
	if text := tab.text(); tab.heading() != "Sign in" || !strings.Contains(text, "Wrong secret.") {
		t.Fatalf("a wrong secret shows %q:\n%s", tab.heading(), text)
	}
	if tab.cookie() != nil {
		t.Fatal("a wrong secret got a session cookie")
	}
	tab.signIn(testAdminSecret)
	ck := tab.cookie()
	if ck == nil || !ck.HTTPOnly || ck.SameSite != network.CookieSameSiteStrict || ck.Path != console.Prefix || ck.Session {
		t.Fatalf("session cookie %+v, want HttpOnly, SameSite=Strict, path /console/, expiring", ck)
	}
	if tab.path() != "/console/dlq" {
		t.Fatalf("after sign-in the tab is at %s", tab.path())
	}

	// The overview.
	tab.open("/console/")
	tab.text()
	if got := tab.overviewFigure("Dead letters, last 24 hours"); got != "5" {
		t.Errorf("overview: dead letters in 24 h %q, want 5", got)
	}
	if got := tab.overviewFigure("Queue depth"); got != "0" {
		t.Errorf("overview: queue depth %q, want 0", got)
	}
	if got := tab.overviewFigure("Open or half-open breakers"); got != "0" {
		t.Errorf("overview: open breakers %q, want 0", got)
	}
	tab.shoot("overview")

	// The dead letters, grouped by cause x channel x destination.
	tab.act(`document.querySelector('header a[href="/console/dlq"]').click()`)
	text := tab.text()
	groups := tab.groups()
	if len(groups) != 2 || groups[0].Count != 3 || groups[1].Count != 2 ||
		!strings.HasPrefix(groups[0].Destination, "webhook 9001 #") || !strings.HasPrefix(groups[1].Destination, "webhook 9002 #") ||
		groups[0].Channel != "discord" || groups[0].Cause == "" {
		t.Fatalf("groups %+v, want 3 letters of webhook 9001 and 2 of webhook 9002", groups)
	}
	if !strings.Contains(groups[0].LastError, "404") || !strings.Contains(groups[0].LastError, evilText) {
		t.Errorf("group 9001's last error %q lacks the destination's text, shown as text", groups[0].LastError)
	}
	if !strings.Contains(text, "5 dead letters match, in 2 groups") {
		t.Errorf("dead-letter page:\n%s", text)
	}
	for _, s := range []string{"console-token-a", "console-token-b"} {
		if strings.Contains(tab.eval(`document.documentElement.outerHTML`), s) {
			t.Fatalf("the dead-letter page shows a webhook token")
		}
	}
	tab.shoot("dead-letters")

	// Replay group 9001: a dry-run count and a confirmation first.
	tab.clickInGroup("webhook 9001", "Replay…")
	tab.text()
	if tab.path() != "/console/dlq/confirm" || tab.eval(`document.getElementById("count").innerText`) != "3" {
		t.Fatalf("replay confirmation at %s counts %q, want 3", tab.path(), tab.eval(`(document.getElementById("count")||{}).innerText||""`))
	}
	tab.shoot("replay-confirm")
	if n := letters(t, app); n["9001"] != 3 || sentTo(discord, "9001") != 3 {
		t.Fatalf("the confirmation page changed something: letters %v, sent %d", n, sentTo(discord, "9001"))
	}
	healthy.Store(true) // Discord is back.
	tab.act(`document.querySelector('main form[action="/console/dlq/replay"] button').click()`)
	tab.waitJS("the replay to finish", `(document.getElementById("replay") || {innerText: ""}).innerText.startsWith("Last replay")`)
	if got := tab.eval(`document.getElementById("replay").innerText`); !strings.Contains(got, "3 replayed, 0 failed") {
		t.Fatalf("replay result %q", got)
	}
	testkit.WaitFor(t, consoleWait, "the 3 replayed jobs at the fake", func() bool { return sentTo(discord, "9001") == 6 })
	if n := letters(t, app); n["9001"] != 0 || n["9002"] != 2 {
		t.Fatalf("after the replay the dead letters are %v, want only 2 of webhook 9002", n)
	}
	tab.open("/console/dlq")
	tab.text()
	if groups = tab.groups(); len(groups) != 1 || groups[0].Count != 2 || !strings.HasPrefix(groups[0].Destination, "webhook 9002 #") {
		t.Fatalf("after the replay the page shows %+v, want only the 2 letters of webhook 9002", groups)
	}

	// Job lookup: a replayed job was delivered; one of the other group is
	// still a dead letter.
	tab.open("/console/job")
	tab.act(fmt.Sprintf(`document.getElementById("id").value = %q; document.querySelector("main form button").click()`, idsA[0]))
	tab.text()
	testkit.WaitFor(t, consoleWait, "the replayed job delivered", func() bool {
		tab.open("/console/job?id=" + idsA[0])
		return tab.eval(`(document.getElementById("state") || {}).innerText || ""`) == "delivered"
	})
	tab.open("/console/job?id=" + idsB[0])
	text = tab.text()
	if st := tab.eval(`(document.getElementById("state") || {}).innerText || ""`); st != "dead" || !strings.Contains(text, "Dead letter") || !strings.Contains(text, "webhook 9002 #") {
		t.Fatalf("job %s shows state %q:\n%s", idsB[0], st, text)
	}
	if !strings.Contains(text, "Daily digest "+evilText) {
		t.Errorf("the job's title is not shown as text:\n%s", text)
	}
	tab.shoot("job")

	// A page of another site posts a purge of everything to the console, with
	// the session's real CSRF token even: refused, nothing changes.
	tab.open("/console/dlq")
	csrf := tab.eval(`document.querySelector('input[name="csrf"]').value`)
	evil := crossSiteServer(t, app.URL+"/console/dlq/purge", csrf)
	tab.open(evil)
	tab.waitJS("the console's answer to the cross-site post", fmt.Sprintf(`location.href.startsWith(%q) && document.readyState === "complete"`, app.URL))
	text = tab.text()
	t.Logf("the cross-site post got %q at %s", tab.heading(), tab.path())
	if h := tab.heading(); (h != "Sign in" && h != "Refused") || strings.Contains(text, "Purged") {
		t.Fatalf("the cross-site post got %q:\n%s", h, text)
	}
	if n := letters(t, app); n["9002"] != 2 {
		t.Fatalf("the cross-site post changed the dead letters: %v", n)
	}

	// Purge group 9002, with a confirmation; the session still works.
	tab.open("/console/dlq")
	tab.clickInGroup("webhook 9002", "Purge…")
	tab.text()
	if tab.path() != "/console/dlq/confirm" || tab.eval(`document.getElementById("count").innerText`) != "2" {
		t.Fatalf("purge confirmation at %s, want a count of 2", tab.path())
	}
	if n := letters(t, app); n["9002"] != 2 {
		t.Fatalf("the purge confirmation changed something: %v", n)
	}
	tab.act(`document.querySelector('main form[action="/console/dlq/purge"] button').click()`)
	text = tab.text()
	if !strings.Contains(text, "Purged 2 dead letters.") || len(tab.groups()) != 0 || !strings.Contains(text, "0 dead letters match") {
		t.Fatalf("after the purge:\n%s", text)
	}
	if n := letters(t, app); len(n) != 0 {
		t.Fatalf("after the purge the dead letters are %v", n)
	}
	if sentTo(discord, "9002") != 2 {
		t.Fatalf("the purge sent something to webhook 9002")
	}

	// An open breaker: webhook 9003 answers 503 until it opens.
	postDiscordJob(t, app, discord.WebhookURL("9003", "console-token-c"), "Streak at risk", "alert for hubot")
	testkit.WaitFor(t, consoleWait, "an open breaker on the breakers page", func() bool {
		tab.open("/console/breakers")
		return strings.Contains(tab.text(), "1 open or half-open breakers")
	})
	if text = tab.text(); !strings.Contains(text, "webhook 9003 #") {
		t.Fatalf("breakers page:\n%s", text)
	}
	tab.shoot("breakers")

	// Sign out; the old cookie opens nothing afterwards.
	old := tab.cookie().Value
	tab.act(`document.querySelector('header form[action="/console/logout"] button').click()`)
	if text = tab.text(); tab.heading() != "Sign in" || !strings.Contains(text, "Signed out.") || tab.cookie() != nil {
		t.Fatalf("sign-out shows %q:\n%s", tab.heading(), text)
	}
	tab.setCookie(old)
	tab.open("/console/dlq")
	if tab.heading() != "Sign in" || tab.path() != "/console/login" {
		t.Fatalf("after sign-out the old cookie opens %s (%q)", tab.path(), tab.heading())
	}
	testkit.AssertNoSecrets(t, "log", app.Logs.String(), hookA, hookB, "console-token-a", "console-token-b", testSecret, testAdminSecret, testkit.Key)
}

// crossSiteServer serves, on 127.0.0.2 (another site than the console on
// 127.0.0.1), a page that posts a form to target at once; it returns the
// page's URL.
func crossSiteServer(t *testing.T, target, csrf string) string {
	t.Helper()
	page := template.Must(template.New("").Parse(`<!doctype html><title>Win a prize</title>
<form method="post" action="{{.Target}}"><input type="hidden" name="csrf" value="{{.CSRF}}"></form>
<script>document.forms[0].submit()</script>`))
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = page.Execute(w, map[string]any{"Target": template.URL(target), "CSRF": csrf}) //nolint:gosec // the test's own URL
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL + "/"
}

// TestConsoleSessionExpiresInBrowser: with admin.console_session_ttl short,
// a form left open past the session's end is refused and asks for the
// secret again, and the old cookie put back opens no page; signing in again
// returns to the page asked for.
func TestConsoleSessionExpiresInBrowser(t *testing.T) {
	const ttl = 2 * time.Second
	discord := fake.NewDiscord(t)
	discord.Script(func(fake.DiscordRequest, int) fake.Response { return fake.Respond404UnknownWebhook() })
	app := newTestApp(t, map[string]string{"HERALD_ADMIN_SECRET": testAdminSecret, "HERALD_ADMIN_CONSOLE_SESSION_TTL": ttl.String()})
	postDiscordJob(t, app, discord.WebhookURL("9001", "console-token-a"), "Streak at risk", "alert")
	testkit.WaitFor(t, consoleWait, "a dead letter", func() bool { return letters(t, app)["9001"] == 1 })

	tab := newConsoleTab(t, app)
	tab.open("/console/login")
	tab.signIn(testAdminSecret)
	ck := tab.cookie()
	if ck == nil || ck.Session || ck.Expires-float64(time.Now().Unix()) > ttl.Seconds()+1 {
		t.Fatalf("session cookie %+v, want one that expires within %s", ck, ttl)
	}
	tab.open("/console/dlq/confirm?action=purge")
	if tab.eval(`document.getElementById("count").innerText`) != "1" {
		t.Fatalf("purge confirmation: %s", tab.text())
	}
	// The operator leaves the confirmation open past the session's end.
	time.Sleep(ttl + 500*time.Millisecond)
	tab.act(`document.querySelector('main form[action="/console/dlq/purge"] button').click()`)
	if text := tab.text(); tab.heading() != "Sign in" || !strings.Contains(text, "Your session has ended") {
		t.Fatalf("a form after the session's end shows %q:\n%s", tab.heading(), text)
	}
	if n := letters(t, app); n["9001"] != 1 {
		t.Fatalf("an expired session purged: %v", n)
	}
	// A browser that kept the cookie is sent to sign in too.
	tab.setCookie(ck.Value)
	tab.open("/console/dlq?since=24h")
	if tab.heading() != "Sign in" || tab.path() != "/console/login" {
		t.Fatalf("an expired cookie opens %s (%q)", tab.path(), tab.heading())
	}
	tab.signIn(testAdminSecret)
	if got := tab.eval(`location.pathname + location.search`); got != "/console/dlq?since=24h" {
		t.Fatalf("after signing in again the tab is at %s, want the page asked for", got)
	}
	if len(tab.groups()) != 1 {
		t.Fatalf("dead-letter page after signing in again:\n%s", tab.text())
	}
}
