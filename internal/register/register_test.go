package register_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/channels"
	"github.com/heraldrelay/herald/internal/register"
	"github.com/heraldrelay/herald/internal/vault"
)

const (
	testWebhook = "https://discord.com/api/webhooks/123456789012345678/PaGe-SeCrEt_token_0123456789"
	webhookTok  = "PaGe-SeCrEt_token_0123456789"
	testBot     = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
	testChat    = "-1009876543210"
	vaultKey    = "p1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	otherKey    = "p0:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
)

var secrets = []string{testWebhook, webhookTok, testBot, "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", testChat, "EvilToken_xyz"}

// assertNoLeak stops the test if s (named what) holds one of secrets or of
// the kit's Secrets.
func assertNoLeak(t *testing.T, what, s string) {
	t.Helper()
	failed := t.Failed()
	testkit.AssertNoSecrets(t, what, s, secrets...)
	if !failed && t.Failed() {
		t.FailNow()
	}
}

// codes records what the vault sends to destinations.
type codes struct {
	mu   sync.Mutex
	sent []string
}

var codeRE = regexp.MustCompile(`\d{6}$`)

func (c *codes) Notify(_ context.Context, n herald.Notification) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent = append(c.sent, codeRE.FindString(n.Message.Title))
	return nil
}

func (c *codes) last(t *testing.T) string {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.sent) == 0 {
		t.Fatal("no code was sent")
	}
	return c.sent[len(c.sent)-1]
}

func (c *codes) count() int { c.mu.Lock(); defer c.mu.Unlock(); return len(c.sent) }

type page struct {
	url   string
	codes *codes
	vault *vault.Vault
	// wait is what the page's VerificationWait answers (0: send now).
	wait atomic.Int64
	// clock is the page's clock for form tokens.
	clock testkit.ShiftedClock
}

