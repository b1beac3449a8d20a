// Package console is Herald's operator console under /console/: plain
// server-rendered pages (html/template, no external assets, no JavaScript)
// showing what is stuck and letting an operator fix it: an overview, the
// dead letters grouped by cause × channel × destination with replay and
// purge, a job look-up and the open breakers.
//
// It is off unless admin.secret is set (every /console/ path then answers
// 404, as /admin/ does). An operator signs in at /console/login with the
// admin secret; the session lives in this process's memory, in an HttpOnly,
// SameSite=Strict cookie (Secure over TLS) and expires. Every form that
// changes something carries the session's CSRF token and must come from the
// console's own origin. Texts from destinations and publishers (errors,
// messages) are untrusted: html/template escapes them, and no page shows a
// credential (destinations are masked, see package destmask).
package console

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/breaker"
	"github.com/heraldrelay/herald/internal/dlq"
	"github.com/heraldrelay/herald/internal/htmlpage"
	"github.com/heraldrelay/herald/internal/pacing"
)

// Prefix is where the console lives; mount Handler there.
const Prefix = "/console/"

// SessionCookie holds the session id.
const SessionCookie = "herald_console"

// Defaults of Config.
const (
	// DefaultSessionTTL is how long a sign-in lasts (admin.console_session_ttl):
	// a working day, after which the secret is asked again.
	DefaultSessionTTL = 8 * time.Hour
	// DefaultMaxSessions bounds the sessions kept in memory; a new one
	// evicts the one closest to expiry.
	DefaultMaxSessions = 64
)

// MinSecretLen matches the admin API's: the console can replay and delete
// every dead letter.
const MinSecretLen = 16

// Config configures the console.
type Config struct {
	// Secrets are the accepted admin secrets (admin.secret). Empty disables
	// the console.
	Secrets []string
	// SessionTTL is how long a session lasts; DefaultSessionTTL when 0.
	SessionTTL time.Duration
	// MaxSessions bounds the sessions kept; DefaultMaxSessions when 0.
	MaxSessions int
	// TrustedProxies are the peers whose X-Forwarded-Proto is believed
	// (ingest.trusted_proxies): behind such a proxy terminating TLS, the
	// cookie is Secure too.
	TrustedProxies []netip.Prefix
	// ReplayRate paces replays, letters per second; dlq.DefaultReplayRate
	// when 0.
	ReplayRate float64
	// Now is the clock; time.Now when nil. Tests move it.
	Now func() time.Time
}

// Validate checks the configuration; errors never contain a secret.
func (c Config) Validate() error {
	for i, s := range c.Secrets {
		if strings.TrimSpace(s) != s || len(s) < MinSecretLen {
			return fmt.Errorf("console: secret #%d must be at least %d characters without surrounding spaces", i+1, MinSecretLen)
		}
	}
	if c.SessionTTL < 0 || c.MaxSessions < 0 || c.ReplayRate < 0 {
		return errors.New("console: session_ttl, max sessions and replay rate must not be negative")
	}
	return nil
}

// StatusReader reads job status records; status.Store satisfies it.
type StatusReader interface {
	Get(ctx context.Context, id string) (herald.Status, error)
}

// Breakers is the breaker state the console shows; breaker.Set satisfies
// it.
type Breakers interface {
	Snapshot(limit int) []breaker.Open
	OpenCount() int
}

var _ Breakers = (*breaker.Set)(nil)

// Deps are what the console reads and acts on. Store is required when the
// console is enabled; the others may be nil, and the pages then say what
// this process cannot see.
type Deps struct {
	Store  *dlq.Store
	Masker dlq.Masker
	// JS reads the streams' depths.
	JS     jetstream.JetStream
	Status StatusReader
	// Breakers and Discord are the workers' in-process state: nil in an
	// ingest-only process.
	Breakers Breakers
	Discord  func() pacing.DiscordState
	// Gatherer gives the deliveries counter (herald_deliveries_total).
	Gatherer prometheus.Gatherer
	Logger   *slog.Logger
}

