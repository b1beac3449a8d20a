package consumer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"

	"github.com/heraldrelay/herald"
	"github.com/nats-io/nats.go"
)

func TestDecide(t *testing.T) {
	cfg := Config{MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, MaxRetryAfter: time.Minute, MaxAttempts: 5, MaxAge: time.Hour}.withDefaults()
	delivering := func(reason string, delay time.Duration, failures int) decision {
		return decision{action: actNak, delay: delay, state: herald.StateDelivering, outcome: outcomeRetry, reason: reason, failures: failures}
	}
	dead := func(cause string, failures int, why string) decision {
		return decision{action: actTerm, state: herald.StateDead, outcome: outcomeDead, reason: cause, failures: failures, why: why}
	}
	paced := &herald.RetryAfterError{After: 20 * time.Millisecond, Err: herald.ErrPaced}
	open := &herald.RetryAfterError{After: 5 * time.Second, Err: fmt.Errorf("breaker: discord:123: %w", herald.ErrCircuitOpen)}
	tests := []struct {
		name     string
		err      error
		failures int
		age      time.Duration
		want     decision
	}{
		{"delivered", nil, 0, 0, decision{action: actAck, state: herald.StateDelivered, outcome: outcomeDelivered}},
		{"delivered after failures", nil, 3, 0, decision{action: actAck, state: herald.StateDelivered, outcome: outcomeDelivered, failures: 3}},
		{"retry after", &herald.RetryAfterError{After: 3 * time.Second}, 0, 0, delivering(reasonRetryAfter, 3*time.Second, 0)},
		{"retry after, wrapped", fmt.Errorf("discord: %w", &herald.RetryAfterError{After: 800 * time.Millisecond}), 2, 0,
			delivering(reasonRetryAfter, 800*time.Millisecond, 2)},
		{"retry after, capped", &herald.RetryAfterError{After: 24 * time.Hour}, 0, 0, delivering(reasonRetryAfter, time.Minute, 0)},
		{"retry after without delay backs off", &herald.RetryAfterError{}, 1, 0, delivering(reasonRetryAfter, 200*time.Millisecond, 1)},
		{"retry after negative backs off", &herald.RetryAfterError{After: -time.Second}, 0, 0, delivering(reasonRetryAfter, 100*time.Millisecond, 0)},
		{"retry after uses no attempt at the budget's edge", &herald.RetryAfterError{After: time.Second}, 4, 0, delivering(reasonRetryAfter, time.Second, 4)},
		{"retry after inside the age budget", &herald.RetryAfterError{After: time.Second}, 0, 58 * time.Minute, delivering(reasonRetryAfter, time.Second, 0)},
		{"retry after past the age budget", &herald.RetryAfterError{After: 5 * time.Minute}, 2, 59*time.Minute + 30*time.Second,
			dead(CauseWaitBeyondMaxAge, 2, "asked to wait 1m0s, more than the 30s left of its 1h0m0s age budget: retry after 5m0s")},
		{"paced past the age budget", paced, 0, time.Hour, dead(CauseWaitBeyondMaxAge, 0, "asked to wait 0s, more than the 0s left of its 1h0m0s age budget: "+paced.Error())},
		{"paced", paced, 4, 0, delivering(reasonPaced, 20*time.Millisecond, 4)},
		{"paced, wrapped", fmt.Errorf("pacing: %w", paced), 0, 0, delivering(reasonPaced, 20*time.Millisecond, 0)},
		{"breaker open", open, 4, 0, delivering(reasonBreakerOpen, 5*time.Second, 4)},
		{"destination 429", &herald.RetryAfterError{After: time.Second, Err: &herald.DestinationError{StatusCode: 429}}, 0, 0,
			delivering(reasonRetryAfter, time.Second, 0)},
		{"permanent", errUnknownWebhook, 0, 0, dead(CausePermanent, 1, errUnknownWebhook.Error())},
		{"permanent, wrapped", fmt.Errorf("discord: post: %w", errUnknownWebhook), 2, 0,
			dead(CausePermanent, 3, "discord: post: "+errUnknownWebhook.Error())},
		{"undecodable", withCause(CauseUndecodable, errors.New("invalid job: bad")), 0, 0, dead(CauseUndecodable, 1, "invalid job: bad")},
		{"credentials", fmt.Errorf("x: %w", withCause(CauseCredentials, errors.New("wrong key"))), 0, 0, dead(CauseCredentials, 1, "x: wrong key")},
		{"transient, first", errTransient, 0, 0, delivering(reasonTransient, 100*time.Millisecond, 1)},
		{"transient, fourth", errTransient, 3, 0, delivering(reasonTransient, 800*time.Millisecond, 4)},
		{"transient, capped", errors.New("connection refused"), 3, time.Minute, delivering(reasonTransient, 800*time.Millisecond, 4)},
		{"timeout is transient", context.DeadlineExceeded, 0, 0, delivering(reasonTransient, 100*time.Millisecond, 1)},
		{"panic is transient", fmt.Errorf("consumer: %w: x", errPanic), 0, 0, delivering(reasonTransient, 100*time.Millisecond, 1)},
		{"budget spent", errTransient, 4, 0, dead(CauseBudgetExhausted, 5, "retry budget spent after 5 attempts: "+errTransient.Error())},
		{"budget overspent", errTransient, 9, 0, dead(CauseBudgetExhausted, 10, "retry budget spent after 10 attempts: "+errTransient.Error())},
		{"too old", errTransient, 0, time.Hour + time.Second, dead(CauseMaxAge, 1, "older than 1h0m0s: "+errTransient.Error())},
		{"exactly max age is not too old", errTransient, 0, time.Hour, delivering(reasonTransient, 100*time.Millisecond, 1)},
		{"reason is one line", errors.New("a\nb"), 4, 0, dead(CauseBudgetExhausted, 5, "retry budget spent after 5 attempts: a b")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := decide(tt.err, tt.failures, tt.age, cfg, newBackoff(cfg.MinBackoff, cfg.MaxBackoff, 0)); got != tt.want {
				t.Errorf("decide = %+v, want %+v", got, tt.want)
			}
		})
	}
	// The default budget: ten failures.
	def := Config{}.withDefaults()
	if got := decide(errTransient, 8, 0, def, newBackoff(def.MinBackoff, def.MaxBackoff, 0)); got.action != actNak {
		t.Errorf("9th failure with defaults: %+v, want a retry", got)
	}
	if got := decide(errTransient, 9, 0, def, newBackoff(def.MinBackoff, def.MaxBackoff, 0)); got.action != actTerm || got.reason != CauseBudgetExhausted {
		t.Errorf("10th failure with defaults: %+v, want budget_exhausted", got)
	}
}

