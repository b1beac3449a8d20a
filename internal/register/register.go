// Package register serves Herald's self-service registration page: a person
// pastes a Discord webhook, or a Telegram bot token and chat id, receives a
// six-digit code there, confirms it, and is shown the id of the stored
// credential (see package vault) to hand to the service that notifies them.
//
// Routes:
//
//	GET  /register          the form
//	POST /register          store the destination (unusable yet), send a code
//	GET  /register/verify   the code form again (?id=…), e.g. after a challenge
//	POST /register/verify   confirm the code (action=verify) or send a new one (action=resend)
//
// The page needs no API secret: it is public, and the rate limiter and the
// proof-of-work challenge in front of it protect it. It always verifies the
// destination, whatever the vault's RequireVerification says. Its forms are
// protected against cross-site requests by a signed double-submit token: a
// random cookie, and a form field holding its HMAC under a key every replica
// shares. The page is server-rendered with html/template, loads nothing from
// elsewhere and runs no script; it never shows a webhook, token or chat id,
// not even the one just entered.
package register

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/htmlpage"
	"github.com/heraldrelay/herald/internal/vault"
)

// Vault is what the page needs of the credential vault; *vault.Vault
// implements it.
type Vault interface {
	Store(ctx context.Context, c herald.Channel, t herald.Target, opts vault.StoreOptions) (vault.Info, error)
	Verify(ctx context.Context, id, code, owner string) (vault.Info, error)
	Resend(ctx context.Context, id, owner string) error
}

// nobody is the owner the page stores credentials for and acts as: its
// credentials belong to no API secret (whoever holds the id may use it), and
// it cannot verify or resend for a credential an API secret stored.
const nobody = ""

var _ Vault = (*vault.Vault)(nil)

// Paths and names of the page.
const (
	Path       = "/register"
	VerifyPath = "/register/verify"
	// CSRFCookie holds the random half of the form token.
	CSRFCookie = "herald_csrf"
	// csrfField is the form field holding the signed half.
	csrfField = "csrf"
	// CSRFPurpose names the keys the form tokens are signed with, for
	// vault.Vault.DeriveKeys.
	CSRFPurpose = "register csrf"
	// maxFormBytes bounds a form post.
	maxFormBytes = 16 << 10
	// requestTimeout bounds the vault work of one post (a store and the
	// job carrying the code).
	requestTimeout = 10 * time.Second
	// cookieMaxAge is how long the browser keeps the form cookie.
	cookieMaxAge = 24 * time.Hour
	// formTokenTTL is how long a form stays valid after the page was shown:
	// every rendering carries a fresh token, so a person never meets the
	// limit, and a token a script collected stops working.
	formTokenTTL = time.Hour
	// maxUsedTokens bounds the used form tokens remembered (an hour of
	// posts at ~28 a second; past it the oldest are forgotten first).
	maxUsedTokens = 100_000
)

// Config configures a Page.
type Config struct {
	// CSRFKeys sign the forms' tokens, newest first: the first signs, all
	// verify. Every replica must have the same ones; Herald derives them
	// from the vault keys (vault.Vault.DeriveKeys(CSRFPurpose)). At least
	// one, each at least 32 bytes.
	CSRFKeys [][]byte
	// Now is the clock form tokens expire by; nil means time.Now. Override
	// for tests.
	Now func() time.Time
	// MaxPendingPerClient caps the registrations one client (an IPv4 address,
	// an IPv6 network of the rate limiter's prefix) may start
	// within PendingWindow (DefaultMaxPendingPerClient when 0); past it the
	// page answers 429 with Retry-After.
	MaxPendingPerClient int
	// MaxPending caps the registrations this process starts within
	// PendingWindow from everyone (DefaultMaxPending when 0); past it the
	// page answers 503 with Retry-After.
	MaxPending int
}

