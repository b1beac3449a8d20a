package consumer

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/channels"
	"github.com/heraldrelay/herald/internal/fake"
	"github.com/heraldrelay/herald/internal/status"
	"github.com/heraldrelay/herald/internal/testkit"
)

// The channels and the status store satisfy the consumer's interfaces.
var (
	_ Sender       = (*channels.Discord)(nil)
	_ Sender       = (*channels.Telegram)(nil)
	_ StatusWriter = (*status.Store)(nil)
	_ StatusStore  = (*status.Store)(nil)
)

// discordFixture is a Pool sending to a fake Discord through the real channel.
type discordFixture struct {
	*testEnv
	fake *fake.Discord
	pool *runningPool
}

// newDiscordFixture starts the Pool; opts may change its Deps first.
func newDiscordFixture(t *testing.T, cfg Config, opts ...func(*testEnv, *Deps)) *discordFixture {
	t.Helper()
	e := newTestEnv(t)
	f := fake.NewDiscord(t)
	deps := e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: discordChannel(t)})
	for _, o := range opts {
		o(e, &deps)
	}
	p := e.startPool(cfg, deps)
	return &discordFixture{testEnv: e, fake: f, pool: p}
}

func (x *discordFixture) publishDiscord(text string) string {
	x.t.Helper()
	return x.publish(testkit.DiscordJob(x.t, x.keys, x.fake.WebhookURL(webhookID, webhookToken), text))
}

func TestDiscordDelivered(t *testing.T) {
	t.Parallel()
	x := newDiscordFixture(t, testConfig())
	id := x.publishDiscord("hello discord")
	if st := x.waitFinal(id); st.State != herald.StateDelivered || st.Attempts != 0 {
		t.Errorf("status = %+v, want delivered with no failed attempt", st)
	}
	reqs := x.fake.Requests()
	if len(reqs) != 1 {
		t.Fatalf("requests = %d, want 1", len(reqs))
	}
	if reqs[0].WebhookID != webhookID || reqs[0].Token != webhookToken || reqs[0].Method != http.MethodPost {
		t.Errorf("request = %s %s", reqs[0].Method, reqs[0].Path)
	}
	if !strings.Contains(string(reqs[0].Raw), "hello discord") {
		t.Errorf("body = %s", reqs[0].Raw)
	}
	x.waitFor("stream empty", func() bool { return x.streamMsgs() == 0 })
}

func TestDiscordTransientThenDelivered(t *testing.T) {
	t.Parallel()
	x := newDiscordFixture(t, testConfig())
	x.fake.Script(func(_ fake.DiscordRequest, n int) fake.Response {
		if n <= 2 {
			return fake.Response{Status: http.StatusInternalServerError, Body: `{"message": "500: Internal Server Error", "code": 0}`}
		}
		return fake.Response{}
	})
	id := x.publishDiscord("flaky")
	st := x.waitFinal(id)
	if st.State != herald.StateDelivered || st.Attempts != 2 {
		t.Errorf("status = %+v, want delivered after 2 failed attempts", st)
	}
	if n := x.fake.Count(); n != 3 {
		t.Errorf("requests = %d, want 3", n)
	}
	x.waitFor("stream empty", func() bool { return x.streamMsgs() == 0 })
}

func TestDiscordRetryAfter(t *testing.T) {
	t.Parallel()
	x := newDiscordFixture(t, testConfig())
	x.fake.Script(func(_ fake.DiscordRequest, n int) fake.Response {
		if n == 1 {
			return fake.Respond429(0.8)
		}
		return fake.Response{}
	})
	id := x.publishDiscord("limited")
	// The 429 is a wait, not a failed attempt.
	if st := x.waitFinal(id); st.State != herald.StateDelivered || st.Attempts != 0 {
		t.Errorf("status = %+v, want delivered with no failed attempt", st)
	}
	reqs := x.fake.Requests()
	if len(reqs) != 2 {
		t.Fatalf("requests = %d, want 2", len(reqs))
	}
	if gap := reqs[1].At.Sub(reqs[0].At); gap < 750*time.Millisecond {
		t.Errorf("second request %s after the first, want at least ~800ms", gap)
	}
}

func TestDiscordUnknownWebhookIsPermanent(t *testing.T) {
	t.Parallel()
	x := newDiscordFixture(t, testConfig())
	x.fake.Script(func(fake.DiscordRequest, int) fake.Response { return fake.Respond404UnknownWebhook() })
	id := x.publishDiscord("deleted webhook")
	st := x.waitFinal(id)
	if st.State != herald.StateFailed || st.Attempts != 1 || !strings.Contains(st.LastError, "10015") {
		t.Errorf("status = %+v, want failed with code 10015", st)
	}
	x.waitFor("stream empty", func() bool { return x.streamMsgs() == 0 })
	time.Sleep(4 * testConfig().MaxBackoff)
	if n := x.fake.Count(); n != 1 {
		t.Errorf("requests = %d, want exactly 1", n)
	}
	if info := x.consumerInfo(x.pool.cfg.Durable); info.NumAckPending != 0 || info.NumRedelivered != 0 {
		t.Errorf("consumer: ack pending %d, redelivered %d; want 0", info.NumAckPending, info.NumRedelivered)
	}
	if strings.Contains(st.LastError, webhookToken) || strings.Contains(st.LastError, x.fake.URL()) {
		t.Errorf("status error leaks the webhook: %q", st.LastError)
	}
}

func TestDiscordGracefulShutdown(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Workers = 1
	x := newDiscordFixture(t, cfg)
	x.fake.Script(func(_ fake.DiscordRequest, n int) fake.Response {
		return fake.Response{Delay: 700 * time.Millisecond}
	})
	first := x.publishDiscord("in flight")
	second := x.publishDiscord("queued")
	x.waitFor("first request", func() bool { return x.fake.Count() >= 1 })
	err, took := x.pool.stop()
	if err != nil || took > cfg.DrainTimeout {
		t.Errorf("Run = %v after %s, want nil within %s", err, took, cfg.DrainTimeout)
	}
	if st, ok := x.status.last(first); !ok || st.State != herald.StateDelivered {
		t.Errorf("in-flight job status = %+v, want delivered", st)
	}

	x.startPool(cfg, x.deps(map[herald.Channel]Sender{herald.ChannelDiscord: discordChannel(t)}))
	if st := x.waitFinal(second); st.State != herald.StateDelivered {
		t.Errorf("queued job status = %+v, want delivered", st)
	}
	if n := x.fake.Count(); n != 2 {
		t.Errorf("requests = %d, want 2 (each job once)", n)
	}
	x.waitFor("stream empty", func() bool { return x.streamMsgs() == 0 })
}
