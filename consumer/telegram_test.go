package consumer

import (
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/channels"
	"github.com/heraldrelay/herald/channels/fake"
)

// newTelegramFixture runs a Pool sending to a fake Telegram through the real
// channel.
func newTelegramFixture(t *testing.T) (*testEnv, *fake.Telegram) {
	t.Helper()
	e := newTestEnv(t)
	f := fake.NewTelegram(t)
	tg, err := channels.NewTelegram(channels.TelegramConfig{APIBase: f.URL()}, channels.NewHTTPClient(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	e.startPool(testConfig(), e.deps(map[herald.Channel]Sender{herald.ChannelTelegram: tg}))
	return e, f
}

func TestTelegramDelivered(t *testing.T) {
	t.Parallel()
	e, f := newTelegramFixture(t)
	id := e.publish(telegramJob(t, e.keys, "hello telegram"))
	if st := e.waitFinal(id); st.State != herald.StateDelivered || st.Attempts != 1 || st.Channel != herald.ChannelTelegram {
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
	if st.State != herald.StateFailed || st.Attempts != 2 || !strings.Contains(st.LastError, "blocked") {
		t.Errorf("status = %+v, want failed on attempt 2: blocked", st)
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