// Deps are a Page's collaborators.
type Deps struct {
	// Vault stores and verifies destinations (required).
	Vault Vault
	// Logger gets one line per registration step with the credential id,
	// never the destination; nil discards.
	Logger *slog.Logger
	// VerificationWait says how long until a verification message may be
	// sent (0: now). While it is not 0, registrations are refused with 503
	// and Retry-After instead of queueing codes that could only wait: the
	// pacer's share for verification messages is spent. Nil never refuses.
	VerificationWait func() time.Duration
}

// Page serves the registration page. It is safe for concurrent use.
type Page struct {
	keys    [][]byte
	vault   Vault
	log     *slog.Logger
	tmpl    *template.Template
	wait    func() time.Duration
	now     func() time.Time
	pending *pending
	// used holds the form tokens already posted: each serves one post.
	usedMu sync.Mutex
	used   *expirable.LRU[string, struct{}]
}

//go:embed page.html
var pageSource string

// New checks cfg and deps and returns a Page.
func New(cfg Config, deps Deps) (*Page, error) {
	if len(cfg.CSRFKeys) == 0 {
		return nil, errors.New("register: at least one CSRF key is required")
	}
	for i, k := range cfg.CSRFKeys {
		if len(k) < 32 {
			return nil, fmt.Errorf("register: CSRF key %d is shorter than 32 bytes", i+1)
		}
	}
	if deps.Vault == nil {
		return nil, errors.New("register: a vault is required")
	}
	tmpl, err := template.New("page").Parse(pageSource)
	if err != nil {
		return nil, fmt.Errorf("register: page template: %w", err)
	}
	p := &Page{keys: cfg.CSRFKeys, vault: deps.Vault, log: deps.Logger, tmpl: tmpl, wait: deps.VerificationWait, now: cfg.Now,
		pending: newPending(cmp.Or(cfg.MaxPendingPerClient, DefaultMaxPendingPerClient), cmp.Or(cfg.MaxPending, DefaultMaxPending)),
		used:    expirable.NewLRU[string, struct{}](maxUsedTokens, nil, formTokenTTL+time.Minute)}
	if p.now == nil {
		p.now = time.Now
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	return p, nil
}

// Handler serves the routes under Path; mount it at both Path and Path+"/".
func (p *Page) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Path, p.handleForm)
	mux.HandleFunc("POST "+Path, p.handleRegister)
	mux.HandleFunc("GET "+VerifyPath, p.handleVerifyForm)
	mux.HandleFunc("POST "+VerifyPath, p.handleVerify)
	return mux
}

// view is what one rendering of the page shows.
type view struct {
	View        string // form, verify, done or problem
	Title       string
	CSRF        string
	Channel     string // the channel the form preselects
	Destination string // "Discord channel", "Telegram chat" or "destination"
	ID          string // the credential (verify, done)
	Error       string // never holds a destination
	Notice      string
}

// handleForm serves GET /register.
func (p *Page) handleForm(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, http.StatusOK, view{View: "form", Title: "Register a destination"})
}

// handleVerifyForm serves GET /register/verify?id=…: the code form of a
// registration in progress (a proof-of-work challenge continues a refused
// post this way).
func (p *Page) handleVerifyForm(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	if !herald.ValidID(id) {
		http.Redirect(w, r, Path, http.StatusSeeOther)
		return
	}
	p.render(w, r, http.StatusOK, verifyView(id, r.URL.Query().Get("channel")))
}

