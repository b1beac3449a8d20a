package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
)

func TestDecide(t *testing.T) {
	cfg := Config{MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, MaxRetryAfter: time.Minute}.withDefaults()
	tests := []struct {
		name    string
		err     error
		attempt int
		want    decision
	}{
		{"delivered", nil, 1, decision{action: actAck, state: herald.StateDelivered, outcome: outcomeDelivered}},
		{"retry after", &herald.RetryAfterError{After: 3 * time.Second}, 1,
			decision{action: actNak, delay: 3 * time.Second, state: herald.StateDelivering, outcome: outcomeRetry, reason: reasonRetryAfter}},
		{"retry after, wrapped", fmt.Errorf("discord: %w", &herald.RetryAfterError{After: 800 * time.Millisecond}), 7,
			decision{action: actNak, delay: 800 * time.Millisecond, state: herald.StateDelivering, outcome: outcomeRetry, reason: reasonRetryAfter}},
		{"retry after, capped", &herald.RetryAfterError{After: 24 * time.Hour}, 1,
			decision{action: actNak, delay: time.Minute, state: herald.StateDelivering, outcome: outcomeRetry, reason: reasonRetryAfter}},
		{"retry after without delay backs off", &herald.RetryAfterError{}, 2,
			decision{action: actNak, delay: 200 * time.Millisecond, state: herald.StateDelivering, outcome: outcomeRetry, reason: reasonRetryAfter}},
		{"permanent", errUnknownWebhook, 1, decision{action: actTerm, state: herald.StateFailed, outcome: outcomeFailed}},
		{"permanent, wrapped", fmt.Errorf("discord: post: %w", errUnknownWebhook), 3,
			decision{action: actTerm, state: herald.StateFailed, outcome: outcomeFailed}},
		{"transient, first", errTransient, 1,
			decision{action: actNak, delay: 100 * time.Millisecond, state: herald.StateDelivering, outcome: outcomeRetry, reason: reasonTransient}},
		{"transient, fourth", errTransient, 4,
			decision{action: actNak, delay: 800 * time.Millisecond, state: herald.StateDelivering, outcome: outcomeRetry, reason: reasonTransient}},
		{"transient, capped", errors.New("connection refused"), 40,
			decision{action: actNak, delay: time.Second, state: herald.StateDelivering, outcome: outcomeRetry, reason: reasonTransient}},
		{"timeout is transient", context.DeadlineExceeded, 1,
			decision{action: actNak, delay: 100 * time.Millisecond, state: herald.StateDelivering, outcome: outcomeRetry, reason: reasonTransient}},
		{"panic is transient", fmt.Errorf("consumer: %w: x", errPanic), 1,
			decision{action: actNak, delay: 100 * time.Millisecond, state: herald.StateDelivering, outcome: outcomeRetry, reason: reasonTransient}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := decide(tt.err, tt.attempt, cfg, 0.5); got != tt.want {
				t.Errorf("decide = %+v, want %+v", got, tt.want)
			}
		})
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
	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
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
	if got := termReason(errors.New("a\nb\t c")); got != "a b c" {
		t.Errorf("termReason = %q", got)
	}
	if got := termReason(errors.New(strings.Repeat("x", 500))); len(got) != maxTermReason {
		t.Errorf("len = %d, want %d", len(got), maxTermReason)
	}
}

func TestChannelLabel(t *testing.T) {
	tests := []struct {
		d    Delivery
		want string
	}{
		{Delivery{Job: herald.Job{Channel: herald.ChannelTelegram}, Subject: "herald.jobs.discord"}, "telegram"},
		{Delivery{Subject: "herald.jobs.discord"}, "discord"},
		{Delivery{Subject: "herald.jobs.pigeon"}, "unknown"},
		{Delivery{Job: herald.Job{Channel: "sms"}}, "unknown"},
	}
	for _, tt := range tests {
		if got := channelLabel(&tt.d); got != tt.want {
			t.Errorf("channelLabel(%+v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}
