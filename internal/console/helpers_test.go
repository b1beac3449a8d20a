package console

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/consumer"
	"github.com/heraldrelay/herald/internal/destmask"
	"github.com/heraldrelay/herald/internal/dlq"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/internal/testkit/relay"
)

const (
	adminSecret  = "console-admin-secret-0123456789"
	plainWebhook = "https://discord.com/api/webhooks/123456789012345678/PLAINTEXT-console-token"
	otherWebhook = "https://discord.com/api/webhooks/223456789012345678/PLAINTEXT-other-token"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a console over a real JetStream holding the jobs stream, the
// dead-letter stream and a consumer standing in for the workers.
type env struct {
	t      *testing.T
	e      *relay.Env
	c      *Console
	clock  *clock
	store  *dlq.Store
	jobs   jetstream.Consumer
	sealed []string
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	e := relay.New(t)
	ctx := testkit.Context(t, 30*time.Second)
	if _, err := dlq.EnsureStream(ctx, e.JS, dlq.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	jobs, err := e.JS.CreateOrUpdateConsumer(ctx, herald.JobsStream, jetstream.ConsumerConfig{Durable: "test-workers", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Now()}
	if cfg.Secrets == nil {
		cfg.Secrets = []string{adminSecret}
	}
	cfg.Now = clk.Now
	store := dlq.NewStore(e.JS, dlq.WithStatus(e.Status))
	log, _ := testkit.Logger(t, adminSecret, "PLAINTEXT")
	c, err := New(cfg, Deps{Store: store, Masker: destmask.New(e.Keys, destmask.DeriveKey(testkit.Key)), JS: e.JS,
		Status: e.Status, Gatherer: e.Registry, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &env{t: t, e: e, c: c, clock: clk, store: store, jobs: jobs}
}

// kill dead-letters a Discord job to webhook with reason and text.
func (v *env) kill(id, webhook, cause, reason, text string) {
	t := v.t
	t.Helper()
	ctx := testkit.Context(t, 30*time.Second)
	job := testkit.DiscordJob(t, v.e.Keys, webhook, text)
	job.Version, job.ID = herald.JobVersion, id
	v.sealed = append(v.sealed, job.Credentials.Webhook)
	if _, err := v.e.Pub.Publish(ctx, job); err != nil {
		t.Fatal(err)
	}
	m, err := v.jobs.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	meta, _ := m.Metadata()
	now := time.Now()
	if err := dlq.NewWriter(v.e.JS).DeadLetter(ctx, m, consumer.DeadLetterInfo{JobID: id, Channel: herald.ChannelDiscord,
		Reason: reason, Cause: cause, StatusCode: 404, Attempts: 1, FirstAttempt: now, LastAttempt: now,
		Subject: m.Subject(), Sequence: meta.Sequence.Stream}); err != nil {
		t.Fatal(err)
	}
	_ = m.Ack()
	if err := v.e.Status.Put(ctx, herald.Status{ID: id, Channel: herald.ChannelDiscord, State: herald.StateDead, Attempts: 1, LastError: reason}); err != nil {
		t.Fatal(err)
	}
}

// letters returns the number of dead letters stored.
func (v *env) letters() uint64 { return testkit.StreamMsgs(v.t, v.e.JS, herald.DeadLetterStream) }

// resp is an answered request.
type resp struct {
	code   int
	body   string
	header http.Header
}

// do sends a request to the console's handler; cookie is the session id
// ("" for none); mod adjusts the request.
func (v *env) do(method, target, cookie string, form url.Values, mod func(*http.Request)) resp {
	v.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequest(method, target, body)
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if cookie != "" {
		r.AddCookie(&http.Cookie{Name: SessionCookie, Value: cookie})
	}
	if mod != nil {
		mod(r)
	}
	w := httptest.NewRecorder()
	v.c.Handler().ServeHTTP(w, r)
	out := resp{code: w.Code, body: w.Body.String(), header: w.Header()}
	testkit.AssertNoSecrets(v.t, method+" "+target, out.body+strings.Join(w.Header().Values("Location"), " "),
		append([]string{adminSecret, "PLAINTEXT"}, v.sealed...)...)
	return out
}

// signIn signs in and returns the session cookie.
func (v *env) signIn() *http.Cookie {
	v.t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/console/login", strings.NewReader(url.Values{"secret": {adminSecret}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	w := httptest.NewRecorder()
	v.c.Handler().ServeHTTP(w, r)
	if w.Code != http.StatusSeeOther {
		v.t.Fatalf("sign-in: %d %s", w.Code, w.Body)
	}
	for _, ck := range w.Result().Cookies() {
		if ck.Name == SessionCookie {
			return ck
		}
	}
	v.t.Fatal("sign-in set no session cookie")
	return nil
}

// csrfOf finds the CSRF token in a page.
func csrfOf(t *testing.T, body string) string {
	t.Helper()
	const marker = `name="csrf" value="`
	i := strings.Index(body, marker)
	if i < 0 {
		t.Fatalf("no CSRF token in the page:\n%s", body)
	}
	rest := body[i+len(marker):]
	return rest[:strings.Index(rest, `"`)]
}

func sameSite(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "same-origin") }

func withTLS(r *http.Request) { r.TLS = &tls.ConnectionState{} }

func httptestRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

func httptestRequest(method, target string) *http.Request {
	return httptest.NewRequest(method, target, nil)
}
