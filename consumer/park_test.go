package consumer

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/queue"
	"github.com/heraldrelay/herald/internal/status"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// parkingEnv is a testEnv whose pool keeps status in the real bucket, which
// parking needs (it takes a parked job's token with a compare-and-swap).
func parkingEnv(t *testing.T) (*testEnv, *status.Store) {
	t.Helper()
	e := newTestEnv(t)
	kv, err := queue.EnsureStatusBucket(testkit.Context(t, 5*time.Second), e.js, time.Hour, 1)
	if err != nil {
		t.Fatalf("status bucket: %v", err)
	}
	return e, status.New(kv, e.nc)
}

func (e *testEnv) parkedMsgs() uint64 {
	e.t.Helper()
	return testkit.StreamMsgs(e.t, e.js, herald.ParkedStream)
}

// byText is a Sender that answers per job text: a text starting with
// "held" is always told to wait wait; any other is delivered and counted.
type byText struct {
	wait      time.Duration
	mu        sync.Mutex
	delivered map[string]int
	held      atomic.Int64
}

func newByText(wait time.Duration) *byText {
	return &byText{wait: wait, delivered: map[string]int{}}
}

func (s *byText) Send(_ context.Context, n herald.Notification) error {
	if strings.HasPrefix(n.Message.Text, "held") {
		s.held.Add(1)
		return &herald.RetryAfterError{After: s.wait, Err: &herald.DestinationError{StatusCode: 429}}
	}
	s.mu.Lock()
	s.delivered[n.Message.Text]++
	s.mu.Unlock()
	return nil
}

func (s *byText) count(prefix string) (jobs, sends int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for text, n := range s.delivered {
		if strings.HasPrefix(text, prefix) {
			jobs++
			sends += n
		}
	}
	return jobs, sends
}

// TestHeldBackJobsLeaveTheWindow is issue 17's first measurement, at the
// consumer: more jobs held back for one destination than the consumer's
// ack-pending window (here a window of 16 and 100 jobs told to wait an
// hour, as one 429 with retry_after 3600 does) must not stop the others.
// Before parking, each held-back job kept its slot for its whole wait, and
// the other tenants' jobs were not even handed out.
func TestHeldBackJobsLeaveTheWindow(t *testing.T) {
	t.Parallel()
	e, st := parkingEnv(t)
	s := newByText(time.Hour)
	cfg := testConfig()
	cfg.MaxAckPending = 16
	deps := e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: s})
	deps.Status = st
	p := e.startPool(cfg, deps)

	const held, others = 100, 20
	for i := range held {
		e.publish(discordJob(t, e.keys, fmt.Sprintf("held %d", i)))
	}
	e.waitFor("a window's worth of held-back jobs tried", func() bool { return s.held.Load() >= int64(cfg.MaxAckPending) })
	for i := range others {
		e.publish(discordJob(t, e.keys, fmt.Sprintf("other %d", i)))
	}
	e.waitFor("the other tenants' jobs delivered", func() bool {
		n, _ := s.count("other")
		return n == others
	})
	// The delivered jobs' acks go out in bursts; then nothing is pending.
	e.waitFor("no job holding an ack-pending slot", func() bool {
		info, err := p.ConsumerInfo(context.Background())
		return err == nil && info.NumAckPending == 0
	})
	if got := e.streamMsgs(); got != 0 {
		t.Errorf("jobs stream holds %d messages, want 0: waiting jobs are parked", got)
	}
	if got := s.held.Load(); got != held {
		t.Errorf("held-back jobs were tried %d times, want each once (%d): none comes back before its hour", got, held)
	}
	// Every held-back job is still there, waiting for its hour.
	e.waitFor("every held-back job parked", func() bool { return e.parkedMsgs() == held })
}

// TestParkedJobKeepsItsIDAttemptsAndRecord: a job that failed once, then was
// told to wait, comes back from its park as the same job: same id, its
// failed attempt still counted, its record saying when it is due while it
// waits, and the replayed-job metric is not counted for the parked copy.
func TestParkedJobKeepsItsIDAttemptsAndRecord(t *testing.T) {
	t.Parallel()
	e, st := parkingEnv(t)
	var calls atomic.Int64
	sender := senderFunc(func(_ context.Context, n herald.Notification) error {
		switch calls.Add(1) {
		case 1:
			return fmt.Errorf("discord: 502 Bad Gateway")
		case 2:
			return &herald.RetryAfterError{After: 1500 * time.Millisecond, Err: &herald.DestinationError{StatusCode: 429}}
		}
		return nil
	})
	deps := e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: sender})
	deps.Status = st
	e.startPool(testConfig(), deps)

	id := e.publish(discordJob(t, e.keys, "comes back"))
	var parked herald.Status
	e.waitFor("the job parked", func() bool {
		rec, err := st.Get(context.Background(), id)
		parked = rec
		return err == nil && !rec.NextAttemptAt.IsZero()
	})
	if parked.State != herald.StateDelivering || parked.Attempts != 1 || parked.ID != id {
		t.Errorf("record while parked = %+v, want delivering with 1 failed attempt", parked)
	}
	if d := time.Until(parked.NextAttemptAt); d < 0 || d > 3*time.Second {
		t.Errorf("next attempt in %s, want about 1.5 s (rounded up to a second)", d)
	}
	e.waitFor("delivered", func() bool {
		rec, err := st.Get(context.Background(), id)
		return err == nil && rec.State == herald.StateDelivered
	})
	rec, _ := st.Get(context.Background(), id)
	if rec.ID != id || rec.Attempts != 1 || !rec.NextAttemptAt.IsZero() {
		t.Errorf("final record = %+v, want id %s, 1 failed attempt, no next attempt", rec, id)
	}
	if got := calls.Load(); got != 3 {
		t.Errorf("sent %d times, want 3 (502, 429, delivered)", got)
	}
	if !rec.UpdatedAt.After(parked.NextAttemptAt.Add(-time.Second)) {
		t.Errorf("delivered at %s, before its park ended at %s", rec.UpdatedAt, parked.NextAttemptAt)
	}
	e.waitFor("parked stream empty", func() bool { return e.parkedMsgs() == 0 })
}

