package consumer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/crypto"
	"github.com/heraldrelay/herald/internal/fake"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/publisher"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var _ DeadLetterer = (*testDLQ)(nil)

// testDLQ is a DeadLetterer that does what dlq.Writer does: it publishes the
// message's data as-is, its headers and the info as headers, to
// herald.DeadLetterSubject(info.Channel) in a dead-letter stream. Its first
// failFirst calls fail without publishing.
type testDLQ struct {
	js        jetstream.JetStream
	failFirst int

	mu    sync.Mutex
	calls int
	infos []DeadLetterInfo
}

// newDLQ creates the dead-letter stream and a testDLQ publishing to it.
func (e *testEnv) newDLQ(failFirst int) *testDLQ {
	e.t.Helper()
	_, err := e.js.CreateStream(testkit.Context(e.t, 5*time.Second), jetstream.StreamConfig{
		Name: herald.DeadLetterStream, Subjects: []string{herald.DeadLetterSubjects}, Storage: jetstream.MemoryStorage,
	})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		e.t.Fatalf("create dead-letter stream: %v", err)
	}
	return &testDLQ{js: e.js, failFirst: failFirst}
}

func (q *testDLQ) DeadLetter(ctx context.Context, msg jetstream.Msg, info DeadLetterInfo) error {
	q.mu.Lock()
	q.calls++
	fail := q.calls <= q.failFirst
	q.mu.Unlock()
	if fail {
		return errors.New("dlq: publish: nats: timeout")
	}
	out := &nats.Msg{Subject: herald.DeadLetterSubject(info.Channel), Data: bytes.Clone(msg.Data()), Header: nats.Header{}}
	for k, v := range msg.Headers() {
		if k != jetstream.MsgIDHeader {
			out.Header[k] = v
		}
	}
	out.Header.Set("Herald-Dead-Reason", info.Reason)
	out.Header.Set("Herald-Dead-Cause", info.Cause)
	out.Header.Set("Herald-Job-Id", info.JobID)
	out.Header.Set("Herald-Attempts", strconv.Itoa(info.Attempts))
	if _, err := q.js.PublishMsg(ctx, out); err != nil {
		return fmt.Errorf("dlq: publish: %w", err)
	}
	q.mu.Lock()
	q.infos = append(q.infos, info)
	q.mu.Unlock()
	return nil
}

// got returns the infos of the dead letters stored so far.
func (q *testDLQ) got() []DeadLetterInfo {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]DeadLetterInfo(nil), q.infos...)
}

func (q *testDLQ) callCount() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.calls
}

// withDLQ is a fixture option that adds a testDLQ failing its first failFirst
// calls, stored in *into.
func withDLQ(failFirst int, into **testDLQ) func(*testEnv, *Deps) {
	return func(e *testEnv, d *Deps) {
		*into = e.newDLQ(failFirst)
		d.DeadLetters = *into
	}
}

// deadLetters returns every message in the dead-letter stream.
func (e *testEnv) deadLetters() []*jetstream.RawStreamMsg {
	e.t.Helper()
	ctx := context.Background()
	s, err := e.js.Stream(ctx, herald.DeadLetterStream)
	if err != nil {
		e.t.Fatalf("dead-letter stream: %v", err)
	}
	st := s.CachedInfo().State
	var out []*jetstream.RawStreamMsg
	for seq := st.FirstSeq; st.Msgs > 0 && seq <= st.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			e.t.Fatalf("get dead letter %d: %v", seq, err)
		}
		out = append(out, m)
	}
	return out
}

// waitDead waits for n dead letters and returns their infos.
func (e *testEnv) waitDead(q *testDLQ, n int) []DeadLetterInfo {
	e.t.Helper()
	e.waitFor(fmt.Sprintf("%d dead letters", n), func() bool { return len(q.got()) >= n })
	return q.got()
}

// assertNoSecretsIn fails the test if any dead letter's data or headers
// carry a plaintext secret.
func assertNoSecretsIn(t *testing.T, msgs []*jetstream.RawStreamMsg) {
	t.Helper()
	for _, m := range msgs {
		assertNoSecrets(t, string(m.Data))
		for k, v := range m.Header {
			assertNoSecrets(t, k+": "+strings.Join(v, ","))
		}
	}
}

