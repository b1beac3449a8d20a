package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/channels"
	"github.com/heraldrelay/herald/crypto"
	"github.com/heraldrelay/herald/internal/idempotency"
	"github.com/heraldrelay/herald/internal/metrics"
	"github.com/heraldrelay/herald/internal/queue"
	"github.com/heraldrelay/herald/internal/status"
	"github.com/heraldrelay/herald/publisher"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// The test's secrets. None of them may appear in a response or a log line.
const (
	testAPISecret = "test-vps-secret-0123456789"
	testKey       = "0123456789abcdef0123456789abcdef" // the Streaky vectors' key
	testWebhook   = "https://discord.com/api/webhooks/123456789012345678/AbCdEf-SeCrEtToKeN_0123456789"
	testWebhookTk = "AbCdEf-SeCrEtToKeN_0123456789"
	testBotToken  = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
	testChatID    = "987654321012"
)

var _ = []TargetChecker{(*channels.Discord)(nil), (*channels.Telegram)(nil)}

// secretsOf lists every string that must never leak, including the
// plaintexts of credentials that tests seal.
var leakWatch = []string{testAPISecret, "second-secret-abcdefgh", testKey, testWebhook, testWebhookTk, testBotToken, "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", testChatID,
	"evil.example.com", "EvilToken_xyz", "not-a-token-secret", "SECRETCHAT"}

// assertNoSecrets stops the test if s (named what) holds one of leakWatch
// or of the kit's Secrets.
func assertNoSecrets(t testing.TB, what, s string) {
	t.Helper()
	failed := t.Failed()
	testkit.AssertNoSecrets(t, what, s, leakWatch...)
	if !failed && t.Failed() {
		t.Fatalf("%s: %s", what, s)
	}
}

// env is one test's Herald: a real JetStream server, the real publisher and
// status store, the real channel checkers.
type env struct {
	t      testing.TB
	ns     *testkit.Server
	nc     *nats.Conn
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	idemKV jetstream.KeyValue
	status *status.Store
	waits  *status.Outcomes
	keys   *crypto.Keyring
	reg    *prometheus.Registry
	logs   *testkit.LogBuffer
	srv    *Server
	h      http.Handler
}

type envOption func(*Config, *Deps)

// outcomes starts the env's Outcomes, as a process does once.
func (e *env) outcomes() *status.Outcomes {
	e.t.Helper()
	o, err := e.status.Outcomes()
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(o.Close)
	e.waits = o
	return o
}

func withWait(d time.Duration) envOption {
	return func(c *Config, _ *Deps) { c.StreakyWait = d }
}

// idemWindow stands for the idempotency store until newTestEnv makes it,
// with its window.
type idemWindow struct {
	Idempotency
	window time.Duration
}

// withIdempotencyWindow keeps Idempotency-Keys for d instead of an hour.
func withIdempotencyWindow(d time.Duration) envOption {
	return func(_ *Config, deps *Deps) { deps.Idempotency = idemWindow{window: d} }
}

// withMaxKeys bounds the kept keys to n, shared out as Config says (per
// secret when not 0).
func withMaxKeys(n, perSecret int) envOption {
	return func(c *Config, _ *Deps) { c.MaxKeys, c.MaxKeysPerSecret = n, perSecret }
}

func withFailureStatus(f FailureStatus) envOption {
	return func(c *Config, _ *Deps) { c.StreakyFailureStatus = f }
}

func withMaxBody(n int64) envOption {
	return func(c *Config, _ *Deps) { c.MaxBodyBytes = n }
}

func withDiscord(cfg channels.DiscordConfig) envOption {
	return func(_ *Config, d *Deps) {
		dc, err := channels.NewDiscord(cfg, nil)
		if err != nil {
			panic(err)
		}
		d.Checkers[herald.ChannelDiscord] = dc
	}
}

func withPublisher(p Publisher) envOption {
	return func(_ *Config, d *Deps) { d.Publisher = p }
}

