package breaker

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/consumer"
	"github.com/heraldrelay/herald/internal/metrics"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Test credentials: none may appear in a log line or metric.
const (
	webhookID    = testkit.WebhookID
	webhookToken = testkit.WebhookToken
	botToken     = testkit.BotToken
	otherBot     = "987654321:OtherBotSecretTokenXXXyyyZZZ"
	chatID       = testkit.ChatID
)

// secrets are checked besides the kit's own (testkit.Secrets).
var secrets = []string{"OtherBotSecretToken"}

// Errors as the channels return them.
var (
	errTransient = &herald.DestinationError{Channel: herald.ChannelDiscord, StatusCode: 503, Description: "Service Unavailable"}
	errPermanent = herald.Permanent(&herald.DestinationError{Channel: herald.ChannelDiscord, StatusCode: 404, Code: 10015, Description: "Unknown Webhook"})
	err429       = &herald.RetryAfterError{After: 800 * time.Millisecond, Err: &herald.DestinationError{Channel: herald.ChannelDiscord, StatusCode: 429}}
)

// testSet is a Set with its logs and metrics.
type testSet struct {
	*Set
	t       *testing.T
	log     *slog.Logger // the kit's: checked for secrets at cleanup
	logs    *testkit.LogBuffer
	reg     *prometheus.Registry
	metrics *metrics.Metrics
}

func newTestSet(t *testing.T, cfg Config) *testSet {
	t.Helper()
	log, logs := testkit.Logger(t, secrets...)
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	s, err := New(cfg, log, m)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	x := &testSet{Set: s, t: t, log: log, logs: logs, reg: reg, metrics: m}
	t.Cleanup(func() { testkit.AssertNoSecrets(t, "metrics", x.metricsText(), secrets...) })
	return x
}

// metricsText is every metric in the registry, as text.
func (x *testSet) metricsText() string {
	x.t.Helper()
	var b strings.Builder
	mfs, err := x.reg.Gather()
	if err != nil {
		x.t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		b.WriteString(mf.String())
	}
	return b.String()
}

// gauge returns the number of channel's breakers in state.
func (x *testSet) gauge(channel, state string) int {
	return int(testutil.ToFloat64(x.metrics.BreakerState.WithLabelValues(channel, state)))
}

// changes returns how many of channel's breakers moved to state.
func (x *testSet) changes(channel, state string) int {
	return int(testutil.ToFloat64(x.metrics.BreakerChanges.WithLabelValues(channel, state)))
}

// gaugeTotal is the number of channel's breakers over every state.
func (x *testSet) gaugeTotal(channel string) int {
	return x.gauge(channel, labelClosed) + x.gauge(channel, labelHalfOpen) + x.gauge(channel, labelOpen)
}

// call runs one send for the given keys through the Set's middleware; h is
// the handler below it. It reports whether h was called.
func (x *testSet) call(keys []string, h func() error) (error, bool) {
	called := false
	mw := x.Middleware(func(herald.Notification) []string { return keys })
	err := mw(func(context.Context, *consumer.Delivery) error {
		called = true
		return h()
	})(context.Background(), &consumer.Delivery{Notification: herald.Notification{Channel: herald.ChannelDiscord}})
	return err, called
}

// fail sends once to keys with a transient failure, and checks it was made.
func (x *testSet) fail(keys ...string) {
	x.t.Helper()
	if _, called := x.call(keys, func() error { return errTransient }); !called {
		x.t.Fatalf("send to %v was not made", keys)
	}
}

// open opens the breakers of keys (Failures transient failures each).
func (x *testSet) open(keys ...string) {
	x.t.Helper()
	for _, k := range keys {
		for range x.cfg.Failures {
			x.fail(k)
		}
		if st := x.State(k); st.String() != "open" {
			x.t.Fatalf("breaker %s is %s after %d failures, want open", k, st, x.cfg.Failures)
		}
	}
}

// waitHalfOpen polls until key's breaker is half-open.
func (x *testSet) waitHalfOpen(key string) {
	x.t.Helper()
	testkit.WaitFor(x.t, 5*time.Second, key+" half-open", func() bool { return x.State(key).String() == "half-open" })
}

// wantCircuitOpen checks err is the middleware's refusal and returns its
// After.
func wantCircuitOpen(t *testing.T, err error) time.Duration {
	t.Helper()
	var ra *herald.RetryAfterError
	if !errors.As(err, &ra) || !errors.Is(err, herald.ErrCircuitOpen) {
		t.Fatalf("err = %v, want *RetryAfterError wrapping ErrCircuitOpen", err)
	}
	return ra.After
}
