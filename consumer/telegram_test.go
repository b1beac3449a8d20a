package consumer

import (
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/fake"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// newTelegramFixture runs a Pool sending to a fake Telegram through the real
// channel; opts may change its Deps first.
func newTelegramFixture(t *testing.T, opts ...func(*testEnv, *Deps)) (*testEnv, *fake.Telegram) {
	t.Helper()
	e := newTestEnv(t)
	f := fake.NewTelegram(t)
	deps := e.deps(map[herald.Channel]Sender{herald.ChannelTelegram: telegramChannel(t, f)})
	for _, o := range opts {
		o(e, &deps)
	}
	e.startPool(testConfig(), deps)
	return e, f
}

func TestTelegramDelivered(t *testing.T) {
	t.Parallel()
	e, f := newTelegramFixture(t)
	id := e.publish(telegramJob(t, e.keys, "hello telegram"))
	if st := e.waitFinal(id); st.State != herald.StateDelivered || st.Attempts != 0 || st.Channel != herald.ChannelTelegram {
		t.Errorf("status = %+v", st)
	}
	reqs := f.Requests()
	if len(reqs) != 1 {
		t.Fatalf("requests = %d, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Token != botToken || r.ChatID != chatID || r.Method != "sendMessage" || !strings.Contains(r.Visible, "hello telegram") {
		t.Errorf("request: method %s, text %q (token/chat match: %v/%v)", r.Method, r.Visible, r.Token == botToken, r.ChatID == chatID)
	}
	e.waitFor("stream empty", func() bool { return e.streamMsgs() == 0 })
}

func TestTelegramRetryAfterThenBlocked(t *testing.T) {
	t.Parallel()
	e, f := newTelegramFixture(t)
	f.Script(func(_ fake.TelegramRequest, n int) fake.Response {
		if n == 1 {
			return fake.RespondTelegram429(1)
		}
		return fake.RespondTelegramBlocked()
	})
	id := e.publish(telegramJob(t, e.keys, "to a user who blocked the bot"))
	st := e.waitFinal(id)
	// The 429 used no attempt; the 403 is the one failed attempt.
	if st.State != herald.StateFailed || st.Attempts != 1 || !strings.Contains(st.LastError, "blocked") {
		t.Errorf("status = %+v, want failed after 1 failed attempt: blocked", st)
	}
	reqs := f.Requests()
	if len(reqs) != 2 {
		t.Fatalf("requests = %d, want 2", len(reqs))
	}
	if gap := reqs[1].At.Sub(reqs[0].At); gap < 950*time.Millisecond {
		t.Errorf("second request %s after the first, want at least ~1s", gap)
	}
	e.waitFor("stream empty", func() bool { return e.streamMsgs() == 0 })
	assertNoSecrets(t, st.LastError)
}

func TestTelegramRetryAfterDelivered(t *testing.T) {
	t.Parallel()
	var dlq *testDLQ
	e, f := newTelegramFixture(t, func(e *testEnv, d *Deps) {
		dlq = e.newDLQ(0)
		d.DeadLetters = dlq
	})
	f.Script(func(_ fake.TelegramRequest, n int) fake.Response {
		if n == 1 {
			return fake.RespondTelegram429(1) // Telegram's retry_after is whole seconds
		}
		return fake.Response{}
	})
	id := e.publish(telegramJob(t, e.keys, "limited"))
	st := e.waitFinal(id)
	if st.State != herald.StateDelivered || st.Attempts != 0 {
		t.Errorf("status = %+v, want delivered with no failed attempt (a 429 is a wait)", st)
	}
	reqs := f.Requests()
	if len(reqs) != 2 {
		t.Fatalf("requests = %d, want 2", len(reqs))
	}
	if gap := reqs[1].At.Sub(reqs[0].At); gap < 950*time.Millisecond {
		t.Errorf("second request %s after the first, want at least ~1s", gap)
	}
	if got := testutil.ToFloat64(e.metrics.Retries.WithLabelValues("telegram", "retry_after")); got != 1 {
		t.Errorf("retry_after retries = %v, want 1", got)
	}
	if got := testutil.ToFloat64(e.metrics.RateLimited.WithLabelValues("telegram")); got != 1 {
		t.Errorf("rate limited = %v, want 1", got)
	}
	if n := len(dlq.got()); n != 0 {
		t.Errorf("dead letters = %d, want 0", n)
	}
	e.waitFor("stream empty", func() bool { return e.streamMsgs() == 0 })
}
