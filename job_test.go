package herald_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
)

func validJob() herald.Job {
	return herald.Job{
		Version:     herald.JobVersion,
		ID:          "job-1",
		Channel:     herald.ChannelDiscord,
		Credentials: herald.Credentials{Webhook: "sealed"},
		Message:     herald.Message{Title: "t"},
	}
}

func TestJobValidate(t *testing.T) {
	red := 0xFF0000
	tooRed := 0x1000000
	tests := []struct {
		name    string
		mutate  func(*herald.Job)
		wantErr string
	}{
		{"valid discord", func(*herald.Job) {}, ""},
		{"valid telegram", func(j *herald.Job) {
			j.Channel = herald.ChannelTelegram
			j.Credentials = herald.Credentials{BotToken: "a", ChatID: "b"}
		}, ""},
		{"no id is fine", func(j *herald.Job) { j.ID = "" }, ""},
		{"colour", func(j *herald.Job) { j.Message.Color = &red }, ""},
		{"version", func(j *herald.Job) { j.Version = 2 }, "unsupported version 2"},
		{"channel", func(j *herald.Job) { j.Channel = "sms" }, `unknown channel "sms"`},
		{"no webhook", func(j *herald.Job) { j.Credentials.Webhook = "" }, "credentials.webhook"},
		{"no token", func(j *herald.Job) {
			j.Channel = herald.ChannelTelegram
			j.Credentials = herald.Credentials{ChatID: "b"}
		}, "credentials.bot_token"},
		{"no chat", func(j *herald.Job) {
			j.Channel = herald.ChannelTelegram
			j.Credentials = herald.Credentials{BotToken: "a"}
		}, "credentials.chat_id"},
		{"empty message", func(j *herald.Job) { j.Message = herald.Message{Text: "  "} }, "title or a text"},
		{"field", func(j *herald.Job) { j.Message.Fields = []herald.Field{{Name: "a"}} }, "fields[0]"},
		{"colour range", func(j *herald.Job) { j.Message.Color = &tooRed }, "message.color"},
		{"bad id", func(j *herald.Job) { j.ID = "a b" }, "id must be"},
		{"long id", func(j *herald.Job) { j.ID = strings.Repeat("a", 65) }, "id must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := validJob()
			tt.mutate(&j)
			err := j.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, herald.ErrInvalidJob) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want ErrInvalidJob mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestIDs(t *testing.T) {
	a, b := herald.NewID(), herald.NewID()
	if a == b || !herald.ValidID(a) || len(a) != 26 {
		t.Fatalf("NewID: %q %q", a, b)
	}
	k1, k2 := herald.IDFromKey("client-a", "key"), herald.IDFromKey("client-a", "key")
	if k1 != k2 || !herald.ValidID(k1) {
		t.Fatalf("IDFromKey not stable: %q %q", k1, k2)
	}
	if herald.IDFromKey("client-b", "key") == k1 {
		t.Fatal("IDFromKey ignores the scope")
	}
}

func TestErrors(t *testing.T) {
	de := &herald.DestinationError{Channel: herald.ChannelDiscord, StatusCode: 404, Code: 10015, Description: "Unknown Webhook"}
	if got := de.Error(); got != "Discord API error: 404 Not Found - Unknown Webhook (code 10015)" {
		t.Errorf("Error() = %q", got)
	}
	perm := fmt.Errorf("send: %w", herald.Permanent(de))
	if !errors.Is(perm, herald.ErrPermanent) || herald.StatusCode(perm) != 404 {
		t.Errorf("Permanent wrapping lost: %v", perm)
	}
	if herald.Permanent(nil) != nil {
		t.Error("Permanent(nil) != nil")
	}
	ra := fmt.Errorf("send: %w", &herald.RetryAfterError{After: 800 * time.Millisecond, Err: &herald.DestinationError{Channel: herald.ChannelTelegram, StatusCode: 429}})
	var got *herald.RetryAfterError
	if !errors.As(ra, &got) || got.After != 800*time.Millisecond || errors.Is(ra, herald.ErrPermanent) || herald.StatusCode(ra) != 429 {
		t.Errorf("RetryAfterError: %v", ra)
	}
	if herald.StatusCode(errors.New("x")) != 0 {
		t.Error("StatusCode of a plain error")
	}
}

func TestTargetNeverPrints(t *testing.T) {
	secret := "https://discord.com/api/webhooks/1/very-secret-token"
	n := herald.Notification{JobID: "j", Target: herald.Target{WebhookURL: secret, BotToken: "1:tok", ChatID: "-100"}}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "target", n.Target, "n", n)
	out := fmt.Sprintf("%v %+v %#v %s %q", n.Target, n.Target, n.Target, n.Target, n.Target) + fmt.Sprint(n) + fmt.Sprintf("%+v", n) + logs.String()
	for _, s := range []string{"very-secret-token", "1:tok", "-100"} {
		if strings.Contains(out, s) {
			t.Fatalf("target leaked %q in %s", s, out)
		}
	}
}

func TestStateFinal(t *testing.T) {
	for s, final := range map[herald.State]bool{
		herald.StateQueued: false, herald.StateDelivering: false,
		herald.StateDelivered: true, herald.StateFailed: true, herald.StateDead: true,
	} {
		if s.Final() != final {
			t.Errorf("%s.Final() = %v", s, !final)
		}
	}
	if herald.JobSubject(herald.ChannelTelegram) != "herald.jobs.telegram" || herald.DeadLetterSubject(herald.ChannelDiscord) != "herald.dlq.discord" {
		t.Error("subjects")
	}
}
