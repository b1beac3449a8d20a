package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/crypto"
	"github.com/heraldrelay/herald/internal/queue"
	"github.com/heraldrelay/herald/internal/status"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestPoolDelivered(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	rec := newRecorder(nil)
	e.startPool(testConfig(), e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: rec}))

	id := e.publish(discordJob(t, e.keys, "hello"))
	st := e.waitFinal(id)
	if st.State != herald.StateDelivered || st.Attempts != 0 || st.LastError != "" {
		t.Errorf("status = %+v, want delivered with no failed attempt", st)
	}
	if st.Channel != herald.ChannelDiscord || st.CreatedAt.IsZero() || st.UpdatedAt.IsZero() {
		t.Errorf("status = %+v, want channel and times set", st)
	}
	calls := rec.callsFor(id)
	if len(calls) != 1 {
		t.Fatalf("sends = %d, want 1", len(calls))
	}
	n := calls[0].n
	if n.Channel != herald.ChannelDiscord || n.Message.Text != "hello" || n.JobID != id {
		t.Errorf("notification = %+v", n)
	}
	if want := testWebhookHost + webhookID + "/" + webhookToken; n.Target.WebhookURL != want {
		t.Errorf("webhook not opened")
	}
	// Acked: a work queue deletes the message.
	e.waitFor("stream empty", func() bool { return e.streamMsgs() == 0 })
	e.waitFor("metrics", func() bool {
		return testutil.ToFloat64(e.metrics.Deliveries.WithLabelValues("discord", "delivered")) == 1
	})
	if got := testutil.CollectAndCount(e.metrics.DeliveryLatency); got != 1 {
		t.Errorf("latency series = %d, want 1", got)
	}
	if got := testutil.ToFloat64(e.metrics.InFlight); got != 0 {
		t.Errorf("in flight = %v, want 0", got)
	}
	assertLogged(t, logsWith(t, e.logs, id, "delivered"), id, "delivered", "INFO")
}

func TestPoolTransientThenDelivered(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	// A real status store, to check the records as other packages read them.
	kv, err := queue.EnsureStatusBucket(context.Background(), e.js, time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	store := status.New(kv, e.nc)
	rec := newRecorder(func(n int, _ string) error {
		if n <= 2 {
			return fmt.Errorf("discord: post webhook: %w", errTransient)
		}
		return nil
	})
	deps := e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: rec})
	deps.Status = store
	e.startPool(testConfig(), deps)

	id := e.publish(discordJob(t, e.keys, "flaky"))
	var st herald.Status
	e.waitFor("delivered", func() bool {
		st, err = store.Get(context.Background(), id)
		return err == nil && st.State == herald.StateDelivered
	})
	if st.Attempts != 2 {
		t.Errorf("attempts = %d, want 2 failed attempts", st.Attempts)
	}
	if n := len(rec.callsFor(id)); n != 3 {
		t.Errorf("sends = %d, want 3", n)
	}
	if got := testutil.ToFloat64(e.metrics.Retries.WithLabelValues("discord", "transient")); got != 2 {
		t.Errorf("transient retries = %v, want 2", got)
	}
	e.waitFor("stream empty", func() bool { return e.streamMsgs() == 0 })
	logs := logsWith(t, e.logs, id, "delivered")
	assertLogged(t, logs, id, "retry", "WARN")
	if !strings.Contains(logs, "500 Internal Server Error") {
		t.Errorf("retry log lacks the error text:\n%s", logs)
	}
}