// handleRegister serves POST /register.
func (p *Page) handleRegister(w http.ResponseWriter, r *http.Request) {
	if !p.checkForm(w, r) {
		return
	}
	if p.wait != nil {
		if wait := p.wait(); wait > 0 {
			secs := int(math.Ceil(wait.Seconds()))
			p.log.LogAttrs(r.Context(), slog.LevelInfo, "registration refused: verification share spent", slog.Int("retry_after_s", secs))
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			p.problem(w, r, http.StatusServiceUnavailable, fmt.Sprintf("Too many registrations right now. Please try again in %d seconds.", secs))
			return
		}
	}
	c := herald.Channel(r.PostForm.Get("channel"))
	var target herald.Target
	// The channel field is the visitor's input: only a known name is
	// logged or repeated, never whatever else was posted in it.
	channel := ""
	if c.Valid() {
		channel = string(c)
	}
	formError := func(msg string) {
		p.log.LogAttrs(r.Context(), slog.LevelInfo, "registration refused", slog.String("channel", channel), slog.String("reason", msg))
		p.render(w, r, http.StatusUnprocessableEntity, view{View: "form", Title: "Register a destination", Channel: channel, Error: msg})
	}
	switch c {
	case herald.ChannelDiscord:
		target.WebhookURL = strings.TrimSpace(r.PostForm.Get("webhook"))
		if target.WebhookURL == "" {
			formError("Paste your Discord webhook URL.")
			return
		}
	case herald.ChannelTelegram:
		target.BotToken = strings.TrimSpace(r.PostForm.Get("bot_token"))
		target.ChatID = strings.TrimSpace(r.PostForm.Get("chat_id"))
		if target.BotToken == "" || target.ChatID == "" {
			formError("Enter your Telegram bot token and chat id.")
			return
		}
	default:
		formError("Choose Discord or Telegram.")
		return
	}
	client := clientOf(r)
	if over, retry := p.pending.take(client, p.now()); over != "" {
		secs := int(math.Ceil(retry.Seconds()))
		p.log.LogAttrs(r.Context(), slog.LevelInfo, "registration refused: too many awaiting their code", slog.String("cap", over))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		code, msg := http.StatusTooManyRequests, "You have started several registrations that are waiting for their codes. Enter those codes, or try again in %d minutes."
		if over == "total" {
			code, msg = http.StatusServiceUnavailable, "Too many registrations are waiting for their codes right now. Please try again in %d minutes."
		}
		p.problem(w, r, code, fmt.Sprintf(msg, max(secs/60, 1)))
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), requestTimeout)
	defer cancel()
	info, err := p.vault.Store(ctx, c, target, vault.StoreOptions{Verify: true, Owner: nobody})
	if err != nil {
		p.pending.giveBack(client)
	}
	switch {
	case err == nil:
	case errors.Is(err, vault.ErrTargetRejected):
		// The checker's reason, which never repeats the destination.
		formError("This destination cannot be used: " + strings.TrimPrefix(err.Error(), vault.ErrTargetRejected.Error()+": ") + ".")
		return
	default:
		p.failed(w, r, "store", err)
		return
	}
	p.log.LogAttrs(r.Context(), slog.LevelInfo, "registration started", slog.String("id", info.ID), slog.String("channel", string(c)))
	p.render(w, r, http.StatusOK, verifyView(info.ID, string(c)))
}

// handleVerify serves POST /register/verify.
func (p *Page) handleVerify(w http.ResponseWriter, r *http.Request) {
	if !p.checkForm(w, r) {
		return
	}
	id := r.PostForm.Get("id")
	if id == "" {
		id = r.URL.Query().Get("id")
	}
	v := verifyView(id, r.PostForm.Get("channel"))
	if !herald.ValidID(id) {
		p.problem(w, r, http.StatusNotFound, "This registration does not exist (any more): it was deleted, or it was not confirmed in time.")
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), requestTimeout)
	defer cancel()
	if r.PostForm.Get("action") == "resend" {
		err := p.vault.Resend(ctx, id, nobody)
		switch {
		case err == nil:
			v.Notice = "We sent a new code. Enter the newest one."
			p.log.LogAttrs(r.Context(), slog.LevelInfo, "registration code resent", slog.String("id", id))
			p.render(w, r, http.StatusOK, v)
		case errors.Is(err, vault.ErrAlreadyVerified):
			p.render(w, r, http.StatusOK, doneView(id, v.Destination))
		default:
			p.verifyFailed(w, r, v, err)
		}
		return
	}
	info, err := p.vault.Verify(ctx, id, r.PostForm.Get("code"), nobody)
	switch {
	case err == nil:
		p.log.LogAttrs(r.Context(), slog.LevelInfo, "registration verified", slog.String("id", id), slog.String("channel", string(info.Channel)))
		p.render(w, r, http.StatusOK, doneView(id, destination(string(info.Channel))))
	case errors.Is(err, vault.ErrAlreadyVerified):
		p.render(w, r, http.StatusOK, doneView(id, v.Destination))
	default:
		p.verifyFailed(w, r, v, err)
	}
}