// Console serves the pages. It is safe for concurrent use.
type Console struct {
	cfg      Config
	deps     Deps
	log      *slog.Logger
	now      func() time.Time
	enabled  bool
	digests  [][sha256.Size]byte
	sessions *sessions
	tmpl     *template.Template
	samples  *sampler
	handler  http.Handler

	// The one replay running in the background, and the last one's result.
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	replayM sync.Mutex
	replay  *replayState
}

//go:embed pages.html
var pagesFS embed.FS

// New returns the console. With no secret configured it is disabled and
// deps may be empty.
func New(cfg Config, deps Deps) (*Console, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.MaxSessions == 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.ReplayRate == 0 {
		cfg.ReplayRate = dlq.DefaultReplayRate
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Console{cfg: cfg, deps: deps, log: log.With("component", "console"), now: cfg.Now,
		enabled: len(cfg.Secrets) > 0, sessions: newSessions(cfg.MaxSessions, cfg.SessionTTL)}
	if c.enabled && deps.Store == nil {
		return nil, errors.New("console: a dead-letter store is required when the console is enabled")
	}
	for _, s := range cfg.Secrets {
		c.digests = append(c.digests, sha256.Sum256([]byte(s)))
	}
	tmpl, err := template.New("pages").Funcs(funcs).ParseFS(pagesFS, "pages.html")
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	c.tmpl = tmpl
	c.samples = newSampler(deps.Gatherer)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.handler = c.routes()
	return c, nil
}

// Handler returns the console's router; its routes carry their full paths
// (/console/...), so mount it at Prefix without stripping.
func (c *Console) Handler() http.Handler { return c.handler }

// Close stops a replay running in the background (the letters not yet
// replayed stay) and waits for it.
func (c *Console) Close() {
	c.cancel()
	c.wg.Wait()
}

// Run samples the deliveries counter every sampleEvery until ctx ends, so
// the overview can show the last 5 and 60 minutes.
func (c *Console) Run(ctx context.Context) error {
	if !c.enabled {
		return nil
	}
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	c.samples.take(c.now())
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			c.samples.take(c.now())
		}
	}
}

func (c *Console) routes() http.Handler {
	if !c.enabled {
		return http.NotFoundHandler()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /console/login", c.handleLoginForm)
	mux.HandleFunc("POST /console/login", c.handleLogin)
	mux.Handle("POST /console/logout", c.authed(c.handleLogout))
	mux.Handle("GET /console/{$}", c.authed(c.handleOverview))
	mux.Handle("GET /console/dlq", c.authed(c.handleDLQ))
	mux.Handle("GET /console/dlq/confirm", c.authed(c.handleConfirm))
	mux.Handle("POST /console/dlq/replay", c.authed(c.handleReplay))
	mux.Handle("POST /console/dlq/purge", c.authed(c.handlePurge))
	mux.Handle("GET /console/job", c.authed(c.handleJob))
	mux.Handle("GET /console/breakers", c.authed(c.handleBreakers))
	mux.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) {
		http.NotFound(w, r)
	})
	return mux
}

// authorized checks a secret against every configured one in constant time.
func (c *Console) authorized(given string) bool {
	if given == "" {
		return false
	}
	d := sha256.Sum256([]byte(given))
	match := 0
	for i := range c.digests {
		match |= subtle.ConstantTimeCompare(d[:], c.digests[i][:])
	}
	return match == 1
}

type ctxKey struct{}

// authed lets through requests with a live session; others are sent to
// sign in. A state-changing request must also carry the session's CSRF
// token and come from this origin.
func (c *Console) authed(h func(http.ResponseWriter, *http.Request, *session)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var sess *session
		if ck, err := r.Cookie(SessionCookie); err == nil {
			sess = c.sessions.get(ck.Value, c.now())
		}
		if sess == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/console/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			c.render(w, r, http.StatusUnauthorized, "login", page{Title: "Sign in", Error: "Your session has ended. Sign in again."})
			return
		}
		if r.Method == http.MethodPost {
			if err := r.ParseForm(); err != nil || !sameOrigin(r) ||
				subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(sess.csrf)) != 1 {
				c.log.LogAttrs(r.Context(), slog.LevelWarn, "console form refused", slog.String("reason", "csrf or origin"), slog.String("path", r.URL.Path))
				c.render(w, r, http.StatusForbidden, "error", page{Title: "Refused", Error: "This form did not come from the console, or has expired. Go back, reload the page and try again."})
				return
			}
		}
		h(w, r, sess)
	})
}

