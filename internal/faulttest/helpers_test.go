package faulttest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/channels"
	"github.com/heraldrelay/herald/consumer"
	"github.com/heraldrelay/herald/crypto"
	"github.com/heraldrelay/herald/internal/fake"
	"github.com/heraldrelay/herald/internal/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// Secrets of the tests; no log line may contain them.
const (
	testKey      = "0123456789abcdef0123456789abcdef-fault-key"
	webhookID    = "112233445566778899"
	webhookToken = "FaultWebhookToken_abc-DEF_123"
	hungID       = "998877665544332211"
	hungToken    = "HungWebhookToken_xyz-UVW_987"
)

// logBuffer is a goroutine-safe log sink, shown when a test fails.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newLogger returns a logger whose output is checked for secrets at cleanup
// and printed when the test failed.
func newLogger(t *testing.T) *slog.Logger {
	t.Helper()
	b := &logBuffer{}
	t.Cleanup(func() {
		out := b.String()
		for _, s := range []string{webhookToken, hungToken, testKey[:crypto.KeySize]} {
			if strings.Contains(out, s) {
				t.Errorf("a secret leaked into the logs")
			}
		}
		if t.Failed() {
			const max = 20000
			if len(out) > max {
				out = "…" + out[len(out)-max:]
			}
			t.Logf("logs:\n%s", out)
		}
	})
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func newKeys(t *testing.T) *crypto.Keyring {
	t.Helper()
	k, err := crypto.NewKeyring(testKey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newDiscord starts a fake Discord that never rate-limits and the real
// Discord channel pointed at it.
func newDiscord(t *testing.T) (*fake.Discord, *channels.Discord) {
	t.Helper()
	f := fake.NewDiscord(t)
	f.Limit(1_000_000, time.Second, 0)
	d, err := channels.NewDiscord(channels.DiscordConfig{AllowedHosts: []string{"127.0.0.1"}, AllowHTTP: true}, channels.NewHTTPClient(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return f, d
}

// marker is the text that identifies job n in a delivered message.
func marker(prefix string, n int) string { return fmt.Sprintf("[%s-%05d]", prefix, n) }

// key is how deliveries names job n's marker.
func key(prefix string, n int) string { return fmt.Sprintf("%s-%05d", prefix, n) }

var markerRE = regexp.MustCompile(`\[([a-z]+)-(\d{5})\]`)

// deliveries counts the requests to webhook id per job marker, keyed as key
// does. Only the healthy webhooks are counted by the tests, and the fake
// answers every one of their requests with success.
func deliveries(f *fake.Discord, id string) map[string]int {
	got := make(map[string]int)
	for _, r := range f.Requests() {
		if r.WebhookID != id {
			continue
		}
		for _, m := range markerRE.FindAllSubmatch(r.Raw, 1) {
			got[string(m[1])+"-"+string(m[2])]++
		}
	}
	return got
}

// discordJob is a Discord job to webhookURL whose text carries text.
func discordJob(t *testing.T, keys *crypto.Keyring, webhookURL, text string) *herald.Job {
	t.Helper()
	sealed, err := keys.Seal(webhookURL)
	if err != nil {
		t.Fatal(err)
	}
	return &herald.Job{
		Channel:     herald.ChannelDiscord,
		Source:      "faulttest",
		Credentials: herald.Credentials{Webhook: sealed},
		Message:     herald.Message{Title: "Fault test", Text: text},
	}
}

// startPool runs a consumer.Pool until the test ends; the cleanup stops it
// (before the connections and servers registered earlier are closed).
func startPool(t *testing.T, cfg consumer.Config, deps consumer.Deps) *consumer.Pool {
	t.Helper()
	if deps.Metrics == nil {
		deps.Metrics = metrics.New(prometheus.NewRegistry())
	}
	p, err := consumer.New(cfg, deps)
	if err != nil {
		t.Fatalf("consumer.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("pool Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("pool Run did not return after cancel")
		}
	})
	return p
}

// waitFor polls cond every 20 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func hostPort(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