func TestDeadLetterBudgetExhausted(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MaxAttempts = 3
	var dlq *testDLQ
	x := newDiscordFixture(t, cfg, withDLQ(0, &dlq))
	x.fake.Script(func(fake.DiscordRequest, int) fake.Response {
		return fake.Response{Status: http.StatusInternalServerError, Body: `{"message": "500: Internal Server Error", "code": 0}`}
	})
	id := x.publishDiscord("always 500")

	infos := x.waitDead(dlq, 1)
	st := x.waitFinal(id)
	info := infos[0]
	if info.JobID != id || info.Cause != CauseBudgetExhausted || info.Attempts != 3 || info.StatusCode != 500 ||
		info.Channel != herald.ChannelDiscord || info.Subject != herald.JobIDSubject(herald.ChannelDiscord, id) || info.Sequence != 1 {
		t.Errorf("dead letter info = %+v", info)
	}
	if !strings.HasPrefix(info.Reason, "retry budget spent after 3 attempts: ") || !strings.Contains(info.Reason, "500 Internal Server Error") {
		t.Errorf("reason = %q", info.Reason)
	}
	if info.FirstAttempt.IsZero() || info.LastAttempt.Before(info.FirstAttempt) {
		t.Errorf("attempt times = %s, %s", info.FirstAttempt, info.LastAttempt)
	}
	if st.State != herald.StateDead || st.Attempts != 3 || st.LastError != info.Reason {
		t.Errorf("status = %+v, want dead after 3 attempts with the reason", st)
	}
	// Each failure was recorded, and read back once per redelivery: never on
	// the first delivery.
	var counts []int
	for _, r := range x.status.all(id) {
		counts = append(counts, r.Attempts)
	}
	if fmt.Sprint(counts) != "[1 2 3]" {
		t.Errorf("recorded attempts = %v, want [1 2 3]", counts)
	}
	if n := x.status.getsFor(id); n != 2 {
		t.Errorf("status reads = %d, want 2 (one per redelivery)", n)
	}
	x.waitFor("stream empty", func() bool { return x.streamMsgs() == 0 })
	time.Sleep(4 * cfg.MaxBackoff)
	if n := x.fake.Count(); n != 3 {
		t.Errorf("requests = %d, want exactly 3", n)
	}
	dead := x.deadLetters()
	if len(dead) != 1 || dead[0].Subject != herald.DeadLetterSubject(herald.ChannelDiscord) {
		t.Fatalf("dead-letter stream = %+v", dead)
	}
	if job, err := publisher.Decode(dead[0].Data); err != nil || job.ID != id {
		t.Errorf("dead letter data: job %q, %v", job.ID, err)
	}
	assertNoSecretsIn(t, dead)
	if got := testutil.ToFloat64(x.metrics.DeadLettered.WithLabelValues("discord", CauseBudgetExhausted)); got != 1 {
		t.Errorf("dead lettered = %v, want 1", got)
	}
	if got := testutil.ToFloat64(x.metrics.Deliveries.WithLabelValues("discord", "dead")); got != 1 {
		t.Errorf("dead deliveries = %v, want 1", got)
	}
	if got := testutil.ToFloat64(x.metrics.Retries.WithLabelValues("discord", "transient")); got != 2 {
		t.Errorf("transient retries = %v, want 2", got)
	}
	assertLogged(t, logsWith(t, x.logs, id, "dead"), id, "dead", "ERROR")
}

