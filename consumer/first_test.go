package consumer

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/fake"
	"github.com/heraldrelay/herald/internal/metrics"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/publisher"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// firstJob is a Discord job to the fixture's fake, complete as the ingest
// hands it to SendFirst.
func (x *discordFixture) firstJob(text string) *herald.Job {
	x.t.Helper()
	job := testkit.DiscordJob(x.t, x.keys, x.fake.WebhookURL(webhookID, webhookToken), text)
	job.ID = herald.NewID()
	job.Version = herald.JobVersion
	return job
}

// sendFirst tries job as the ingest does.
func (x *discordFixture) sendFirst(job *herald.Job) (bool, nats.Header) {
	x.t.Helper()
	return x.pool.SendFirst(testkit.Context(x.t, 10*time.Second), job)
}

// storeWith publishes job with carry's headers, as the ingest does after a
// first send that did not deliver.
func (x *discordFixture) storeWith(job *herald.Job, carry nats.Header) {
	x.t.Helper()
	if _, err := x.pub.Publish(testkit.Context(x.t, 5*time.Second), job, publisher.WithHeader(carry)); err != nil {
		x.t.Fatalf("publish: %v", err)
	}
}

func sentFirstCount(m *metrics.Metrics, result string) float64 {
	return testutil.ToFloat64(m.SentFirst.WithLabelValues(string(herald.ChannelDiscord), result))
}

func TestSendFirstDeliversWithoutStoring(t *testing.T) {
	t.Parallel()
	x := newDiscordFixture(t, testConfig())
	job := x.firstJob("sent before stored")
	delivered, carry := x.sendFirst(job)
	if !delivered || carry != nil {
		t.Fatalf("SendFirst = %v, %v; want delivered, nothing to carry", delivered, carry)
	}
	if reqs := x.fake.Requests(); len(reqs) != 1 || !strings.Contains(string(reqs[0].Raw), "sent before stored") {
		t.Fatalf("requests = %d, want the job once", len(reqs))
	}
	if job.CreatedAt.IsZero() {
		t.Error("CreatedAt not set: the stored copy of a failed first send would restart its age budget")
	}
	info, err := x.js.Stream(testkit.Context(t, 5*time.Second), herald.JobsStream)
	if err != nil {
		t.Fatal(err)
	}
	if st := info.CachedInfo().State; st.LastSeq != 0 {
		t.Errorf("jobs stream last sequence = %d: something was stored", st.LastSeq)
	}
	if got := sentFirstCount(x.metrics, metrics.SentFirstDelivered); got != 1 {
		t.Errorf("sent first delivered = %v, want 1", got)
	}
	if got := testutil.ToFloat64(x.metrics.Deliveries.WithLabelValues("discord", outcomeDelivered)); got != 1 {
		t.Errorf("deliveries delivered = %v, want 1", got)
	}
	if _, ok := x.status.last(job.ID); ok {
		t.Error("a status record was written for a job whose request took its outcome")
	}
	assertLogged(t, logsWith(t, x.logs, job.ID, "delivered"), job.ID, "delivered", "INFO")
}