// newPage serves the page over a real vault; csrfKeys default to the
// vault's derived ones. The log is checked for secrets (and the kit's) when
// the test ends.
func newPage(t *testing.T, csrfKeys [][]byte, edit ...func(*register.Config)) *page {
	t.Helper()
	_, _, js := testkit.JetStream(t)
	creds, secretsKV, err := vault.EnsureBuckets(testkit.Context(t, 10*time.Second), js, vault.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	discord, _ := channels.NewDiscord(channels.DiscordConfig{}, nil)
	telegram, _ := channels.NewTelegram(channels.TelegramConfig{}, nil)
	log, _ := testkit.Logger(t, secrets...)
	p := &page{codes: &codes{}}
	p.vault, err = vault.New(vault.Config{Keys: []string{vaultKey}}, vault.Deps{
		Credentials: creds, Secrets: secretsKV, Notifier: p.codes, Logger: log,
		Checkers: map[herald.Channel]vault.TargetChecker{herald.ChannelDiscord: discord, herald.ChannelTelegram: telegram},
	})
	if err != nil {
		t.Fatal(err)
	}
	if csrfKeys == nil {
		csrfKeys = p.vault.DeriveKeys(register.CSRFPurpose)
	}
	cfg := register.Config{CSRFKeys: csrfKeys, Now: p.clock.Now}
	for _, e := range edit {
		e(&cfg)
	}
	pg, err := register.New(cfg, register.Deps{Vault: p.vault, Logger: log,
		VerificationWait: func() time.Duration { return time.Duration(p.wait.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(register.Path, pg.Handler())
	mux.Handle(register.Path+"/", pg.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

// browser is a client with a cookie jar.
type browser struct {
	t *testing.T
	c *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) get(u string) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.Get(u)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.read(resp)
}

func (b *browser) post(u string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	return b.postWith(u, form, nil)
}

// postWith posts form with extra headers (a browser's Origin, Sec-Fetch-Site).
func (b *browser) postWith(u string, form url.Values, header map[string]string) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.read(resp)
}

func (b *browser) read(resp *http.Response) (*http.Response, string) {
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	assertNoLeak(b.t, "page", string(body))
	for k, v := range resp.Header {
		assertNoLeak(b.t, "header "+k, strings.Join(v, " "))
	}
	return resp, string(body)
}

var (
	csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	idRE   = regexp.MustCompile(`name="id" value="([a-z0-9]+)"`)
)

func field(t *testing.T, re *regexp.Regexp, body string) string {
	t.Helper()
	m := re.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("page lacks %s:\n%s", re, body)
	}
	return m[1]
}

func TestFormRenders(t *testing.T) {
	p := newPage(t, nil)
	b := newBrowser(t)
	resp, body := b.get(p.url + "/register")
	if resp.StatusCode != 200 || !strings.Contains(body, `<form method="post" action="/register"`) || !strings.Contains(body, `name="webhook"`) ||
		!strings.Contains(body, `name="bot_token"`) || !strings.Contains(body, `name="chat_id"`) {
		t.Fatalf("GET /register: %d\n%s", resp.StatusCode, body)
	}
	field(t, csrfRE, body)
	for _, outside := range []string{"<script", "<link", " src=", "@import", "url("} {
		if strings.Contains(body, outside) {
			t.Errorf("page loads or runs something: %q", outside)
		}
	}
	h := resp.Header
	if !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") || h.Get("X-Frame-Options") != "DENY" ||
		h.Get("Cache-Control") != "no-store" || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Errorf("headers %v", h)
	}
	cookie := h.Get("Set-Cookie")
	if !strings.Contains(cookie, register.CSRFCookie+"=") || !strings.Contains(cookie, "HttpOnly") || !strings.Contains(cookie, "SameSite=Strict") {
		t.Errorf("Set-Cookie %q", cookie)
	}
}

func TestRegisterVerifyAndShowID(t *testing.T) {
	p := newPage(t, nil)
	b := newBrowser(t)
	_, body := b.get(p.url + "/register")
	resp, body := b.post(p.url+"/register", url.Values{"csrf": {field(t, csrfRE, body)}, "channel": {"discord"}, "webhook": {testWebhook}})
	if resp.StatusCode != 200 || !strings.Contains(body, "Discord channel") {
		t.Fatalf("POST /register: %d\n%s", resp.StatusCode, body)
	}
	id := field(t, idRE, body)
	if p.codes.count() != 1 {
		t.Fatalf("%d codes sent, want 1", p.codes.count())
	}
	// Not usable before it is confirmed, although the vault does not
	// require verification.
	if err := p.vault.Check(context.Background(), id, herald.ChannelDiscord, ""); err == nil {
		t.Fatal("the registration is usable before its code was entered")
	}
	code := p.codes.last(t)
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	resp, body = b.post(p.url+"/register/verify?id="+id, url.Values{"csrf": {field(t, csrfRE, body)}, "id": {id}, "code": {wrong}, "action": {"verify"}})
	if resp.StatusCode != 422 || !strings.Contains(body, "4 more wrong codes") || strings.Contains(body, "All set") {
		t.Fatalf("wrong code: %d\n%s", resp.StatusCode, body)
	}
	resp, body = b.post(p.url+"/register/verify?id="+id, url.Values{"csrf": {field(t, csrfRE, body)}, "id": {id}, "code": {code}, "action": {"verify"}})
	if resp.StatusCode != 200 || !strings.Contains(body, "<code>"+id+"</code>") {
		t.Fatalf("right code: %d\n%s", resp.StatusCode, body)
	}
	if err := p.vault.Check(context.Background(), id, herald.ChannelDiscord, ""); err != nil {
		t.Fatalf("verified registration: %v", err)
	}
}

func TestCSRF(t *testing.T) {
	p := newPage(t, nil)
	b := newBrowser(t)
	_, body := b.get(p.url + "/register")
	token := field(t, csrfRE, body)
	form := url.Values{"channel": {"discord"}, "webhook": {testWebhook}}

	// No token.
	if resp, _ := b.post(p.url+"/register", form); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("no token: %d", resp.StatusCode)
	}
	// The token without its cookie (another site's page posting with a
	// token it somehow learned).
	stranger := newBrowser(t)
	form.Set("csrf", token)
	if resp, _ := stranger.post(p.url+"/register", form); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("token without cookie: %d", resp.StatusCode)
	}
	// Another visitor's token with this visitor's cookie.
	_, other := stranger.get(p.url + "/register")
	form.Set("csrf", field(t, csrfRE, other))
	if resp, _ := b.post(p.url+"/register", form); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("someone else's token: %d", resp.StatusCode)
	}
	// The verify form is protected too.
	if resp, _ := b.post(p.url+"/register/verify", url.Values{"id": {herald.NewID()}, "code": {"123456"}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("verify without token: %d", resp.StatusCode)
	}
	if p.codes.count() != 0 {
		t.Fatal("a refused form sent a code")
	}
	// A post another site's page makes, with this visitor's cookie and a
	// valid token: the browser says where it comes from.
	form.Set("csrf", token)
	for _, h := range []map[string]string{
		{"Origin": "https://evil.example"},
		{"Sec-Fetch-Site": "cross-site"},
		{"Sec-Fetch-Site": "same-site", "Origin": "https://sub." + strings.TrimPrefix(p.url, "http://")},
	} {
		if resp, _ := b.postWith(p.url+"/register", form, h); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("valid token from another site (%v): %d", h, resp.StatusCode)
		}
	}
	if p.codes.count() != 0 {
		t.Fatal("a refused form sent a code")
	}
	// The right pair works, also with the headers a browser sends.
	if resp, _ := b.postWith(p.url+"/register", form, map[string]string{"Origin": p.url, "Sec-Fetch-Site": "same-origin"}); resp.StatusCode != 200 {
		t.Fatalf("valid token: %d", resp.StatusCode)
	}
	// Once: the same token again is refused, and sends nothing.
	if resp, _ := b.post(p.url+"/register", form); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a token posted twice: %d, want 403", resp.StatusCode)
	}
	if p.codes.count() != 1 {
		t.Fatalf("%d codes sent, want 1", p.codes.count())
	}
}