func TestPoolRetryAfter(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	rec := newRecorder(func(n int, _ string) error {
		if n == 1 {
			return &herald.RetryAfterError{After: 800 * time.Millisecond, Err: errors.New("discord: rate limited")}
		}
		return nil
	})
	e.startPool(testConfig(), e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: rec}))

	id := e.publish(discordJob(t, e.keys, "limited"))
	st := e.waitFinal(id)
	if st.State != herald.StateDelivered || st.Attempts != 0 {
		t.Errorf("status = %+v, want delivered with no failed attempt (a 429 is a wait)", st)
	}
	calls := rec.callsFor(id)
	if len(calls) != 2 {
		t.Fatalf("sends = %d, want 2", len(calls))
	}
	if gap := calls[1].at.Sub(calls[0].at); gap < 750*time.Millisecond {
		t.Errorf("second attempt %s after the first, want at least ~800ms", gap)
	}
	// In between, the job was recorded as delivering with the reason.
	recs := e.status.all(id)
	if len(recs) != 2 || recs[0].State != herald.StateDelivering || !strings.Contains(recs[0].LastError, "retry after") {
		t.Errorf("status records = %+v", recs)
	}
	if got := testutil.ToFloat64(e.metrics.Retries.WithLabelValues("discord", "retry_after")); got != 1 {
		t.Errorf("retry_after retries = %v, want 1", got)
	}
	if got := testutil.ToFloat64(e.metrics.RateLimited.WithLabelValues("discord")); got != 1 {
		t.Errorf("rate limited = %v, want 1", got)
	}
}

func TestPoolPermanent(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	rec := newRecorder(func(int, string) error { return fmt.Errorf("discord: post webhook: %w", errUnknownWebhook) })
	p := e.startPool(testConfig(), e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: rec}))

	id := e.publish(discordJob(t, e.keys, "gone"))
	st := e.waitFinal(id)
	if st.State != herald.StateFailed || st.Attempts != 1 || !strings.Contains(st.LastError, "10015") {
		t.Errorf("status = %+v, want failed after 1 attempt with the destination's error", st)
	}
	// Terminated: gone from the work queue, nothing pending, never redelivered.
	e.waitFor("stream empty", func() bool { return e.streamMsgs() == 0 })
	info := e.consumerInfo(p.cfg.Durable)
	if info.NumAckPending != 0 || info.NumRedelivered != 0 || info.NumPending != 0 {
		t.Errorf("consumer: ack pending %d, redelivered %d, pending %d; want all 0", info.NumAckPending, info.NumRedelivered, info.NumPending)
	}
	// Wait past several backoff periods; the job must not come back.
	time.Sleep(4 * testConfig().MaxBackoff)
	if n := rec.count(); n != 1 {
		t.Errorf("sends = %d, want exactly 1", n)
	}
	if got := testutil.ToFloat64(e.metrics.Deliveries.WithLabelValues("discord", "failed")); got != 1 {
		t.Errorf("failed deliveries = %v, want 1", got)
	}
	assertLogged(t, logsWith(t, e.logs, id, "failed"), id, "failed", "ERROR")
}

func TestPoolWrongKeyFailsWithoutSend(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	rec := newRecorder(nil)
	e.startPool(testConfig(), e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: rec, herald.ChannelTelegram: rec}))

	other, err := crypto.NewKeyring(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	idD := e.publish(discordJob(t, other, "sealed with another key"))
	idT := e.publish(telegramJob(t, other, "sealed with another key"))
	for _, id := range []string{idD, idT} {
		st := e.waitFinal(id)
		if st.State != herald.StateFailed || !strings.Contains(st.LastError, "wrong key") {
			t.Errorf("status = %+v, want failed: wrong key", st)
		}
	}
	if n := rec.count(); n != 0 {
		t.Errorf("sends = %d, want 0", n)
	}
	e.waitFor("stream empty", func() bool { return e.streamMsgs() == 0 })
}