// A transient failure before storing is the job's first failed attempt:
// with MaxAttempts 2 the stored copy is dead-lettered after one more, and
// not sooner than the backoff after the first.
func TestSendFirstFailureCountsAndWaitsItsBackoff(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MaxAttempts = 2
	cfg.MinBackoff, cfg.MaxBackoff = 400*time.Millisecond, 400*time.Millisecond
	var dlq *testDLQ
	x := newDiscordFixture(t, cfg, withDLQ(0, &dlq))
	x.fake.Script(func(fake.DiscordRequest, int) fake.Response {
		return fake.Response{Status: http.StatusInternalServerError, Body: `{"message": "500: Internal Server Error", "code": 0}`}
	})
	job := x.firstJob("flaky")
	delivered, carry := x.sendFirst(job)
	if delivered || carry.Get(SentFirstHeader) == "" {
		t.Fatalf("SendFirst = %v, %v; want not delivered, with %s", delivered, carry, SentFirstHeader)
	}
	assertNoSecrets(t, carry.Get(SentFirstHeader))
	x.storeWith(job, carry)

	info := x.waitDead(dlq, 1)[0]
	if info.Cause != CauseBudgetExhausted || info.Attempts != 2 {
		t.Errorf("dead letter = %+v, want budget_exhausted after 2 attempts (the first one before storing)", info)
	}
	reqs := x.fake.Requests()
	if len(reqs) != 2 {
		t.Fatalf("requests = %d, want 2", len(reqs))
	}
	if gap, least := reqs[1].At.Sub(reqs[0].At), time.Duration(float64(cfg.MinBackoff)*(1-jitterFactor)); gap < least {
		t.Errorf("second attempt %v after the first, want at least the backoff %v", gap, least)
	}
	if got := sentFirstCount(x.metrics, metrics.SentFirstStored); got != 1 {
		t.Errorf("sent first stored = %v, want 1", got)
	}
	// The wait after the first failure is counted once, as a transient retry.
	if got := testutil.ToFloat64(x.metrics.Retries.WithLabelValues("discord", reasonTransient)); got != 1 {
		t.Errorf("transient retries = %v, want 1", got)
	}
}

// A refusal for good before storing is dead-lettered from the stored copy
// without a second request to the destination.
func TestSendFirstRefusalIsNotSentAgain(t *testing.T) {
	t.Parallel()
	var dlq *testDLQ
	x := newDiscordFixture(t, testConfig(), withDLQ(0, &dlq))
	x.fake.Script(func(fake.DiscordRequest, int) fake.Response { return fake.Respond404UnknownWebhook() })
	job := x.firstJob("deleted webhook")
	delivered, carry := x.sendFirst(job)
	if delivered || carry == nil {
		t.Fatalf("SendFirst = %v, %v; want not delivered, with the refusal", delivered, carry)
	}
	x.storeWith(job, carry)

	info := x.waitDead(dlq, 1)[0]
	if info.JobID != job.ID || info.Cause != CausePermanent || info.StatusCode != 404 || info.Attempts != 1 ||
		!strings.Contains(info.Reason, "Unknown Webhook") {
		t.Errorf("dead letter = %+v, want permanent, 404, 1 attempt, the destination's reason", info)
	}
	if st := x.waitFinal(job.ID); st.State != herald.StateDead || st.LastError != info.Reason {
		t.Errorf("status = %+v, want dead with the reason", st)
	}
	time.Sleep(4 * testConfig().MaxBackoff)
	if n := x.fake.Count(); n != 1 {
		t.Errorf("requests = %d, want 1: a refused job is not sent again", n)
	}
	assertNoSecretsIn(t, x.deadLetters())
}

// A 429 before storing: the stored copy waits out retry_after, and the 429
// is counted once.
func TestSendFirstRetryAfterIsWaitedOut(t *testing.T) {
	t.Parallel()
	x := newDiscordFixture(t, testConfig())
	x.fake.Script(func(_ fake.DiscordRequest, n int) fake.Response {
		if n == 1 {
			return fake.Respond429(0.6)
		}
		return fake.Response{}
	})
	job := x.firstJob("limited")
	delivered, carry := x.sendFirst(job)
	if delivered || carry == nil {
		t.Fatalf("SendFirst = %v, %v; want not delivered, with the wait", delivered, carry)
	}
	x.storeWith(job, carry)
	if st := x.waitFinal(job.ID); st.State != herald.StateDelivered || st.Attempts != 0 {
		t.Errorf("status = %+v, want delivered with no failed attempt (a wait uses none)", st)
	}
	reqs := x.fake.Requests()
	if len(reqs) != 2 {
		t.Fatalf("requests = %d, want 2", len(reqs))
	}
	if gap := reqs[1].At.Sub(reqs[0].At); gap < 550*time.Millisecond {
		t.Errorf("sent again %v after the 429, want retry_after (0.6 s)", gap)
	}
	if got := testutil.ToFloat64(x.metrics.RateLimited.WithLabelValues("discord")); got != 1 {
		t.Errorf("rate limited = %v, want 1", got)
	}
}

