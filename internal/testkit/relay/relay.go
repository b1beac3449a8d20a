// Package relay is the test kit's whole relay: an embedded JetStream server
// with the jobs stream and the status bucket, a keyring, a publisher, logs
// checked for secrets, metrics on a private registry, the Discord and
// Telegram fakes with the real channels pointed at them, and a consumer pool
// that runs until the test ends. Tests of the packages around the pool
// (breakers, pacing, dead letters, the admin API, fault tests) start here
// instead of wiring their own.
package relay

import (
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/channels"
	"github.com/heraldrelay/herald/consumer"
	"github.com/heraldrelay/herald/crypto"
	"github.com/heraldrelay/herald/internal/fake"
	"github.com/heraldrelay/herald/internal/metrics"
	"github.com/heraldrelay/herald/internal/queue"
	"github.com/heraldrelay/herald/internal/status"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/publisher"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Env is one relay under test. Its fields are ready to use; the fakes and
// channels are started on first use.
type Env struct {
	T        testing.TB
	Server   *testkit.Server
	NC       *nats.Conn
	JS       jetstream.JetStream
	Keys     *crypto.Keyring
	Pub      *publisher.Publisher
	Status   *status.Store
	Logs     *testkit.LogBuffer
	Log      *slog.Logger
	Registry *prometheus.Registry
	Metrics  *metrics.Metrics

	discord  *fake.Discord
	telegram *fake.Telegram
}

// New starts a JetStream server (with opts) holding the jobs stream and the
// status bucket, and everything a pool needs around it. secrets are checked
// in the logs at the end of the test, besides testkit.Secrets.
func New(t testing.TB, opts ...testkit.Option) *Env {
	t.Helper()
	s, nc, js := testkit.JetStream(t, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := queue.EnsureJobsStream(ctx, js, queue.StreamConfig{}); err != nil {
		t.Fatalf("relay: ensure jobs stream: %v", err)
	}
	kv, err := queue.EnsureStatusBucket(ctx, js, time.Hour, 1)
	if err != nil {
		t.Fatalf("relay: ensure status bucket: %v", err)
	}
	log, logs := testkit.Logger(t)
	reg := prometheus.NewRegistry()
	return &Env{
		T: t, Server: s, NC: nc, JS: js,
		Keys: testkit.Keyring(t), Pub: publisher.New(js), Status: status.New(kv, nc),
		Logs: logs, Log: log, Registry: reg, Metrics: metrics.New(reg),
	}
}

// Publish stores job and returns its id.
func (e *Env) Publish(job *herald.Job) string {
	e.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := e.Pub.Publish(ctx, job)
	if err != nil {
		e.T.Fatalf("relay: publish: %v", err)
	}
	return res.ID
}

// Discord is the fake Discord, started on first use; it never rate-limits
// unless the test sets a limit.
func (e *Env) Discord() *fake.Discord {
	if e.discord == nil {
		e.discord = fake.NewDiscord(e.T)
		e.discord.Limit(1_000_000, time.Second, 0)
	}
	return e.discord
}

// Telegram is the fake Telegram, started on first use.
func (e *Env) Telegram() *fake.Telegram {
	if e.telegram == nil {
		e.telegram = fake.NewTelegram(e.T)
	}
	return e.telegram
}

// WebhookURL is the fake Discord's URL for webhook id and token.
func (e *Env) WebhookURL(id, token string) string { return e.Discord().WebhookURL(id, token) }

// DiscordJob is a Discord job to the fake's webhook id/token, sealed with
// the env's keys.
func (e *Env) DiscordJob(id, token, text string) *herald.Job {
	e.T.Helper()
	return testkit.DiscordJob(e.T, e.Keys, e.WebhookURL(id, token), text)
}

// TelegramJob is a Telegram job for bot token and chat, sealed with the
// env's keys (the Telegram channel of Senders sends it to the fake).
func (e *Env) TelegramJob(token, chat, text string) *herald.Job {
	e.T.Helper()
	return testkit.TelegramJob(e.T, e.Keys, token, chat, text)
}

// DiscordChannel is the real Discord channel, allowed to send to the fake
// over plain HTTP on loopback.
func DiscordChannel(t testing.TB, client *http.Client) *channels.Discord {
	t.Helper()
	if client == nil {
		client = channels.NewHTTPClient(5 * time.Second)
	}
	d, err := channels.NewDiscord(channels.DiscordConfig{AllowedHosts: []string{"127.0.0.1"}, AllowHTTP: true}, client)
	if err != nil {
		t.Fatalf("relay: discord channel: %v", err)
	}
	return d
}

// TelegramChannel is the real Telegram channel pointed at f.
func TelegramChannel(t testing.TB, f *fake.Telegram, client *http.Client) *channels.Telegram {
	t.Helper()
	if client == nil {
		client = channels.NewHTTPClient(5 * time.Second)
	}
	tg, err := channels.NewTelegram(channels.TelegramConfig{APIBase: f.URL()}, client)
	if err != nil {
		t.Fatalf("relay: telegram channel: %v", err)
	}
	return tg
}

// Senders are the real channels pointed at the env's fakes.
func (e *Env) Senders() map[herald.Channel]consumer.Sender {
	e.T.Helper()
	return map[herald.Channel]consumer.Sender{
		herald.ChannelDiscord:  DiscordChannel(e.T, nil),
		herald.ChannelTelegram: TelegramChannel(e.T, e.Telegram(), nil),
	}
}

// Deps are the pool's collaborators from the env with the given senders
// (the env's Senders when nil).
func (e *Env) Deps(senders map[herald.Channel]consumer.Sender) consumer.Deps {
	e.T.Helper()
	if senders == nil {
		senders = e.Senders()
	}
	return consumer.Deps{JS: e.JS, Keys: e.Keys, Senders: senders, Status: e.Status, Logger: e.Log, Metrics: e.Metrics}
}

// Config is a pool configuration with short delays, for tests.
func Config() consumer.Config {
	return consumer.Config{
		Workers:      4,
		AckWait:      5 * time.Second,
		SendTimeout:  2 * time.Second,
		MinBackoff:   50 * time.Millisecond,
		MaxBackoff:   200 * time.Millisecond,
		DrainTimeout: 5 * time.Second,
	}
}

// StreamMsgs is how many messages the jobs stream holds.
func (e *Env) StreamMsgs() uint64 {
	e.T.Helper()
	return testkit.StreamMsgs(e.T, e.JS, herald.JobsStream)
}

// WaitFor polls cond for up to 15 s.
func (e *Env) WaitFor(what string, cond func() bool) {
	e.T.Helper()
	testkit.WaitFor(e.T, 15*time.Second, what, cond)
}