func TestWaitsDoNotSpendBudget(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dlq := e.newDLQ(0)
	const waits = 15
	var mu sync.Mutex
	failuresSeen := map[int]int{} // delivery number → Delivery.Failures, job "mixed"
	// Each job waits (or fails) according to its text and its delivery
	// number, which JetStream counts.
	mw := func(next Handler) Handler {
		return func(ctx context.Context, d *Delivery) error {
			n := d.Attempt
			switch d.Job.Message.Text {
			case "paced":
				if n <= waits {
					return &herald.RetryAfterError{After: 20 * time.Millisecond, Err: herald.ErrPaced}
				}
			case "breaker":
				if n <= waits {
					return &herald.RetryAfterError{After: 20 * time.Millisecond, Err: fmt.Errorf("breaker: %w", herald.ErrCircuitOpen)}
				}
			case "429":
				if n <= waits {
					return fmt.Errorf("discord: post webhook: %w", &herald.RetryAfterError{
						After: 20 * time.Millisecond,
						Err:   &herald.DestinationError{Channel: herald.ChannelDiscord, StatusCode: 429, Description: "You are being rate limited."},
					})
				}
			case "mixed":
				mu.Lock()
				failuresSeen[n] = d.Failures
				mu.Unlock()
				switch {
				case n == 3 || n == 7:
					return errTransient
				case n <= 10:
					return &herald.RetryAfterError{After: 20 * time.Millisecond, Err: herald.ErrCircuitOpen}
				}
			}
			return next(ctx, d)
		}
	}
	cfg := testConfig()
	cfg.MaxAttempts = 3
	rec := newRecorder(nil)
	deps := e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: rec})
	deps.DeadLetters = dlq
	deps.Middlewares = []Middleware{mw}
	e.startPool(cfg, deps)

	ids := map[string]string{}
	for _, kind := range []string{"paced", "breaker", "429", "mixed"} {
		ids[kind] = e.publish(discordJob(t, e.keys, kind))
	}
	for kind, id := range ids {
		st := e.waitFinal(id)
		want := 0
		if kind == "mixed" {
			want = 2
		}
		if st.State != herald.StateDelivered || st.Attempts != want {
			t.Errorf("%s: status = %+v, want delivered after %d failed attempts", kind, st, want)
		}
		if n := len(rec.callsFor(id)); n != 1 {
			t.Errorf("%s: sends = %d, want 1", kind, n)
		}
	}
	if infos := dlq.got(); len(infos) != 0 {
		t.Errorf("dead letters = %+v, want none", infos)
	}
	for reason, want := range map[string]float64{"paced": waits, "breaker_open": waits + 8, "retry_after": waits, "transient": 2} {
		if got := testutil.ToFloat64(e.metrics.Retries.WithLabelValues("discord", reason)); got != want {
			t.Errorf("%s retries = %v, want %v", reason, got, want)
		}
	}
	// Only the destination's own 429s count as rate limited.
	if got := testutil.ToFloat64(e.metrics.RateLimited.WithLabelValues("discord")); got != waits {
		t.Errorf("rate limited = %v, want %d", got, waits)
	}
	mu.Lock()
	defer mu.Unlock()
	for n := 1; n <= 11; n++ {
		want := 0
		switch {
		case n > 7:
			want = 2
		case n > 3:
			want = 1
		}
		if failuresSeen[n] != want {
			t.Errorf("mixed: delivery %d saw %d failures, want %d", n, failuresSeen[n], want)
		}
	}
}

// publishWith stores job (completed as Publish would) with extra headers.
func (e *testEnv) publishWith(job *herald.Job, h nats.Header) string {
	e.t.Helper()
	job.Version = herald.JobVersion
	if job.ID == "" {
		job.ID = herald.NewID()
	}
	data, err := publisher.Encode(job)
	if err != nil {
		e.t.Fatal(err)
	}
	m := &nats.Msg{Subject: herald.JobSubject(job.Channel), Data: data, Header: h}
	m.Header.Set(jetstream.MsgIDHeader, job.ID)
	if _, err := e.js.PublishMsg(testkit.Context(e.t, 5*time.Second), m); err != nil {
		e.t.Fatalf("publish: %v", err)
	}
	return job.ID
}

func TestDeadLetterMaxAge(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dlq := e.newDLQ(0)
	rec := newRecorder(func(n int, _ string) error {
		if n <= 2 {
			return fmt.Errorf("discord: post webhook: %w", errTransient)
		}
		return nil
	})
	deps := e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: rec})
	deps.DeadLetters = dlq
	e.startPool(testConfig(), deps)

	old := discordJob(t, e.keys, "accepted yesterday")
	old.CreatedAt = time.Now().Add(-25 * time.Hour)
	oldID := e.publishWith(old, nats.Header{})

	// Just as old, but replayed now: its budget starts again.
	replayed := discordJob(t, e.keys, "replayed")
	replayed.CreatedAt = time.Now().Add(-25 * time.Hour)
	replayedID := e.publishWith(replayed, nats.Header{BudgetStartHeader: []string{time.Now().UTC().Format(time.RFC3339Nano)}})

	infos := e.waitDead(dlq, 1)
	if st := e.waitFinal(oldID); st.State != herald.StateDead || st.Attempts != 1 {
		t.Errorf("old job: status = %+v, want dead after its first failure", st)
	}
	if info := infos[0]; info.JobID != oldID || info.Cause != CauseMaxAge || info.Attempts != 1 ||
		!strings.HasPrefix(info.Reason, "older than 24h0m0s: ") || !info.FirstAttempt.Equal(old.CreatedAt.UTC()) {
		t.Errorf("dead letter info = %+v", info)
	}
	if n := len(rec.callsFor(oldID)); n != 1 {
		t.Errorf("old job: sends = %d, want 1", n)
	}
	if st := e.waitFinal(replayedID); st.State != herald.StateDelivered || st.Attempts != 2 {
		t.Errorf("replayed job: status = %+v, want delivered after 2 failed attempts", st)
	}
	if got := testutil.ToFloat64(e.metrics.DeadLettered.WithLabelValues("discord", CauseMaxAge)); got != 1 {
		t.Errorf("max_age dead letters = %v, want 1", got)
	}
	if n := len(dlq.got()); n != 1 {
		t.Errorf("dead letters = %d, want 1", n)
	}
}