// Herald's own holds send nothing and carry nothing: the stored copy asks
// the same middleware again.
func TestSendFirstPacedCarriesNothing(t *testing.T) {
	t.Parallel()
	paced := func(next Handler) Handler {
		return func(ctx context.Context, d *Delivery) error {
			return &herald.RetryAfterError{After: time.Second, Err: herald.ErrPaced}
		}
	}
	x := newDiscordFixture(t, testConfig(), func(_ *testEnv, d *Deps) { d.Middlewares = append(d.Middlewares, paced) })
	delivered, carry := x.sendFirst(x.firstJob("paced"))
	if delivered || carry != nil {
		t.Fatalf("SendFirst = %v, %v; want not delivered, nothing to carry", delivered, carry)
	}
	if n := x.fake.Count(); n != 0 {
		t.Errorf("requests = %d, want 0", n)
	}
}

// First sends have places of their own (Config.FirstSends): a busy worker
// does not stop one, a first send beyond the places is not tried (the job
// is stored instead), and a Pool that has stopped tries none.
func TestSendFirstHasPlacesOfItsOwn(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Workers = 1
	cfg.FirstSends = 1
	release := make(chan struct{})
	started := make(chan string, 2)
	blocking := senderFunc(func(ctx context.Context, n herald.Notification) error {
		if strings.HasPrefix(n.Message.Text, "holds") {
			started <- n.Message.Text
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return nil
	})
	e := newTestEnv(t)
	p, err := New(cfg, e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: blocking}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	stop := sync.OnceFunc(func() { close(release); cancel(); <-done })
	t.Cleanup(stop)

	// The one worker is busy: a first send still goes.
	e.publish(discordJob(t, e.keys, "holds the worker"))
	<-started
	held := discordJob(t, e.keys, "holds the first place")
	held.ID = herald.NewID()
	heldDone := make(chan bool, 1)
	go func() {
		delivered, _ := p.SendFirst(context.Background(), held)
		heldDone <- delivered
	}()
	if got := <-started; got != "holds the first place" {
		t.Fatalf("started %q, want the first send", got)
	}
	// Its one place is taken: the next is not tried.
	busy := discordJob(t, e.keys, "while the place is taken")
	busy.ID = herald.NewID()
	if delivered, carry := p.SendFirst(context.Background(), busy); delivered || carry != nil {
		t.Errorf("place taken: SendFirst = %v, %v; want not tried", delivered, carry)
	}
	stop()
	if !<-heldDone {
		t.Error("the first send holding the place was not delivered")
	}
	job := discordJob(t, e.keys, "after Run")
	job.ID = herald.NewID()
	if delivered, carry := p.SendFirst(context.Background(), job); delivered || carry != nil {
		t.Errorf("after Run: SendFirst = %v, %v; want not tried", delivered, carry)
	}
	if got := sentFirstCount(e.metrics, metrics.SentFirstSkipped); got != 2 {
		t.Errorf("sent first skipped = %v, want 2", got)
	}
	if got := sentFirstCount(e.metrics, metrics.SentFirstDelivered); got != 1 {
		t.Errorf("sent first delivered = %v, want 1", got)
	}
}

// A malformed header is ignored: the job is sent as any other.
func TestSentFirstHeaderMalformedIsIgnored(t *testing.T) {
	t.Parallel()
	x := newDiscordFixture(t, testConfig())
	job := x.firstJob("odd header")
	x.storeWith(job, nats.Header{SentFirstHeader: []string{`{"cause":`}})
	if st := x.waitFinal(job.ID); st.State != herald.StateDelivered {
		t.Errorf("status = %+v, want delivered", st)
	}
	// An unknown cause is a permanent one: it never becomes a metric label.
	sf, ok := parseSentFirst(nats.Header{SentFirstHeader: []string{`{"cause":"made-up","reason":"x"}`}})
	if !ok || sf.Cause != CausePermanent || sf.Reason != reasonTransient {
		t.Errorf("parse = %+v, %v; want cause permanent, reason transient", sf, ok)
	}
}