func TestJobID(t *testing.T) {
	tests := []struct {
		own, msgID string
		seq        uint64
		want       string
	}{
		{"job-1", "msg-1", 5, "job-1"},
		{"", "msg-1", 5, "msg-1"},
		{"", "", 5, "seq-5"},
		{"", "has:colon", 6, "seq-6"},
		{"", strings.Repeat("x", 65), 7, "seq-7"},
		{"bad id!", "", 8, "seq-8"},
	}
	for _, tt := range tests {
		if got := jobID(tt.own, tt.msgID, tt.seq); got != tt.want {
			t.Errorf("jobID(%q, %q, %d) = %q, want %q", tt.own, tt.msgID, tt.seq, got, tt.want)
		}
	}
}

func TestChainOrder(t *testing.T) {
	var order []string
	mw := func(name string) Middleware {
		return func(next Handler) Handler {
			return func(ctx context.Context, d *Delivery) error {
				order = append(order, name+">")
				err := next(ctx, d)
				order = append(order, "<"+name)
				return err
			}
		}
	}
	h := chain(func(context.Context, *Delivery) error { order = append(order, "h"); return nil }, mw("a"), mw("b"))
	if err := h(context.Background(), &Delivery{}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(order, " "); got != "a> b> h <b <a" {
		t.Errorf("order = %q", got)
	}
}

func TestRecoverer(t *testing.T) {
	log, buf := testkit.Logger(t)
	tests := []struct {
		name     string
		panic    func()
		wantText string
	}{
		{"string with a secret", func() { panic("token " + webhookToken) }, "panic value of type string"},
		{"error with a secret", func() { panic(errors.New("bad url " + webhookToken)) }, "panic value of type *errors.errorString"},
		{"runtime error", func() {
			var m map[string]int
			m["x"] = 1
		}, "assignment to entry in nil map"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := recoverer(log)(func(context.Context, *Delivery) error { tt.panic(); return nil })
			err := h(context.Background(), &Delivery{Job: herald.Job{ID: "j1"}})
			if !errors.Is(err, errPanic) || errors.Is(err, herald.ErrPermanent) {
				t.Fatalf("err = %v, want a transient panic error", err)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("err = %q, want it to mention %q", err, tt.wantText)
			}
		})
	}
	h := recoverer(log)(func(context.Context, *Delivery) error { return errTransient })
	if err := h(context.Background(), &Delivery{}); err != errTransient {
		t.Errorf("no panic: err = %v, want the handler's", err)
	}
	assertNoSecrets(t, buf.String())
	if !strings.Contains(buf.String(), "goroutine") {
		t.Error("no stack logged")
	}
}