func TestPoolMalformedJobThenGoodJob(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	rec := newRecorder(nil)
	cfg := testConfig()
	cfg.Workers = 1 // in order: the bad job first
	e.startPool(cfg, e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: rec}))

	sealed := testkit.Seal(t, e.keys, testWebhookHost+webhookID+"/"+webhookToken)
	// Not JSON at all, with a message id; and valid JSON that is not a valid
	// job (no message), carrying a sealed credential, without one.
	e.publishRaw(herald.JobSubject(herald.ChannelDiscord), []byte(`{"v":1,"channel":"discord", oops`), "bad-json-1")
	invalid, _ := json.Marshal(map[string]any{"v": 1, "channel": "discord", "credentials": map[string]string{"webhook": sealed}})
	e.publishRaw(herald.JobSubject(herald.ChannelDiscord), invalid, "")
	e.publishRaw(herald.JobSubjectPrefix+"pigeon", []byte(`{}`), "")
	good := e.publish(discordJob(t, e.keys, "after the bad ones"))

	if st := e.waitFinal(good); st.State != herald.StateDelivered {
		t.Errorf("good job status = %+v", st)
	}
	if st := e.waitFinal("bad-json-1"); st.State != herald.StateFailed || !strings.Contains(st.LastError, "malformed JSON") {
		t.Errorf("bad job status = %+v, want failed: malformed JSON", st)
	}
	// The second one has neither id nor message id: it is known by sequence.
	if st := e.waitFinal("seq-2"); st.State != herald.StateFailed || !strings.Contains(st.LastError, "title or a text") {
		t.Errorf("invalid job status = %+v", st)
	}
	e.waitFor("stream empty", func() bool { return e.streamMsgs() == 0 })
	if n := rec.count(); n != 1 {
		t.Errorf("sends = %d, want 1", n)
	}
	if got := testutil.ToFloat64(e.metrics.Deliveries.WithLabelValues("discord", "failed")); got != 2 {
		t.Errorf("failed discord deliveries = %v, want 2", got)
	}
	if got := testutil.ToFloat64(e.metrics.Deliveries.WithLabelValues("unknown", "failed")); got != 1 {
		t.Errorf("failed unknown deliveries = %v, want 1", got)
	}
	logs := logsWith(t, e.logs, "bad-json-1", "failed")
	assertLogged(t, logs, "bad-json-1", "failed", "ERROR")
	if strings.Contains(logs, "oops") || strings.Contains(logs, sealed) {
		t.Errorf("log contains the message body:\n%s", logs)
	}
}

func TestPoolTwoPoolsShareWork(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	const jobs = 60
	var mu sync.Mutex
	seen := map[string]int{}
	var perPool [2]atomic.Int32
	sender := func(i int) Sender {
		return senderFunc(func(context.Context, herald.Notification) error {
			time.Sleep(5 * time.Millisecond) // a send takes a while, so both pools get work
			perPool[i].Add(1)
			return nil
		})
	}
	cfg := testConfig()
	cfg.Workers = 2
	for i := range 2 {
		deps := e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: sender(i)})
		deps.Middlewares = []Middleware{func(next Handler) Handler {
			return func(ctx context.Context, d *Delivery) error {
				mu.Lock()
				seen[d.Job.ID]++
				mu.Unlock()
				return next(ctx, d)
			}
		}}
		e.startPool(cfg, deps)
	}
	ids := make([]string, jobs)
	for i := range ids {
		ids[i] = e.publish(discordJob(t, e.keys, fmt.Sprintf("job %d", i)))
	}
	for _, id := range ids {
		if st := e.waitFinal(id); st.State != herald.StateDelivered || st.Attempts != 0 {
			t.Errorf("job %s status = %+v", id, st)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("job %s handled %d times, want 1", id, seen[id])
		}
	}
	if len(seen) != jobs {
		t.Errorf("handled %d distinct jobs, want %d", len(seen), jobs)
	}
	a, b := perPool[0].Load(), perPool[1].Load()
	if a == 0 || b == 0 || a+b != jobs {
		t.Errorf("pools sent %d and %d jobs; want both some, %d in all", a, b, jobs)
	}
}

