package consumer

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/channels"
	"github.com/heraldrelay/herald/crypto"
	"github.com/heraldrelay/herald/internal/fake"
	"github.com/heraldrelay/herald/internal/metrics"
	"github.com/heraldrelay/herald/internal/queue"
	"github.com/heraldrelay/herald/internal/status"
	"github.com/heraldrelay/herald/publisher"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// The test kit's credentials; every test's log is checked for all of them.
const (
	otherKey        = testkit.OtherKey
	webhookID       = testkit.WebhookID
	webhookToken    = testkit.WebhookToken
	botToken        = testkit.BotToken
	chatID          = testkit.ChatID
	testWebhookHost = "https://discord.com/api/webhooks/"
)

// testEnv is one embedded JetStream server with the jobs stream, and what a
// Pool needs around it.
type testEnv struct {
	t       *testing.T
	nc      *nats.Conn
	js      jetstream.JetStream
	keys    *crypto.Keyring
	pub     *publisher.Publisher
	logs    *testkit.LogBuffer
	log     *slog.Logger
	metrics *metrics.Metrics
	status  *recordingStatus
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	_, nc, js := testkit.JetStream(t)
	if _, err := queue.EnsureJobsStream(testkit.Context(t, 5*time.Second), js, queue.StreamConfig{}); err != nil {
		t.Fatalf("ensure stream: %v", err)
	}
	keys := testkit.Keyring(t)
	// Registered before any pool starts, so it checks the logs after every
	// pool has stopped.
	log, logs := testkit.Logger(t)
	return &testEnv{
		t: t, nc: nc, js: js, keys: keys, pub: publisher.New(js),
		logs: logs, log: log,
		metrics: metrics.New(prometheus.NewRegistry()),
		status:  newRecordingStatus(),
	}
}

// testConfig is a Config with short delays, for tests (relay.Config, which
// the package's internal tests cannot import).
func testConfig() Config {
	return Config{
		Workers:      4,
		AckWait:      5 * time.Second,
		SendTimeout:  2 * time.Second,
		MinBackoff:   50 * time.Millisecond,
		MaxBackoff:   200 * time.Millisecond,
		DrainTimeout: 5 * time.Second,
	}
}

// deps returns Deps with the env's collaborators and the given senders.
func (e *testEnv) deps(senders map[herald.Channel]Sender) Deps {
	return Deps{JS: e.js, Keys: e.keys, Senders: senders, Status: e.status, Logger: e.log, Metrics: e.metrics}
}

// runningPool is a Pool whose Run is going in the background: relay.Pool,
// which the package's internal tests cannot import.
type runningPool struct {
	*Pool
	t      *testing.T
	cancel context.CancelFunc
	done   chan error
}

// stop cancels Run and returns its result and how long it took to return.
// It may be called more than once; later calls return the first result.
func (r *runningPool) stop() (error, time.Duration) {
	r.t.Helper()
	start := time.Now()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // for later calls and the cleanup
		return err, time.Since(start)
	case <-time.After(30 * time.Second):
		r.t.Errorf("Run did not return 30 s after cancel")
		return nil, time.Since(start)
	}
}

