package vault_test

import (
	"context"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/channels"
	"github.com/heraldrelay/herald/internal/metrics"
	"github.com/heraldrelay/herald/internal/vault"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Keys and destinations of the tests. None of the destinations' secret parts
// may appear in a log line, an error or a stored record.
const (
	keyV1 = "v1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	keyV2 = "v2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
	keyV3 = "v3:QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8="

	testWebhook = "https://discord.com/api/webhooks/123456789012345678/WeBhOoK-SeCrEt_token_0123456789"
	webhookTok  = "WeBhOoK-SeCrEt_token_0123456789"
	testBot     = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
	botSecret   = "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
	testChat    = "-1009876543210"
)

var leakWatch = []string{testWebhook, webhookTok, testBot, botSecret, testChat,
	"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8"}

// assertNoLeak stops the test if s (named what) holds one of leakWatch or
// of the kit's Secrets.
func assertNoLeak(t testing.TB, what, s string) {
	t.Helper()
	failed := t.Failed()
	testkit.AssertNoSecrets(t, what, s, leakWatch...)
	if !failed && t.Failed() {
		t.Fatalf("%s: %s", what, s)
	}
}

var (
	discordTarget  = herald.Target{WebhookURL: testWebhook}
	telegramTarget = herald.Target{BotToken: testBot, ChatID: testChat}
)

// clock is an adjustable clock for Config.Now.
type clock = testkit.ShiftedClock

// buckets opens a connection of its own to the kit's server s (one NATS
// server is the store of any number of replicas) and returns the vault's
// buckets and its JetStream context.
func buckets(t *testing.T, s *testkit.Server) (creds, secrets jetstream.KeyValue, js jetstream.JetStream) {
	t.Helper()
	_, js = s.Connect()
	creds, secrets, err := vault.EnsureBuckets(testkit.Context(t, 10*time.Second), js, vault.BucketConfig{})
	if err != nil {
		t.Fatalf("EnsureBuckets: %v", err)
	}
	return creds, secrets, js
}

// notifier records the notifications a vault sends, as the destination
// would see them.
type notifier struct {
	mu   sync.Mutex
	sent []herald.Notification
	fail atomic.Bool
}

func (n *notifier) Notify(_ context.Context, msg herald.Notification) error {
	if n.fail.Load() {
		return vault.ErrUnavailable
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sent = append(n.sent, msg)
	return nil
}

var codePattern = regexp.MustCompile(regexp.QuoteMeta(vault.CodeTitle) + `(\d{6})$`)

// lastCode returns the code of the last notification sent to target.
func (n *notifier) lastCode(t *testing.T, target herald.Target) string {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	for i := len(n.sent) - 1; i >= 0; i-- {
		if n.sent[i].Target == target {
			m := codePattern.FindStringSubmatch(n.sent[i].Message.Title)
			if m == nil {
				t.Fatalf("notification title %q holds no code", n.sent[i].Message.Title)
			}
			return m[1]
		}
	}
	t.Fatal("no code was sent to the destination")
	return ""
}

func (n *notifier) count() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.sent)
}

// fixture is one Vault (a replica) with what a test inspects.
type fixture struct {
	*vault.Vault
	creds    jetstream.KeyValue
	secrets  jetstream.KeyValue
	js       jetstream.JetStream
	clock    *clock
	notifier *notifier
	metrics  *metrics.Metrics
	logs     *testkit.LogBuffer
}

// newVault builds a Vault on its own connection to s; edit adjusts its
// Config (Keys default to keyV1). Its log is checked for leakWatch (and the
// kit's Secrets) when the test ends.
func newVault(t *testing.T, s *testkit.Server, edit func(*vault.Config)) *fixture {
	t.Helper()
	creds, secrets, js := buckets(t, s)
	log, logs := testkit.Logger(t, leakWatch...)
	f := &fixture{creds: creds, secrets: secrets, js: js, clock: &clock{}, notifier: &notifier{},
		metrics: metrics.New(prometheus.NewRegistry()), logs: logs}
	cfg := vault.Config{Keys: []string{keyV1}, Now: f.clock.Now}
	if edit != nil {
		edit(&cfg)
	}
	discord, err := channels.NewDiscord(channels.DiscordConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	telegram, err := channels.NewTelegram(channels.TelegramConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.Vault, err = vault.New(cfg, vault.Deps{
		Credentials: creds,
		Secrets:     secrets,
		Checkers:    map[herald.Channel]vault.TargetChecker{herald.ChannelDiscord: discord, herald.ChannelTelegram: telegram},
		Notifier:    f.notifier,
		Metrics:     f.metrics,
		Logger:      log,
	})
	if err != nil {
		t.Fatalf("vault.New: %v", err)
	}
	return f
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	return testkit.Context(t, 20*time.Second)
}

// raw returns credential id's stored record.
func (f *fixture) raw(t *testing.T, id string) []byte {
	t.Helper()
	e, err := f.creds.Get(ctxT(t), "c."+id)
	if err != nil {
		t.Fatalf("get record %s: %v", id, err)
	}
	return e.Value()
}

func (f *fixture) mustStore(t *testing.T, c herald.Channel, target herald.Target, opts vault.StoreOptions) vault.Info {
	t.Helper()
	info, err := f.Store(ctxT(t), c, target, opts)
	if err != nil {
		t.Fatalf("Store: %v", err)
	}
	return info
}