// verifyFailed answers a verify or resend that did not succeed.
func (p *Page) verifyFailed(w http.ResponseWriter, r *http.Request, v view, err error) {
	var wrong *vault.WrongCodeError
	switch {
	case errors.As(err, &wrong):
		v.Error = fmt.Sprintf("That code is not the one we sent. %s", attemptsLeft(wrong.Remaining))
		p.render(w, r, http.StatusUnprocessableEntity, v)
	case errors.Is(err, vault.ErrCodeExpired):
		v.Error = "That code has expired. Ask for a new one."
		p.render(w, r, http.StatusUnprocessableEntity, v)
	case errors.Is(err, vault.ErrNoCode):
		v.Error = "No code was sent yet. Ask for one."
		p.render(w, r, http.StatusConflict, v)
	case errors.Is(err, vault.ErrTooManyAttempts):
		p.log.LogAttrs(r.Context(), slog.LevelInfo, "registration deleted after too many wrong codes", slog.String("id", v.ID))
		p.problem(w, r, http.StatusGone, "Too many wrong codes: the registration was deleted. Start again.")
	case errors.Is(err, vault.ErrNotFound):
		p.problem(w, r, http.StatusNotFound, "This registration does not exist (any more): it was deleted, or it was not confirmed in time.")
	default:
		p.failed(w, r, "verify", err)
	}
}

func attemptsLeft(n int) string {
	if n == 1 {
		return "One more wrong code deletes the registration."
	}
	return fmt.Sprintf("%d more wrong codes delete the registration.", n)
}

// failed answers an error the visitor can do nothing about but wait.
func (p *Page) failed(w http.ResponseWriter, r *http.Request, step string, err error) {
	// Vault errors never hold a destination.
	p.log.LogAttrs(r.Context(), slog.LevelWarn, "registration failed", slog.String("step", step), slog.String("error", err.Error()))
	w.Header().Set("Retry-After", "30")
	p.problem(w, r, http.StatusServiceUnavailable, "Something went wrong on our side. Please try again in a minute.")
}

func (p *Page) problem(w http.ResponseWriter, r *http.Request, code int, msg string) {
	p.render(w, r, code, view{View: "problem", Title: "Registration", Error: msg})
}

func verifyView(id, channel string) view {
	if !herald.Channel(channel).Valid() {
		channel = "" // only ever one of the known names, which the page repeats
	}
	return view{View: "verify", Title: "Enter your code", ID: id, Channel: channel, Destination: destination(channel)}
}

func doneView(id, dest string) view {
	return view{View: "done", Title: "All set", ID: id, Destination: dest}
}

func destination(channel string) string {
	switch herald.Channel(channel) {
	case herald.ChannelDiscord:
		return "Discord channel"
	case herald.ChannelTelegram:
		return "Telegram chat"
	}
	return "destination"
}

// checkForm parses a form post and checks its CSRF token; it answers 403
// (or 400 for a body that does not parse) and returns false when it fails.
func (p *Page) checkForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		p.problem(w, r, http.StatusBadRequest, "The form could not be read. Reload the page and try again.")
		return false
	}
	c, err := r.Cookie(CSRFCookie)
	token := r.PostForm.Get(csrfField)
	if !sameOrigin(r) || err != nil || !p.validToken(c.Value, token) || !p.claim(token) {
		p.log.LogAttrs(r.Context(), slog.LevelInfo, "registration form refused", slog.String("reason", "csrf"))
		p.problem(w, r, http.StatusForbidden, "This form has expired or did not come from this page. Reload the page and try again.")
		return false
	}
	return true
}