// startPool builds a Pool and runs it until the test ends (the cleanup fails
// the test if Run returns an error).
func (e *testEnv) startPool(cfg Config, deps Deps) *runningPool {
	e.t.Helper()
	p, err := New(cfg, deps)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningPool{Pool: p, t: e.t, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	e.t.Cleanup(func() {
		if err, _ := r.stop(); err != nil {
			e.t.Errorf("Run: %v", err)
		}
	})
	// Run creates the consumer asynchronously; wait for it, so a job
	// published next is not missed by a pool that has not subscribed yet
	// (it would not be lost either, just later).
	e.waitFor("consumer created", func() bool {
		_, err := e.js.Consumer(context.Background(), herald.JobsStream, p.cfg.Durable)
		return err == nil
	})
	return r
}

// discordChannel is the real Discord channel, allowed to reach the fake
// over plain HTTP on loopback (relay.DiscordChannel).
func discordChannel(t *testing.T) *channels.Discord {
	t.Helper()
	d, err := channels.NewDiscord(channels.DiscordConfig{AllowedHosts: []string{"127.0.0.1"}, AllowHTTP: true}, channels.NewHTTPClient(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// telegramChannel is the real Telegram channel pointed at f
// (relay.TelegramChannel).
func telegramChannel(t *testing.T, f *fake.Telegram) *channels.Telegram {
	t.Helper()
	tg, err := channels.NewTelegram(channels.TelegramConfig{APIBase: f.URL()}, channels.NewHTTPClient(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

// discordJob returns a Discord job whose webhook is sealed with keys.
func discordJob(t *testing.T, keys *crypto.Keyring, text string) *herald.Job {
	t.Helper()
	return testkit.DiscordJob(t, keys, testWebhookHost+webhookID+"/"+webhookToken, text)
}

// telegramJob returns a Telegram job whose credentials are sealed with keys.
func telegramJob(t *testing.T, keys *crypto.Keyring, text string) *herald.Job {
	t.Helper()
	return testkit.TelegramJob(t, keys, botToken, chatID, text)
}

// publish stores job and returns its id.
func (e *testEnv) publish(job *herald.Job) string {
	e.t.Helper()
	res, err := e.pub.Publish(testkit.Context(e.t, 5*time.Second), job)
	if err != nil {
		e.t.Fatalf("publish: %v", err)
	}
	return res.ID
}

// publishRaw stores data on subject as-is, with an optional Nats-Msg-Id.
func (e *testEnv) publishRaw(subject string, data []byte, msgID string) {
	e.t.Helper()
	m := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	if msgID != "" {
		m.Header.Set(jetstream.MsgIDHeader, msgID)
	}
	if _, err := e.js.PublishMsg(testkit.Context(e.t, 5*time.Second), m); err != nil {
		e.t.Fatalf("publish raw: %v", err)
	}
}

// streamMsgs returns how many messages the jobs stream holds.
func (e *testEnv) streamMsgs() uint64 {
	e.t.Helper()
	return testkit.StreamMsgs(e.t, e.js, herald.JobsStream)
}

// consumerInfo returns the durable's info.
func (e *testEnv) consumerInfo(durable string) *jetstream.ConsumerInfo {
	e.t.Helper()
	c, err := e.js.Consumer(context.Background(), herald.JobsStream, durable)
	if err != nil {
		e.t.Fatalf("consumer: %v", err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		e.t.Fatalf("consumer info: %v", err)
	}
	return info
}

// waitFor polls cond for up to 15 s (relay's Env.WaitFor).
func (e *testEnv) waitFor(what string, cond func() bool) {
	e.t.Helper()
	testkit.WaitFor(e.t, 15*time.Second, what, cond)
}

// waitFinal waits for the job's status to reach a final state and returns it.
func (e *testEnv) waitFinal(id string) herald.Status {
	e.t.Helper()
	var st herald.Status
	e.waitFor("final status of "+id, func() bool {
		var ok bool
		st, ok = e.status.last(id)
		return ok && st.State.Final()
	})
	return st
}

// senderFunc adapts a function to Sender.
type senderFunc func(ctx context.Context, n herald.Notification) error

func (f senderFunc) Send(ctx context.Context, n herald.Notification) error { return f(ctx, n) }

// recorder is a Sender that records every call and answers with script(n),
// n counting calls per job from 1.
type recorder struct {
	mu     sync.Mutex
	calls  []call
	perJob map[string]int
	script func(n int, job string) error
}

type call struct {
	at time.Time
	n  herald.Notification
}

func newRecorder(script func(n int, job string) error) *recorder {
	if script == nil {
		script = func(int, string) error { return nil }
	}
	return &recorder{perJob: map[string]int{}, script: script}
}

func (r *recorder) Send(_ context.Context, n herald.Notification) error {
	r.mu.Lock()
	r.calls = append(r.calls, call{at: time.Now(), n: n})
	r.perJob[n.JobID]++
	k := r.perJob[n.JobID]
	r.mu.Unlock()
	return r.script(k, n.JobID)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

func (r *recorder) callsFor(job string) []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []call
	for _, c := range r.calls {
		if c.n.JobID == job {
			out = append(out, c)
		}
	}
	return out
}

// recordingStatus is an in-memory StatusStore.
type recordingStatus struct {
	mu      sync.Mutex
	recs    map[string][]herald.Status
	fail    error // Put fails with it
	getFail error // Get fails with it
	gets    map[string]int
}

func newRecordingStatus() *recordingStatus {
	return &recordingStatus{recs: map[string][]herald.Status{}, gets: map[string]int{}}
}

func (s *recordingStatus) Get(_ context.Context, id string) (herald.Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gets[id]++
	if s.getFail != nil {
		return herald.Status{}, s.getFail
	}
	r := s.recs[id]
	if len(r) == 0 {
		return herald.Status{}, status.ErrNotFound
	}
	return r[len(r)-1], nil
}

// getsFor returns how often Get was called for id.
func (s *recordingStatus) getsFor(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets[id]
}

func (s *recordingStatus) setGetFail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.getFail = err
}

func (s *recordingStatus) Put(_ context.Context, rec herald.Status) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.recs[rec.ID] = append(s.recs[rec.ID], rec)
	return nil
}

func (s *recordingStatus) last(id string) (herald.Status, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.recs[id]
	if len(r) == 0 {
		return herald.Status{}, false
	}
	return r[len(r)-1], true
}

func (s *recordingStatus) all(id string) []herald.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]herald.Status(nil), s.recs[id]...)
}

// assertNoSecrets fails the test if text contains any test secret.
func assertNoSecrets(t *testing.T, text string) {
	t.Helper()
	testkit.AssertNoSecrets(t, "text", text)
}

// errTransient is a transient send failure, as a 500 would be.
var errTransient = &herald.DestinationError{Channel: herald.ChannelDiscord, StatusCode: 500, Description: "internal error"}

// errUnknownWebhook is Discord's permanent 404/10015.
var errUnknownWebhook = herald.Permanent(&herald.DestinationError{
	Channel: herald.ChannelDiscord, StatusCode: 404, Code: 10015, Description: "Unknown Webhook",
})