func TestDeadLetterUnknownWebhook(t *testing.T) {
	t.Parallel()
	var dlq *testDLQ
	x := newDiscordFixture(t, testConfig(), withDLQ(0, &dlq))
	x.fake.Script(func(fake.DiscordRequest, int) fake.Response { return fake.Respond404UnknownWebhook() })
	id := x.publishDiscord("deleted webhook")

	info := x.waitDead(dlq, 1)[0]
	if info.JobID != id || info.Cause != CausePermanent || info.StatusCode != 404 || info.Attempts != 1 ||
		!strings.Contains(info.Reason, "Unknown Webhook") || !strings.Contains(info.Reason, "10015") {
		t.Errorf("dead letter info = %+v", info)
	}
	st := x.waitFinal(id)
	if st.State != herald.StateDead || st.Attempts != 1 || st.LastError != info.Reason {
		t.Errorf("status = %+v, want dead with the reason", st)
	}
	x.waitFor("stream empty", func() bool { return x.streamMsgs() == 0 })
	time.Sleep(4 * testConfig().MaxBackoff)
	if n := x.fake.Count(); n != 1 {
		t.Errorf("requests = %d, want exactly 1", n)
	}
	if info := x.consumerInfo(x.pool.cfg.Durable); info.NumAckPending != 0 || info.NumRedelivered != 0 {
		t.Errorf("consumer: ack pending %d, redelivered %d; want 0", info.NumAckPending, info.NumRedelivered)
	}
	dead := x.deadLetters()
	if len(dead) != 1 {
		t.Fatalf("dead letters = %d, want 1", len(dead))
	}
	assertNoSecretsIn(t, dead)
	if strings.Contains(info.Reason, x.fake.URL()) {
		t.Errorf("reason leaks the webhook: %q", info.Reason)
	}
	assertLogged(t, logsWith(t, x.logs, id, "dead"), id, "dead", "ERROR")
}

func TestDeadLetterPublishFailureKeepsJob(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dlq := e.newDLQ(2)
	rec := newRecorder(func(int, string) error { return fmt.Errorf("discord: post webhook: %w", errUnknownWebhook) })
	deps := e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: rec})
	deps.DeadLetters = dlq
	e.startPool(testConfig(), deps)

	id := e.publish(discordJob(t, e.keys, "dead, eventually"))
	info := e.waitDead(dlq, 1)[0]
	if info.JobID != id || info.Cause != CausePermanent {
		t.Errorf("dead letter info = %+v", info)
	}
	if st := e.waitFinal(id); st.State != herald.StateDead {
		t.Errorf("status = %+v, want dead", st)
	}
	// Not terminated while the hand-off failed: redelivered and tried again.
	if n := dlq.callCount(); n != 3 {
		t.Errorf("dead-letter calls = %d, want 3", n)
	}
	if n := len(rec.callsFor(id)); n != 3 {
		t.Errorf("sends = %d, want 3 (one per delivery)", n)
	}
	for i, r := range e.status.all(id)[:2] {
		if r.State != herald.StateDelivering || !strings.Contains(r.LastError, "dead letter not stored") {
			t.Errorf("status record %d = %+v, want delivering: dead letter not stored", i, r)
		}
	}
	e.waitFor("stream empty", func() bool { return e.streamMsgs() == 0 })
	if dead := e.deadLetters(); len(dead) != 1 {
		t.Errorf("dead letters = %d, want 1", len(dead))
	}
	if got := testutil.ToFloat64(e.metrics.DeadLetterFail); got != 2 {
		t.Errorf("dead-letter failures = %v, want 2", got)
	}
	if got := testutil.ToFloat64(e.metrics.DeadLettered.WithLabelValues("discord", CausePermanent)); got != 1 {
		t.Errorf("dead lettered = %v, want 1", got)
	}
	if logs := e.logs.String(); strings.Count(logs, `"dead_letter_error":"dlq: publish: nats: timeout"`) != 2 {
		t.Errorf("expected two logged hand-off failures:\n%s", logs)
	}
}