func TestTermReason(t *testing.T) {
	if got := termReason("a\nb\t c"); got != "a b c" {
		t.Errorf("termReason = %q", got)
	}
	if got := termReason(strings.Repeat("x", 500)); len(got) != maxTermReason {
		t.Errorf("len = %d, want %d", len(got), maxTermReason)
	}
	// Never cut inside a UTF-8 sequence.
	if got := oneLine("ab"+strings.Repeat("é", 10), 5); got != "abé" {
		t.Errorf("oneLine = %q, want %q", got, "abé")
	}
}

func TestBudgetStart(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	stored := created.Add(time.Second)
	replay := time.Date(2026, 2, 1, 0, 0, 0, 123456789, time.UTC)
	tests := []struct {
		name       string
		header     string
		created    time.Time
		want       time.Time
		fromHeader bool
	}{
		{"header wins", replay.Format(time.RFC3339Nano), created, replay, true},
		{"header without fraction", "2026-02-01T00:00:00Z", created, replay.Truncate(time.Second), true},
		{"created at", "", created, created, false},
		{"bad header ignored", "yesterday", created, created, false},
		{"stream time last", "", time.Time{}, stored, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := nats.Header{}
			if tt.header != "" {
				h.Set(BudgetStartHeader, tt.header)
			}
			got, fromHeader := budgetStart(h, tt.created, stored)
			if !got.Equal(tt.want) || fromHeader != tt.fromHeader {
				t.Errorf("budgetStart = %s, %v; want %s, %v", got, fromHeader, tt.want, tt.fromHeader)
			}
		})
	}
	if got, _ := budgetStart(nil, created, stored); !got.Equal(created) {
		t.Errorf("nil header: %s", got)
	}
}

func TestChannelLabel(t *testing.T) {
	tests := []struct {
		d    Delivery
		want string
	}{
		{Delivery{Job: herald.Job{Channel: herald.ChannelTelegram}, Subject: "herald.jobs.discord"}, "telegram"},
		{Delivery{Subject: "herald.jobs.discord"}, "discord"},
		{Delivery{Subject: "herald.jobs.telegram.01hzy3k9"}, "telegram"},
		{Delivery{Subject: "herald.jobs.pigeon.01hzy3k9"}, "unknown"},
		{Delivery{Subject: "herald.jobs.pigeon"}, "unknown"},
		{Delivery{Job: herald.Job{Channel: "sms"}}, "unknown"},
	}
	for _, tt := range tests {
		if got := channelLabel(&tt.d); got != tt.want {
			t.Errorf("channelLabel(%+v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}