func TestPoolGracefulShutdown(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	started := make(chan string, 10)
	slow := senderFunc(func(ctx context.Context, n herald.Notification) error {
		started <- n.JobID
		select {
		case <-time.After(700 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	cfg := testConfig()
	cfg.Workers = 1
	cfg.DrainTimeout = 5 * time.Second
	p := e.startPool(cfg, e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: slow}))

	first := e.publish(discordJob(t, e.keys, "in flight"))
	second := e.publish(discordJob(t, e.keys, "queued"))
	select {
	case id := <-started:
		if id != first {
			t.Fatalf("first send was %s, want %s", id, first)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no send started")
	}
	err, took := p.stop()
	if err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if took > cfg.DrainTimeout {
		t.Errorf("Run took %s to return, want within DrainTimeout %s", took, cfg.DrainTimeout)
	}
	// The in-flight job finished and was acked before Run returned.
	if st, ok := e.status.last(first); !ok || st.State != herald.StateDelivered {
		t.Errorf("in-flight job status = %+v, want delivered", st)
	}
	if _, ok := e.status.last(second); ok {
		t.Errorf("queued job was touched by the stopped pool")
	}

	// The queued job is not lost: a new pool delivers it.
	rec := newRecorder(nil)
	e.startPool(cfg, e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: rec}))
	if st := e.waitFinal(second); st.State != herald.StateDelivered {
		t.Errorf("queued job status = %+v, want delivered", st)
	}
	if n := len(rec.callsFor(first)); n != 0 {
		t.Errorf("in-flight job sent again %d times by the new pool", n)
	}
	e.waitFor("stream empty", func() bool { return e.streamMsgs() == 0 })
}

func TestPoolShutdownAfterDrainTimeoutLeavesJobUnacked(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	started := make(chan struct{}, 1)
	var cancelled atomic.Bool
	hang := senderFunc(func(ctx context.Context, _ herald.Notification) error {
		started <- struct{}{}
		<-ctx.Done()
		cancelled.Store(true)
		return ctx.Err()
	})
	cfg := testConfig()
	cfg.Workers = 1
	cfg.AckWait = time.Second
	cfg.SendTimeout = 900 * time.Millisecond
	cfg.DrainTimeout = 200 * time.Millisecond
	p := e.startPool(cfg, e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: hang}))

	id := e.publish(discordJob(t, e.keys, "hangs"))
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("no send started")
	}
	err, took := p.stop()
	if err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if took > cfg.DrainTimeout+time.Second {
		t.Errorf("Run took %s to return, want about DrainTimeout %s", took, cfg.DrainTimeout)
	}
	testkit.WaitFor(t, 5*time.Second, "send cancelled", cancelled.Load)

	// Left unacked: the next pool gets it after AckWait.
	rec := newRecorder(nil)
	e.startPool(cfg, e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: rec}))
	// A redelivery after a crash (here: abandoned at shutdown) is not a
	// failed attempt.
	if st := e.waitFinal(id); st.State != herald.StateDelivered || st.Attempts != 0 {
		t.Errorf("status = %+v, want delivered with no failed attempt", st)
	}
	if recs := e.status.all(id); len(recs) != 1 {
		t.Errorf("status records = %+v, want only the delivered one (an abandoned attempt writes none)", recs)
	}
}

func TestPoolTelegramRoundTrip(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	rec := newRecorder(nil)
	e.startPool(testConfig(), e.deps(map[herald.Channel]Sender{herald.ChannelTelegram: rec}))

	id := e.publish(telegramJob(t, e.keys, "hi telegram"))
	if st := e.waitFinal(id); st.State != herald.StateDelivered || st.Channel != herald.ChannelTelegram {
		t.Errorf("status = %+v", st)
	}
	calls := rec.callsFor(id)
	if len(calls) != 1 {
		t.Fatalf("sends = %d, want 1", len(calls))
	}
	if tg := calls[0].n.Target; tg.BotToken != botToken || tg.ChatID != chatID || tg.WebhookURL != "" {
		t.Errorf("telegram target not opened as expected")
	}
}

func TestPoolNoSenderForChannelRetries(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	rec := newRecorder(nil)
	e.startPool(testConfig(), e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: rec}))

	id := e.publish(telegramJob(t, e.keys, "nobody sends this"))
	e.waitFor("two attempts", func() bool {
		st, ok := e.status.last(id)
		return ok && st.Attempts >= 2
	})
	st, _ := e.status.last(id)
	if st.State != herald.StateDelivering || !strings.Contains(st.LastError, "no sender configured for channel telegram") {
		t.Errorf("status = %+v, want delivering: no sender", st)
	}
}

