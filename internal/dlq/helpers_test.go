package dlq

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/consumer"
	"github.com/heraldrelay/herald/crypto"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/internal/testkit/relay"
	"github.com/heraldrelay/herald/publisher"
)

const (
	// plainWebhook is the plaintext credential that must never show up.
	plainWebhook = "https://discord.com/api/webhooks/123456789012345678/PLAINTEXT-webhook-token-xyz"
	plainToken   = "123456:PLAINTEXT-bot-token-abc"
	plainChat    = "-1009876543210"
)

// fixture is the kit's relay (a real JetStream server with the jobs stream,
// the kit's keys and a publisher) with the dead-letter stream, a Writer, a
// Store, and a pull consumer on the jobs stream standing in for the workers.
type fixture struct {
	js     jetstream.JetStream
	nc     *nats.Conn
	w      *Writer
	store  *Store
	status *fakeStatus
	jobs   jetstream.Consumer
	keys   *crypto.Keyring
	pub    *publisher.Publisher
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	e := relay.New(t)
	js := e.JS
	ctx := testkit.Context(t, 30*time.Second)
	if _, err := EnsureStream(ctx, js, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	jobs, err := js.CreateOrUpdateConsumer(ctx, herald.JobsStream, jetstream.ConsumerConfig{
		Durable: "test-workers", AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	st := &fakeStatus{}
	return &fixture{
		js: js, nc: e.NC, w: NewWriter(js), store: NewStore(js, WithStatus(st)), status: st,
		jobs: jobs, keys: e.Keys, pub: e.Pub,
	}
}

func (f *fixture) seal(t *testing.T, s string) string {
	t.Helper()
	return testkit.Seal(t, f.keys, s)
}

// job returns a valid job for channel c with sealed credentials.
func (f *fixture) job(t *testing.T, c herald.Channel, id string) *herald.Job {
	t.Helper()
	j := &herald.Job{Version: herald.JobVersion, ID: id, Channel: c, CreatedAt: time.Now().UTC().Truncate(time.Millisecond),
		Message: herald.Message{Title: "Build failed", Text: "job " + id}}
	switch c {
	case herald.ChannelDiscord:
		j.Credentials.Webhook = f.seal(t, plainWebhook)
	case herald.ChannelTelegram:
		j.Credentials.BotToken = f.seal(t, plainToken)
		j.Credentials.ChatID = f.seal(t, plainChat)
	}
	return j
}

// enqueue publishes job to the jobs stream and receives it as a worker would.
func (f *fixture) enqueue(t *testing.T, job *herald.Job) jetstream.Msg {
	t.Helper()
	if _, err := f.pub.Publish(testkit.Context(t, 30*time.Second), job); err != nil {
		t.Fatal(err)
	}
	return f.next(t)
}

// next receives the next job from the jobs stream.
func (f *fixture) next(t *testing.T) jetstream.Msg {
	t.Helper()
	m, err := f.jobs.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		t.Fatalf("no job on the jobs stream: %v", err)
	}
	return m
}

// noJob checks that the jobs stream holds nothing for the workers.
func (f *fixture) noJob(t *testing.T) {
	t.Helper()
	batch, err := f.jobs.FetchNoWait(1)
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		t.Fatalf("unexpected job on %s: %q", m.Subject(), m.Data())
	}
}

// kill dead-letters job with info (JobID, Channel, Subject and Sequence
// filled in from the message when empty) and acks the original. It returns
// the letter's info as written.
func (f *fixture) kill(t *testing.T, job *herald.Job, info consumer.DeadLetterInfo) consumer.DeadLetterInfo {
	t.Helper()
	return f.killMsg(t, f.enqueue(t, job), job, info)
}

func (f *fixture) killMsg(t *testing.T, m jetstream.Msg, job *herald.Job, info consumer.DeadLetterInfo) consumer.DeadLetterInfo {
	t.Helper()
	meta, err := m.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	if info.JobID == "" && job != nil {
		info.JobID = job.ID
	}
	if info.Channel == "" && job != nil {
		info.Channel = job.Channel
	}
	if info.Cause == "" {
		info.Cause = consumer.CausePermanent
	}
	if info.Reason == "" {
		info.Reason = "Discord API error: 404 Not Found - Unknown Webhook (code 10015)"
	}
	if info.Attempts == 0 {
		info.Attempts = 1
	}
	info.Subject, info.Sequence = m.Subject(), meta.Sequence.Stream
	if info.LastAttempt.IsZero() {
		info.LastAttempt = time.Now()
		info.FirstAttempt = info.LastAttempt.Add(-time.Minute)
	}
	if err := f.w.DeadLetter(testkit.Context(t, 30*time.Second), m, info); err != nil {
		t.Fatalf("DeadLetter: %v", err)
	}
	if err := m.Ack(); err != nil {
		t.Fatal(err)
	}
	return info
}

// letters returns how many letters the dead-letter stream holds.
func (f *fixture) letters(t *testing.T) uint64 {
	t.Helper()
	return testkit.StreamMsgs(t, f.js, herald.DeadLetterStream)
}

func ids(ls []Letter) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.JobID
	}
	return out
}

// fakeStatus records status writes.
type fakeStatus struct {
	mu   sync.Mutex
	recs []herald.Status
	err  error
}

func (s *fakeStatus) Put(_ context.Context, rec herald.Status) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.recs = append(s.recs, rec)
	return nil
}

func (s *fakeStatus) all() []herald.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]herald.Status(nil), s.recs...)
}

// noSecrets fails when out holds a plaintext credential or a sealed value.
func noSecrets(t *testing.T, what, out string, sealed ...string) {
	t.Helper()
	testkit.AssertNoSecrets(t, what, out, append([]string{plainWebhook, "PLAINTEXT", plainToken, plainChat}, sealed...)...)
}

func jsonEncode(job *herald.Job) ([]byte, error) { return herald.EncodeJob(job) }