func TestDeadLetterUndecodableAndCredentials(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dlq := e.newDLQ(0)
	rec := newRecorder(nil)
	cfg := testConfig()
	cfg.Workers = 1 // in order
	deps := e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: rec})
	deps.DeadLetters = dlq
	e.startPool(cfg, deps)

	other, err := crypto.NewKeyring(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	garbage := []byte(`{"v":1,"channel":"discord", oops`)
	e.publishRaw(herald.JobSubject(herald.ChannelDiscord), garbage, "bad-json-2")
	e.publishRaw(herald.JobSubjectPrefix+"pigeon", []byte(`{}`), "")
	wrongKey := e.publish(discordJob(t, other, "sealed with another key"))
	// A Discord job published on Telegram's subject: delivered nowhere.
	astray := discordJob(t, e.keys, "on the wrong subject")
	astray.ID, astray.Version = herald.NewID(), herald.JobVersion
	data, err := herald.EncodeJob(astray)
	if err != nil {
		t.Fatal(err)
	}
	e.publishRaw(herald.JobSubject(herald.ChannelTelegram), data, astray.ID)

	infos := e.waitDead(dlq, 4)
	want := []struct {
		id, cause string
		channel   herald.Channel
	}{
		{"bad-json-2", CauseUndecodable, herald.ChannelDiscord},
		{"seq-2", CauseUndecodable, "unknown"},
		{wrongKey, CauseCredentials, herald.ChannelDiscord},
		{astray.ID, CauseUndecodable, herald.ChannelDiscord},
	}
	for i, w := range want {
		if got := infos[i]; got.JobID != w.id || got.Cause != w.cause || got.Channel != w.channel || got.Attempts != 1 {
			t.Errorf("dead letter %d = %+v, want %s %s %s", i, got, w.id, w.cause, w.channel)
		}
		if st := e.waitFinal(w.id); st.State != herald.StateDead || st.LastError == "" {
			t.Errorf("status of %s = %+v, want dead", w.id, st)
		}
	}
	if !strings.HasPrefix(infos[0].Reason, "invalid job: malformed JSON") || !strings.Contains(infos[2].Reason, "wrong key") {
		t.Errorf("reasons = %q, %q", infos[0].Reason, infos[2].Reason)
	}
	if r := infos[3].Reason; r != "invalid job: channel discord published on herald.jobs.telegram, a subject of channel telegram" {
		t.Errorf("reason for the job on the wrong subject = %q", r)
	}
	dead := e.deadLetters()
	if len(dead) != 4 {
		t.Fatalf("dead letters = %d, want 4", len(dead))
	}
	// Copied as-is, to the channel's dead-letter subject.
	if !bytes.Equal(dead[0].Data, garbage) || dead[0].Subject != herald.DeadLetterSubject(herald.ChannelDiscord) {
		t.Errorf("dead letter 0 = %s on %s", dead[0].Data, dead[0].Subject)
	}
	if string(dead[1].Data) != `{}` || dead[1].Subject != herald.DeadLetterSubjectPrefix+"unknown" {
		t.Errorf("dead letter 1 = %s on %s", dead[1].Data, dead[1].Subject)
	}
	e.waitFor("stream empty", func() bool { return e.streamMsgs() == 0 })
	if n := rec.count(); n != 0 {
		t.Errorf("sends = %d, want 0", n)
	}
	for cause, want := range map[string]float64{CauseUndecodable: 2, CauseCredentials: 1} {
		if got := testutil.ToFloat64(e.metrics.DeadLettered.WithLabelValues("discord", cause)); got != want {
			t.Errorf("discord %s dead letters = %v, want %v", cause, got, want)
		}
	}
	if got := testutil.ToFloat64(e.metrics.DeadLettered.WithLabelValues("unknown", CauseUndecodable)); got != 1 {
		t.Errorf("unknown undecodable dead letters = %v, want 1", got)
	}
	if strings.Contains(e.logs.String(), "oops") {
		t.Errorf("log contains the message body")
	}
}