func TestPoolPanicIsTransient(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	rec := newRecorder(func(n int, _ string) error {
		if n == 1 {
			panic("boom while sending to " + testWebhookHost + webhookID + "/" + webhookToken)
		}
		return nil
	})
	e.startPool(testConfig(), e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: rec}))

	id := e.publish(discordJob(t, e.keys, "panics once"))
	if st := e.waitFinal(id); st.State != herald.StateDelivered || st.Attempts != 1 {
		t.Errorf("status = %+v, want delivered after 1 failed attempt", st)
	}
	recs := e.status.all(id)
	if len(recs) < 1 || !strings.Contains(recs[0].LastError, "panic") || strings.Contains(recs[0].LastError, webhookToken) {
		t.Errorf("status after panic = %+v", recs)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, `"msg":"panic"`) || !strings.Contains(logs, "goroutine") {
		t.Errorf("panic not logged with a stack:\n%s", logs)
	}
}

func TestPoolStatusWriteFailureKeepsAck(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.status.fail = errors.New("kv unavailable")
	rec := newRecorder(nil)
	e.startPool(testConfig(), e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: rec}))

	e.publish(discordJob(t, e.keys, "status down"))
	e.waitFor("status write failure counted", func() bool { return testutil.ToFloat64(e.metrics.StatusWriteFails) == 1 })
	e.waitFor("stream empty", func() bool { return e.streamMsgs() == 0 })
	if n := rec.count(); n != 1 {
		t.Errorf("sends = %d, want 1", n)
	}
}

func TestPoolKeepsLongJobsInProgress(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	cfg := testConfig()
	cfg.Workers = 2
	cfg.AckWait = time.Second
	cfg.SendTimeout = 500 * time.Millisecond
	rec := newRecorder(nil)
	deps := e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: rec})
	// A middleware that holds the job well past AckWait, as pacing may.
	deps.Middlewares = []Middleware{func(next Handler) Handler {
		return func(ctx context.Context, d *Delivery) error {
			time.Sleep(2500 * time.Millisecond)
			return next(ctx, d)
		}
	}}
	p := e.startPool(cfg, deps)

	id := e.publish(discordJob(t, e.keys, "slow"))
	if st := e.waitFinal(id); st.State != herald.StateDelivered || st.Attempts != 0 {
		t.Errorf("status = %+v, want delivered on the first delivery", st)
	}
	// A copy redelivered meanwhile would still be in the other worker now.
	e.waitFor("no job in flight", func() bool { return testutil.ToFloat64(e.metrics.InFlight) == 0 })
	if n := rec.count(); n != 1 {
		t.Errorf("sends = %d, want 1 (redelivered while in progress?)", n)
	}
	if recs := e.status.all(id); len(recs) != 1 {
		t.Errorf("status records = %+v, want one", recs)
	}
	if info := e.consumerInfo(p.cfg.Durable); info.NumRedelivered != 0 || info.Delivered.Consumer != 1 {
		t.Errorf("redelivered = %d, deliveries = %d; want 0 and 1", info.NumRedelivered, info.Delivered.Consumer)
	}
}

func TestPoolMiddlewaresSeeOpenedNotification(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	var order []string
	var mu sync.Mutex
	mw := func(name string) Middleware {
		return func(next Handler) Handler {
			return func(ctx context.Context, d *Delivery) error {
				mu.Lock()
				order = append(order, name)
				ok := d.Notification.Target.WebhookURL != "" && d.Notification.JobID == d.Job.ID && d.Attempt == 1 &&
					d.Sequence == 1 && d.Subject == herald.JobIDSubject(herald.ChannelDiscord, d.Job.ID)
				mu.Unlock()
				if !ok {
					return herald.Permanent(errors.New("delivery not filled in"))
				}
				return next(ctx, d)
			}
		}
	}
	deps := e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: newRecorder(nil)})
	deps.Middlewares = []Middleware{mw("outer"), mw("inner")}
	e.startPool(testConfig(), deps)

	id := e.publish(discordJob(t, e.keys, "mw"))
	if st := e.waitFinal(id); st.State != herald.StateDelivered {
		t.Errorf("status = %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(order, ",") != "outer,inner" {
		t.Errorf("order = %v, want outer,inner", order)
	}
}