// sameOrigin reports whether a post comes from the console's own pages:
// Sec-Fetch-Site decides when the browser sends it; else Origin must name
// this host; a client that sends neither is judged by the token alone.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin"
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

// secure reports whether the browser reached the console over TLS: a TLS
// connection, or a trusted proxy saying so.
func (c *Console) secure(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	if !strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") || len(c.cfg.TrustedProxies) == 0 {
		return false
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range c.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (c *Console) handleLoginForm(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "login", page{Title: "Sign in", Next: safeNext(r.URL.Query().Get("next"))})
}

func (c *Console) handleLogin(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || !sameOrigin(r) {
		c.render(w, r, http.StatusForbidden, "login", page{Title: "Sign in", Error: "This form did not come from the console."})
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	if !c.authorized(r.PostForm.Get("secret")) {
		c.log.LogAttrs(r.Context(), slog.LevelWarn, "console sign-in refused")
		c.render(w, r, http.StatusUnauthorized, "login", page{Title: "Sign in", Error: "Wrong secret.", Next: next})
		return
	}
	id, _ := c.sessions.create(c.now())
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: id, Path: Prefix,
		MaxAge:   int(c.cfg.SessionTTL / time.Second),
		HttpOnly: true, Secure: c.secure(r), SameSite: http.SameSiteStrictMode,
	})
	c.log.LogAttrs(r.Context(), slog.LevelInfo, "console sign-in")
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) handleLogout(w http.ResponseWriter, r *http.Request, _ *session) {
	if ck, err := r.Cookie(SessionCookie); err == nil {
		c.sessions.end(ck.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: Prefix, MaxAge: -1,
		HttpOnly: true, Secure: c.secure(r), SameSite: http.SameSiteStrictMode})
	c.render(w, r, http.StatusOK, "login", page{Title: "Sign in", Notice: "Signed out."})
}

// safeNext keeps a redirect after sign-in inside the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix) || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return Prefix
	}
	return next
}

// page is what every template gets.
type page struct {
	Title  string
	Nav    string
	CSRF   string
	Error  string
	Notice string
	Next   string
	// Refresh reloads the page every 2 s (a replay is running).
	Refresh bool
	Data    any
}

// render writes a page with headers that keep it out of frames, caches
// and other sites.
func (c *Console) render(w http.ResponseWriter, r *http.Request, code int, name string, p page) {
	var b strings.Builder
	if err := c.tmpl.ExecuteTemplate(&b, name, p); err != nil {
		c.log.LogAttrs(r.Context(), slog.LevelError, "console: render", slog.String("page", name), slog.String("err", err.Error()))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	htmlpage.Write(w, code, []byte(b.String()))
}

// internalError logs err and shows a page that does not echo it.
func (c *Console) internalError(w http.ResponseWriter, r *http.Request, sess *session, what string, err error) {
	c.log.LogAttrs(r.Context(), slog.LevelError, "console: "+what, slog.String("err", err.Error()))
	msg := "Could not " + what + "; the log says why."
	if errors.Is(err, dlq.ErrNoStream) {
		msg = "No dead letters were ever stored on this NATS."
	}
	c.render(w, r, http.StatusInternalServerError, "error", page{Title: "Error", CSRF: sess.csrf, Error: msg})
}

var funcs = template.FuncMap{
	"pair": func(f filterForm, g any) map[string]any { return map[string]any{"F": f, "G": g} },
	"groupOf": func(f filterForm) any {
		if !f.Group() {
			return nil
		}
		return f.Key()
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"dur": func(d time.Duration) string {
		if d <= 0 {
			return "0s"
		}
		if d < time.Minute {
			return d.Round(time.Second).String()
		}
		return d.Round(time.Minute).String()
	},
}

func slogErr(err error) slog.Attr { return slog.String("err", err.Error()) }