func TestDeadLettersCarryNoSecrets(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dlq := e.newDLQ(0)
	// A sender that puts the target in its errors and panics (channels must
	// not; the consumer must still not leak it).
	sender := senderFunc(func(_ context.Context, n herald.Notification) error {
		switch n.Message.Text {
		case "transient":
			return fmt.Errorf("transient for %v", n.Target)
		case "permanent":
			return herald.Permanent(fmt.Errorf("permanent for %#v", n.Target))
		case "panic":
			panic(errors.New("panic with " + n.Target.WebhookURL + n.Target.BotToken + n.Target.ChatID))
		}
		return nil
	})
	cfg := testConfig()
	cfg.MaxAttempts = 2
	deps := e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: sender, herald.ChannelTelegram: sender})
	deps.DeadLetters = dlq
	e.startPool(cfg, deps)

	other, err := crypto.NewKeyring(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	jobs := map[string]*herald.Job{}
	for _, text := range []string{"transient", "permanent", "panic"} {
		for _, j := range []*herald.Job{discordJob(t, e.keys, text), telegramJob(t, e.keys, text)} {
			jobs[e.publish(j)] = j
		}
	}
	for _, j := range []*herald.Job{discordJob(t, other, "wrong key"), telegramJob(t, other, "wrong key")} {
		jobs[e.publish(j)] = j
	}
	infos := e.waitDead(dlq, len(jobs))
	for _, info := range infos {
		assertNoSecrets(t, info.Reason)
		if info.Reason == "" {
			t.Errorf("dead letter %s has no reason", info.JobID)
		}
	}
	for id := range jobs {
		for _, st := range e.status.all(id) {
			assertNoSecrets(t, st.LastError)
		}
	}
	dead := e.deadLetters()
	if len(dead) != len(jobs) {
		t.Fatalf("dead letters = %d, want %d", len(dead), len(jobs))
	}
	assertNoSecretsIn(t, dead)
	// The credentials are kept, still sealed, so a replay can deliver them.
	for _, m := range dead {
		var job herald.Job
		if err := json.Unmarshal(m.Data, &job); err != nil {
			t.Fatal(err)
		}
		if job.Credentials != jobs[job.ID].Credentials {
			t.Errorf("dead letter %s: credentials changed", job.ID)
		}
	}
}

func TestFailuresFromStatus(t *testing.T) {
	e := newTestEnv(t)
	replay := time.Now().UTC()
	tests := []struct {
		name       string
		attempt    int
		rec        *herald.Status
		getFail    error
		noStore    bool
		fromHeader bool
		want       int
		wantGets   int
	}{
		{"first delivery reads nothing", 1, &herald.Status{Attempts: 7}, nil, false, false, 0, 0},
		{"no record", 3, nil, nil, false, false, 0, 1},
		{"record", 5, &herald.Status{Attempts: 2, UpdatedAt: replay.Add(time.Second)}, nil, false, false, 2, 1},
		{"read error counts every delivery", 5, nil, errors.New("kv: timeout"), false, false, 4, 1},
		{"no store counts every delivery", 4, nil, nil, true, false, 3, 0},
		{"record from before a replay", 2, &herald.Status{State: herald.StateDead, Attempts: 10, UpdatedAt: replay.Add(-time.Hour)}, nil, false, true, 0, 1},
		{"record after a replay", 2, &herald.Status{Attempts: 1, UpdatedAt: replay.Add(time.Second)}, nil, false, true, 1, 1},
		{"old record without a replay", 2, &herald.Status{Attempts: 3, UpdatedAt: replay.Add(-time.Hour)}, nil, false, false, 3, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newRecordingStatus()
			deps := e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: newRecorder(nil)})
			deps.Status = st
			if tt.noStore {
				deps.Status = nil
			}
			p, err := New(testConfig(), deps)
			if err != nil {
				t.Fatal(err)
			}
			if tt.rec != nil {
				r := *tt.rec
				r.ID = "job-1"
				if r.State == "" {
					r.State = herald.StateDelivering
				}
				st.recs["job-1"] = []herald.Status{r}
			}
			st.setGetFail(tt.getFail)
			d := &Delivery{Job: herald.Job{ID: "job-1"}, Attempt: tt.attempt, BudgetStart: replay}
			if got := p.failures(d, tt.fromHeader); got != tt.want {
				t.Errorf("failures = %d, want %d", got, tt.want)
			}
			if n := st.getsFor("job-1"); n != tt.wantGets {
				t.Errorf("reads = %d, want %d", n, tt.wantGets)
			}
		})
	}
	if !strings.Contains(e.logs.String(), `"msg":"status read"`) {
		t.Errorf("read error not logged:\n%s", e.logs.String())
	}
}