// TestFormTokenExpires: a token is good for an hour after the page was
// shown; a collected token stops working, and the page hands out a new one.
func TestFormTokenExpires(t *testing.T) {
	p := newPage(t, nil)
	b := newBrowser(t)
	_, body := b.get(p.url + "/register")
	form := url.Values{"channel": {"discord"}, "webhook": {testWebhook}, "csrf": {field(t, csrfRE, body)}}
	p.clock.Advance(time.Hour + time.Minute)
	if resp, _ := b.post(p.url+"/register", form); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("an expired token: %d, want 403", resp.StatusCode)
	}
	_, body = b.get(p.url + "/register")
	form.Set("csrf", field(t, csrfRE, body))
	if resp, _ := b.post(p.url+"/register", form); resp.StatusCode != 200 {
		t.Fatalf("a fresh token: %d, want 200", resp.StatusCode)
	}
}

// Tokens signed with an older key stay valid while it is configured.
func TestCSRFKeyRotation(t *testing.T) {
	oldKey, newKey := []byte(strings.Repeat("o", 32)), []byte(strings.Repeat("n", 32))
	before := newPage(t, [][]byte{oldKey})
	b := newBrowser(t)
	_, body := b.get(before.url + "/register")
	token := field(t, csrfRE, body)
	cookies := b.c.Jar.Cookies(mustURL(t, before.url+"/register"))

	after := newPage(t, [][]byte{newKey, oldKey})
	b2 := newBrowser(t)
	b2.c.Jar.SetCookies(mustURL(t, after.url+"/register"), cookies)
	resp, _ := b2.post(after.url+"/register", url.Values{"csrf": {token}, "channel": {"telegram"}, "bot_token": {testBot}, "chat_id": {testChat}})
	if resp.StatusCode != 200 {
		t.Fatalf("token of the previous key: %d", resp.StatusCode)
	}
	gone := newPage(t, [][]byte{newKey})
	b3 := newBrowser(t)
	b3.c.Jar.SetCookies(mustURL(t, gone.url+"/register"), cookies)
	if resp, _ := b3.post(gone.url+"/register", url.Values{"csrf": {token}, "channel": {"telegram"}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("token of a removed key: %d", resp.StatusCode)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestFormErrorsNeverEchoTheDestination(t *testing.T) {
	p := newPage(t, nil)
	b := newBrowser(t)
	_, body := b.get(p.url + "/register")
	token := field(t, csrfRE, body)
	for name, tc := range map[string]struct {
		form url.Values
		want string
	}{
		"other host":        {url.Values{"channel": {"discord"}, "webhook": {"https://evil.example.com/api/webhooks/1/EvilToken_xyz"}}, "cannot be used"},
		"empty webhook":     {url.Values{"channel": {"discord"}}, "Paste your Discord webhook URL"},
		"missing chat":      {url.Values{"channel": {"telegram"}, "bot_token": {testBot}}, "bot token and chat id"},
		"no channel":        {url.Values{"webhook": {testWebhook}}, "Choose Discord or Telegram"},
		"pasted as channel": {url.Values{"channel": {testWebhook}}, "Choose Discord or Telegram"},
		"bad telegram id":   {url.Values{"channel": {"telegram"}, "bot_token": {testBot}, "chat_id": {"EvilToken_xyz!"}}, "cannot be used"},
	} {
		t.Run(name, func(t *testing.T) {
			// A token serves one post; each answer carries the next.
			tc.form.Set("csrf", token)
			resp, body := b.post(p.url+"/register", tc.form)
			if resp.StatusCode != 422 || !strings.Contains(body, tc.want) || !strings.Contains(body, `name="webhook"`) {
				t.Fatalf("%d\n%s", resp.StatusCode, body)
			}
			token = field(t, csrfRE, body)
			if strings.Contains(body, "evil.example.com") {
				t.Fatal("the page repeats the destination")
			}
		})
	}
	if p.codes.count() != 0 {
		t.Fatal("a refused destination got a code")
	}
}

func TestResendAndTooManyWrongCodes(t *testing.T) {
	p := newPage(t, nil)
	b := newBrowser(t)
	_, body := b.get(p.url + "/register")
	_, body = b.post(p.url+"/register", url.Values{"csrf": {field(t, csrfRE, body)}, "channel": {"telegram"}, "bot_token": {testBot}, "chat_id": {testChat}})
	id := field(t, idRE, body)
	resp, body := b.post(p.url+"/register/verify?id="+id, url.Values{"csrf": {field(t, csrfRE, body)}, "id": {id}, "action": {"resend"}})
	if resp.StatusCode != 200 || !strings.Contains(body, "new code") || p.codes.count() != 2 {
		t.Fatalf("resend: %d, %d codes\n%s", resp.StatusCode, p.codes.count(), body)
	}
	code := p.codes.last(t)
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	for i := range 5 {
		resp, body = b.post(p.url+"/register/verify?id="+id, url.Values{"csrf": {field(t, csrfRE, body)}, "id": {id}, "code": {wrong}})
		if i < 4 && resp.StatusCode != 422 {
			t.Fatalf("wrong code %d: %d", i+1, resp.StatusCode)
		}
	}
	if resp.StatusCode != http.StatusGone || !strings.Contains(body, "Start again") {
		t.Fatalf("fifth wrong code: %d\n%s", resp.StatusCode, body)
	}
	// The verify form can be reached again by its address (a challenge
	// continues a refused post this way), but the registration is gone.
	resp, body = b.get(p.url + "/register/verify?id=" + id)
	if resp.StatusCode != 200 || field(t, idRE, body) != id {
		t.Fatalf("GET verify: %d", resp.StatusCode)
	}
	resp, body = b.post(p.url+"/register/verify?id="+id, url.Values{"csrf": {field(t, csrfRE, body)}, "id": {id}, "code": {code}})
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("right code after deletion: %d\n%s", resp.StatusCode, body)
	}
	if resp, _ := b.get(p.url + "/register/verify"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("GET verify without id: %d", resp.StatusCode)
	}
}

// TestRegisterRefusedWhileVerificationShareSpent: while verification
// messages cannot be sent, a registration is refused with 503 and
// Retry-After, and nothing is stored or sent; once they can, it goes through.
func TestRegisterRefusedWhileVerificationShareSpent(t *testing.T) {
	p := newPage(t, nil)
	p.wait.Store(int64(90*time.Second + 200*time.Millisecond))
	b := newBrowser(t)
	_, body := b.get(p.url + "/register")
	resp, body := b.post(p.url+"/register", url.Values{"csrf": {field(t, csrfRE, body)}, "channel": {"discord"}, "webhook": {testWebhook}})
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "91" || !strings.Contains(body, "try again in 91 seconds") {
		t.Fatalf("POST /register while the share is spent: %d, Retry-After %q\n%s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if p.codes.count() != 0 {
		t.Fatalf("%d codes sent while refusing", p.codes.count())
	}
	assertNoLeak(t, "refusal page", body)
	p.wait.Store(0)
	_, body = b.get(p.url + "/register")
	resp, body = b.post(p.url+"/register", url.Values{"csrf": {field(t, csrfRE, body)}, "channel": {"discord"}, "webhook": {testWebhook}})
	if resp.StatusCode != 200 || p.codes.count() != 1 {
		t.Fatalf("POST /register once the share is back: %d, %d codes\n%s", resp.StatusCode, p.codes.count(), body)
	}
}

// TestPendingRegistrationsCapped: one address may start only so many
// registrations awaiting their codes (429 past it), and everyone together
// only so many (503); a refused one stores and sends nothing.
func TestPendingRegistrationsCapped(t *testing.T) {
	register1 := func(t *testing.T, p *page, hook string) *http.Response {
		t.Helper()
		b := newBrowser(t)
		_, body := b.get(p.url + "/register")
		resp, _ := b.post(p.url+"/register", url.Values{"csrf": {field(t, csrfRE, body)}, "channel": {"discord"}, "webhook": {hook}})
		return resp
	}
	hook := func(i int) string {
		return fmt.Sprintf("https://discord.com/api/webhooks/%d/Pending-Token_%d", 100000+i, i)
	}
	t.Run("per client", func(t *testing.T) {
		p := newPage(t, nil, func(c *register.Config) { c.MaxPendingPerClient = 2 })
		for i := range 2 {
			if resp := register1(t, p, hook(i)); resp.StatusCode != 200 {
				t.Fatalf("registration %d: %d", i, resp.StatusCode)
			}
		}
		resp := register1(t, p, hook(2))
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("third registration: %d, Retry-After %q; want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		if p.codes.count() != 2 {
			t.Fatalf("%d codes sent, want 2", p.codes.count())
		}
		// The window passes: the address may register again.
		p.clock.Advance(register.PendingWindow)
		if resp := register1(t, p, hook(3)); resp.StatusCode != 200 {
			t.Fatalf("after the window: %d", resp.StatusCode)
		}
	})
	t.Run("total", func(t *testing.T) {
		p := newPage(t, nil, func(c *register.Config) { c.MaxPendingPerClient, c.MaxPending = 100, 2 })
		for i := range 2 {
			register1(t, p, hook(i))
		}
		if resp := register1(t, p, hook(2)); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("over the total: %d, want 503 with Retry-After", resp.StatusCode)
		}
	})
}

// The page acts for nobody: a credential an API secret stored (with an
// owner) does not exist to it. Neither a wrong code nor the right one is
// taken, and no code is resent.
func TestRegisterCannotTouchAnOwnedCredential(t *testing.T) {
	p := newPage(t, nil)
	owned, err := p.vault.Store(context.Background(), herald.ChannelDiscord, herald.Target{WebhookURL: testWebhook},
		vault.StoreOptions{Verify: true, Owner: "someapisecretsownerid00000"})
	if err != nil {
		t.Fatal(err)
	}
	code := p.codes.last(t)
	b := newBrowser(t)
	for _, form := range []url.Values{
		{"code": {code}, "action": {"verify"}},
		{"action": {"resend"}},
	} {
		_, body := b.get(p.url + "/register")
		form.Set("csrf", field(t, csrfRE, body))
		form.Set("id", owned.ID)
		resp, body := b.post(p.url+"/register/verify?id="+owned.ID, form)
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "does not exist") {
			t.Fatalf("%s of an owned credential: %d\n%s", form.Get("action"), resp.StatusCode, body)
		}
	}
	if p.codes.count() != 1 {
		t.Fatalf("%d codes sent, want 1", p.codes.count())
	}
	if info, err := p.vault.Info(context.Background(), owned.ID, "someapisecretsownerid00000"); err != nil || info.Verified {
		t.Fatalf("the owned credential after the page's tries: %+v, %v", info, err)
	}
}