func TestPoolJobWithoutIDTakesMsgID(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	rec := newRecorder(nil)
	e.startPool(testConfig(), e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: rec}))

	job := discordJob(t, e.keys, "no id")
	job.Version = herald.JobVersion
	data, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	e.publishRaw(herald.JobSubject(herald.ChannelDiscord), data, "from-another-backend-7")
	if st := e.waitFinal("from-another-backend-7"); st.State != herald.StateDelivered {
		t.Errorf("status = %+v", st)
	}
	if calls := rec.callsFor("from-another-backend-7"); len(calls) != 1 {
		t.Errorf("sends for msg id = %d, want 1", len(calls))
	}
}

func TestPoolRunSetupError(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	if err := e.js.DeleteStream(context.Background(), herald.JobsStream); err != nil {
		t.Fatal(err)
	}
	p, err := New(testConfig(), e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: newRecorder(nil)}))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "create consumer") {
			t.Errorf("Run = %v, want a create consumer error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return at once on a setup error")
	}
	if err := p.Run(context.Background()); err == nil {
		t.Error("second Run = nil, want an error")
	}
}

// A Pool stopped before it started (its ctx cancelled while it set up) is a
// stop, not a setup error: Run returns nil, and it tries no first sends.
func TestPoolRunStoppedBeforeStart(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	p, err := New(testConfig(), e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: newRecorder(nil)}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Run(ctx); err != nil {
		t.Errorf("Run with its ctx cancelled = %v, want nil", err)
	}
	job := discordJob(t, e.keys, "after a stop")
	job.ID = herald.NewID()
	if delivered, carry := p.SendFirst(context.Background(), job); delivered || carry != nil {
		t.Errorf("SendFirst after the stop = %v, %v; want not tried", delivered, carry)
	}
}

func TestPoolRunStopsWhenConsumerDeleted(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	p, err := New(testConfig(), e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: newRecorder(nil)}))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	// Wait for Run's pull request to reach the server: the deletion then
	// answers it at once. (Without one, the client notices only when its
	// next pull, after a missed heartbeat, finds no consumer: ~30 s later.)
	e.waitFor("a waiting pull request", func() bool {
		c, err := e.js.Consumer(context.Background(), herald.JobsStream, p.cfg.Durable)
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		return err == nil && info.NumWaiting > 0
	})
	if err := e.js.DeleteConsumer(context.Background(), herald.JobsStream, p.cfg.Durable); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("Run = nil after its consumer was deleted, want an error")
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("Run did not return after its consumer was deleted; log:\n%s", e.logs.String())
	}
}

// assertLogged checks that logs hold a "delivery" line for job with outcome at
// level, carrying the documented attributes.
// logsWith waits until b holds the outcome line of job (written after the
// status record and the metrics, so a test that saw those may be early) and
// returns b's content.
func logsWith(t *testing.T, b *testkit.LogBuffer, job, outcome string) string {
	t.Helper()
	testkit.WaitFor(t, 5*time.Second, outcome+" line of "+job, func() bool {
		s := b.String()
		return strings.Contains(s, `"job_id":"`+job+`"`) && strings.Contains(s, `"outcome":"`+outcome+`"`)
	})
	return b.String()
}

func assertLogged(t *testing.T, logs, job, outcome, level string) {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if m["msg"] != "delivery" || m["job_id"] != job || m["outcome"] != outcome {
			continue
		}
		if m["level"] != level {
			t.Errorf("%s line at level %v, want %s", outcome, m["level"], level)
		}
		for _, k := range []string{"channel", "attempts", "delivery", "duration_ms"} {
			if _, ok := m[k]; !ok {
				t.Errorf("%s line lacks %s: %s", outcome, k, line)
			}
		}
		if outcome != "delivered" {
			if _, ok := m["error"]; !ok {
				t.Errorf("%s line lacks error: %s", outcome, line)
			}
		}
		return
	}
	t.Errorf("no %q delivery line for job %s in:\n%s", outcome, job, logs)
}