func TestDeadLetterNilKeepsTermAndFailed(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	rec := newRecorder(func(int, string) error { return errTransient })
	cfg := testConfig()
	cfg.MaxAttempts = 2
	p := e.startPool(cfg, e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: rec}))

	id := e.publish(discordJob(t, e.keys, "no dead letters here"))
	st := e.waitFinal(id)
	if st.State != herald.StateFailed || st.Attempts != 2 || !strings.HasPrefix(st.LastError, "retry budget spent after 2 attempts: ") {
		t.Errorf("status = %+v, want failed: retry budget spent", st)
	}
	e.waitFor("stream empty", func() bool { return e.streamMsgs() == 0 })
	if info := e.consumerInfo(p.cfg.Durable); info.NumAckPending != 0 {
		t.Errorf("ack pending = %d, want 0", info.NumAckPending)
	}
	if got := testutil.ToFloat64(e.metrics.Deliveries.WithLabelValues("discord", "failed")); got != 1 {
		t.Errorf("failed deliveries = %v, want 1", got)
	}
	assertLogged(t, logsWith(t, e.logs, id, "failed"), id, "failed", "ERROR")
}

// TestDeadLetterInvalidDestination: a webhook URL Herald refuses (here a
// Discord host with a port, on a channel that allows only the fake's host;
// channels' ParseWebhook tests hold the port rule itself) is dead-lettered
// at once with cause invalid, and nothing is sent.
func TestDeadLetterInvalidDestination(t *testing.T) {
	t.Parallel()
	var dlq *testDLQ
	x := newDiscordFixture(t, testConfig(), withDLQ(0, &dlq))
	id := x.publish(testkit.DiscordJob(t, x.keys, "https://discord.com:18081/api/webhooks/"+webhookID+"/"+webhookToken, "to a port"))
	info := x.waitDead(dlq, 1)[0]
	if info.JobID != id || info.Cause != CauseInvalid || info.Attempts != 1 || !strings.Contains(info.Reason, "invalid destination") {
		t.Errorf("dead letter info = %+v, want cause %s", info, CauseInvalid)
	}
	if n := x.fake.Count(); n != 0 {
		t.Errorf("requests = %d, want none", n)
	}
	if got := testutil.ToFloat64(x.metrics.DeadLettered.WithLabelValues("discord", CauseInvalid)); got != 1 {
		t.Errorf("dead-lettered{reason=invalid} = %v, want 1", got)
	}
	assertNoSecrets(t, info.Reason)
}

// TestFailedVerificationLeavesNoDeadLetter: a verification message whose
// destination refuses it (a stranger's bad webhook) is ended without a dead
// letter and logged at Info, not Error: the public cannot fill either.
func TestFailedVerificationLeavesNoDeadLetter(t *testing.T) {
	t.Parallel()
	var dlq *testDLQ
	x := newDiscordFixture(t, testConfig(), withDLQ(0, &dlq))
	x.fake.Script(func(fake.DiscordRequest, int) fake.Response { return fake.Respond404UnknownWebhook() })
	job := testkit.DiscordJob(t, x.keys, x.fake.WebhookURL(webhookID, webhookToken), "Herald verification code: 123456")
	job.Source = herald.SourceVerification
	id := x.publish(job)
	if st := x.waitFinal(id); st.State != herald.StateFailed {
		t.Errorf("status = %+v, want failed", st)
	}
	x.waitFor("stream empty", func() bool { return x.streamMsgs() == 0 })
	if n := len(x.deadLetters()); n != 0 {
		t.Errorf("%d dead letters for a failed verification, want none", n)
	}
	for _, line := range strings.Split(x.logs.String(), "\n") {
		if strings.Contains(line, id) && strings.Contains(line, `"level":"ERROR"`) {
			t.Errorf("a failed verification was logged as an error: %s", line)
		}
	}
}