// newTestEnv starts JetStream and an ingest with a test allow-list (loopback
// and discord.com, http allowed) and StreakyWait 0 unless an option says
// otherwise. The connection does not reconnect, so a stopped server fails
// publishes at once instead of after the publish timeout.
func newTestEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, ns: testkit.NewServer(t, testkit.WithOptions(func(o *server.Options) { o.NoLog = true }))}
	var err error
	e.nc, e.js = testkit.Connect(t, e.ns.URL(), nats.NoReconnect())
	ctx := testkit.Context(t, 10*time.Second)
	jobs, err := queue.EnsureJobsStream(ctx, e.js, queue.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	e.kv, err = queue.EnsureStatusBucket(ctx, e.js, time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	e.status = status.New(e.kv, e.nc, status.WithJobs(jobs))
	e.keys = testkit.Keyring(t, testKey)
	discord, err := channels.NewDiscord(channels.DiscordConfig{AllowedHosts: []string{"127.0.0.1", "discord.com"}, AllowHTTP: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	telegram, err := channels.NewTelegram(channels.TelegramConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.reg = prometheus.NewRegistry()
	e.logs = &testkit.LogBuffer{}
	cfg := Config{APISecrets: []string{testAPISecret, "second-secret-abcdefgh"}, Version: "test"}
	deps := Deps{
		Publisher: publisher.New(e.js),
		Status:    e.status,
		Outcomes:  e.outcomes(),
		Keys:      e.keys,
		Checkers:  map[herald.Channel]TargetChecker{herald.ChannelDiscord: discord, herald.ChannelTelegram: telegram},
		Ready:     func(ctx context.Context) error { return queue.Ready(ctx, e.nc, e.js) },
		Metrics:   metrics.New(e.reg),
		Gatherer:  e.reg,
		Logger:    slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, o := range opts {
		o(&cfg, &deps)
	}
	window := time.Hour
	if w, ok := deps.Idempotency.(idemWindow); ok {
		window = w.window
	}
	if cfg.IdempotencyWindow == 0 {
		cfg.IdempotencyWindow = window
	}
	if _, ok := deps.Idempotency.(idemWindow); ok || deps.Idempotency == nil {
		e.idemKV, err = idempotency.EnsureBucket(ctx, e.js, window, cfg.MaxKeys, 1)
		if err != nil {
			t.Fatal(err)
		}
		deps.Idempotency = idempotency.New(e.idemKV)
	}
	e.srv, err = New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	e.h = e.srv.Handler()
	t.Cleanup(func() { assertNoSecrets(t, "log output", e.logs.String()) })
	return e
}

// stopNATS shuts the server down and waits until the client noticed.
func (e *env) stopNATS() {
	e.t.Helper()
	e.ns.Shutdown()
	testkit.WaitFor(e.t, 10*time.Second, "client to see the server gone", func() bool { return !e.nc.IsConnected() })
}

func (e *env) seal(plain string) string {
	e.t.Helper()
	return testkit.Seal(e.t, e.keys, plain)
}

// request is one HTTP request to the handler.
type request struct {
	method, path string
	header       map[string]string
	body         string
	ctx          context.Context
	// unknownLength hides the body's length, as a chunked upload does.
	unknownLength bool
}

func (e *env) do(r request) *httptest.ResponseRecorder {
	e.t.Helper()
	req := httptest.NewRequest(r.method, r.path, strings.NewReader(r.body))
	if r.ctx != nil {
		req = req.WithContext(r.ctx)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	if r.unknownLength {
		req.ContentLength = -1
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	assertNoSecrets(e.t, r.method+" "+r.path+" response", rec.Body.String())
	for k, vs := range rec.Header() {
		assertNoSecrets(e.t, "response header "+k, strings.Join(vs, ","))
	}
	return rec
}

// streaky posts body to /send-notification as the Worker does.
func (e *env) streaky(body string) *httptest.ResponseRecorder {
	e.t.Helper()
	return e.do(request{method: "POST", path: "/send-notification", body: body, header: map[string]string{
		"Content-Type": "application/json", "X-API-Secret": testAPISecret,
	}})
}

// streakyBody builds a Worker request body.
func streakyBody(fields map[string]any) string {
	b, err := json.Marshal(fields)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func goodMessage() map[string]any {
	return map[string]any{"username": "octocat", "current_streak": 42, "contributions_today": 0, "message": "Don't lose your streak! 🔥"}
}

func (e *env) discordBody() string {
	return streakyBody(map[string]any{"type": "discord", "encrypted_webhook": e.seal(testWebhook), "message": goodMessage()})
}

func (e *env) telegramBody() string {
	return streakyBody(map[string]any{"type": "telegram", "encrypted_token": e.seal(testBotToken),
		"encrypted_chat_id": e.seal(testChatID), "message": goodMessage()})
}

// streamMsgs returns the number of jobs in the stream.
func (e *env) streamMsgs() uint64 {
	e.t.Helper()
	return testkit.StreamMsgs(e.t, e.js, herald.JobsStream)
}

// lastJob returns the last job stored for channel c.
func (e *env) lastJob(c herald.Channel) (herald.Job, jetstream.RawStreamMsg) {
	e.t.Helper()
	ctx := testkit.Context(e.t, 5*time.Second)
	s, err := e.js.Stream(ctx, herald.JobsStream)
	if err != nil {
		e.t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(ctx, herald.JobSubject(c)+".*")
	if err != nil {
		e.t.Fatal(err)
	}
	job, err := herald.DecodeJob(m.Data)
	if err != nil {
		e.t.Fatal(err)
	}
	return job, *m
}

// worker plays a Herald worker of another process: it takes the next job
// from the stream and writes st (with the job's id) as its status. done
// closes when it stopped.
func (e *env) worker(ctx context.Context, st herald.Status) (ids <-chan string, errs <-chan error, done <-chan struct{}) {
	return e.playWorker(ctx, st, false)
}

func (e *env) playWorker(ctx context.Context, st herald.Status, local bool) (ids <-chan string, errs <-chan error, done <-chan struct{}) {
	idc := make(chan string, 1)
	errc := make(chan error, 1)
	donec := make(chan struct{})
	cons, err := e.js.CreateOrUpdateConsumer(ctx, herald.JobsStream, jetstream.ConsumerConfig{
		Durable: "test-worker", AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	go func() {
		defer close(donec)
		for ctx.Err() == nil {
			batch, err := cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
			if err != nil {
				errc <- err
				return
			}
			for m := range batch.Messages() {
				job, err := herald.DecodeJob(m.Data())
				if err != nil {
					errc <- err
					return
				}
				_ = m.Ack()
				st.ID = job.ID
				st.Channel = job.Channel
				if local {
					e.waits.Settle(herald.Status{ID: job.ID, State: herald.StateDelivering})
					e.waits.Settle(st)
					idc <- job.ID
					return
				}
				// An intermediate state first: the wait must skip it.
				if err := e.status.Put(ctx, herald.Status{ID: job.ID, State: herald.StateDelivering, Attempts: 1}); err != nil {
					errc <- err
					return
				}
				if err := e.status.Put(ctx, st); err != nil {
					errc <- err
					return
				}
				idc <- job.ID
				return
			}
			if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
				errc <- err
				return
			}
		}
	}()
	return idc, errc, donec
}

func decodeJSON(t testing.TB, r io.Reader, v any) {
	t.Helper()
	if err := json.NewDecoder(r).Decode(v); err != nil {
		t.Fatalf("decode response: %v", err)
	}
}