// claim marks a valid form token used, and reports false when it already
// was: a token serves one post (every page rendering carries a fresh one).
// Tokens are remembered in this process, for their lifetime.
func (p *Page) claim(token string) bool {
	p.usedMu.Lock()
	defer p.usedMu.Unlock()
	if p.used.Contains(token) {
		return false
	}
	p.used.Add(token, struct{}{})
	return true
}

// sameOrigin reports whether a form post may come from this page: a browser
// says where a request comes from (Sec-Fetch-Site, Origin), and a post from
// another site is refused even with a valid token. Clients that send
// neither (scripts, old browsers) are judged by the token alone.
//
// Sec-Fetch-Site, which every current browser sends and no page can forge,
// decides when present; Origin is compared with the host the browser asked
// for (Host, or X-Forwarded-Host behind a proxy that rewrites Host) only for
// browsers without it.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin" || site == "none"
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	return strings.EqualFold(u.Host, r.Host) || strings.EqualFold(u.Host, r.Header.Get("X-Forwarded-Host"))
}

var b64 = base64.RawURLEncoding

// sign returns the form token's signature of cookie value v, expiring at
// exp (unix seconds), with nonce, under key.
func sign(key []byte, v string, exp int64, nonce string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("herald register form\x00" + v + "\x00" + strconv.FormatInt(exp, 10) + "\x00" + nonce))
	return b64.EncodeToString(m.Sum(nil))
}

// formToken is a fresh form token for cookie value v:
// "<expiry>.<nonce>.<signature>", valid for formTokenTTL and, being unique,
// for one post.
func (p *Page) formToken(v string) string {
	exp := p.now().Add(formTokenTTL).Unix()
	raw := make([]byte, 12)
	_, _ = rand.Read(raw)
	nonce := b64.EncodeToString(raw)
	return strconv.FormatInt(exp, 10) + "." + nonce + "." + sign(p.keys[0], v, exp, nonce)
}

// validToken reports whether token is a form token this page issued for
// cookie within formTokenTTL, under any of its keys.
func (p *Page) validToken(cookie, token string) bool {
	expText, rest, found := strings.Cut(token, ".")
	nonce, sig, found2 := strings.Cut(rest, ".")
	if len(cookie) < 22 || !found || !found2 || nonce == "" {
		return false
	}
	exp, err := strconv.ParseInt(expText, 10, 64)
	if err != nil || p.now().Unix() > exp || exp > p.now().Add(formTokenTTL).Unix() {
		return false
	}
	ok := false
	for _, k := range p.keys {
		// No early exit: the time taken does not say which key matched.
		if hmac.Equal([]byte(sign(k, cookie, exp, nonce)), []byte(sig)) {
			ok = true
		}
	}
	return ok
}

// csrf returns the form token for r, setting a fresh cookie when r has none
// (or one too short to be ours).
func (p *Page) csrf(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(CSRFCookie); err == nil && len(c.Value) >= 22 && len(c.Value) <= 64 {
		return p.formToken(c.Value)
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	v := b64.EncodeToString(raw)
	http.SetCookie(w, &http.Cookie{
		Name:     CSRFCookie,
		Value:    v,
		Path:     Path,
		MaxAge:   int(cookieMaxAge / time.Second),
		HttpOnly: true,
		Secure:   r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https"),
		SameSite: http.SameSiteStrictMode,
	})
	return p.formToken(v)
}

// render writes the page. Every rendering carries a fresh form token, and
// headers that keep it out of frames, caches and other sites' requests.
func (p *Page) render(w http.ResponseWriter, r *http.Request, code int, v view) {
	v.CSRF = p.csrf(w, r)
	var buf bytes.Buffer
	if err := p.tmpl.Execute(&buf, v); err != nil {
		p.log.Error("register: render page", "err", err.Error())
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	htmlpage.Write(w, code, buf.Bytes())
}