// TestParkedCopyHeldAfterAShortWait: a parked copy that took its job, then
// was told to wait less than a second (which waits in the consumer, not in a
// park), is still the job's holder when it comes back: it is sent, not
// dropped as a stale copy.
func TestParkedCopyHeldAfterAShortWait(t *testing.T) {
	t.Parallel()
	e, st := parkingEnv(t)
	var calls atomic.Int64
	sender := senderFunc(func(context.Context, herald.Notification) error {
		switch calls.Add(1) {
		case 1:
			return &herald.RetryAfterError{After: 1200 * time.Millisecond, Err: &herald.DestinationError{StatusCode: 429}}
		case 2:
			return &herald.RetryAfterError{After: 200 * time.Millisecond, Err: &herald.DestinationError{StatusCode: 429}}
		}
		return nil
	})
	deps := e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: sender})
	deps.Status = st
	e.startPool(testConfig(), deps)
	id := e.publish(discordJob(t, e.keys, "parked, then a short wait"))
	e.waitFor("delivered", func() bool {
		rec, err := st.Get(context.Background(), id)
		return err == nil && rec.State == herald.StateDelivered
	})
	if got := calls.Load(); got != 3 {
		t.Errorf("sent %d times, want 3", got)
	}
	if n := testutil.ToFloat64(e.metrics.StaleCopies); n != 0 {
		t.Errorf("%v copies dropped as stale, want none", n)
	}
}

// TestParkLimitPerDestination: a destination may park at most
// MaxParkedPerDestination jobs; the next that must wait is not kept waiting
// for ever but ends (here, without dead letters, as failed) naming the
// setting, and other destinations are not refused.
func TestParkLimitPerDestination(t *testing.T) {
	t.Parallel()
	e, st := parkingEnv(t)
	s := newByText(time.Hour)
	cfg := testConfig()
	cfg.MaxParkedPerDestination = 5
	cfg.MaxParked = 100
	deps := e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: s})
	deps.Status = st
	deps.Destination = func(n herald.Notification) string {
		return "discord:" + n.Target.WebhookURL[len(n.Target.WebhookURL)-8:]
	}
	e.startPool(cfg, deps)

	var ids []string
	for i := range 8 {
		ids = append(ids, e.publish(discordJob(t, e.keys, fmt.Sprintf("held %d", i))))
	}
	var refused int
	e.waitFor("every job parked or refused", func() bool {
		refused = int(testutil.ToFloat64(e.metrics.ParkRefused.WithLabelValues("discord", parkScopeDestination)))
		return e.parkedMsgs() == 5 && refused == 3
	})
	failed := 0
	for _, id := range ids {
		rec, err := st.Get(context.Background(), id)
		if err == nil && rec.State == herald.StateFailed {
			failed++
			if !strings.Contains(rec.LastError, "consumer.max_parked_per_destination") {
				t.Errorf("refused job's error %q does not name the setting", rec.LastError)
			}
		}
	}
	if failed != 3 {
		t.Errorf("%d jobs ended, want 3", failed)
	}
}

// TestWaitBeyondMaxAgeEndsAtOnce: a retry_after longer than what is left
// of the job's age budget ends the job at once, saying why, instead of
// parking it for an hour only to give up then.
func TestWaitBeyondMaxAgeEndsAtOnce(t *testing.T) {
	t.Parallel()
	e, st := parkingEnv(t)
	cfg := testConfig()
	cfg.MaxAge = 10 * time.Minute
	deps := e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: newByText(time.Hour)})
	deps.Status = st
	e.startPool(cfg, deps)
	id := e.publish(discordJob(t, e.keys, "held for an hour"))
	var rec herald.Status
	e.waitFor("the job ended", func() bool {
		var err error
		rec, err = st.Get(context.Background(), id)
		return err == nil && rec.State.Final()
	})
	if rec.State != herald.StateFailed || !strings.Contains(rec.LastError, "asked to wait 1h0m0s, more than the") {
		t.Errorf("record = %+v, want failed saying the wait is beyond the age budget", rec)
	}
	if n := e.parkedMsgs(); n != 0 {
		t.Errorf("%d parked, want none", n)
	}
}
