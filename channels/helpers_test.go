package channels

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/fake"
)

// Test credentials: distinctive enough that finding them in any text is a leak.
const (
	testWebhookID    = "112233445566778899"
	testWebhookToken = "WhTok_SeCrEt-9f8e7d6c5b4a"
	testBotToken     = "7654321:TgTok_SeCrEt-a1b2c3d4e5f6"
	testChatID       = "-1009876543210"
)

// testDiscordConfig widens the allow-list to the loopback fake, the only way
// tests reach it.
func testDiscordConfig() DiscordConfig {
	return DiscordConfig{AllowedHosts: []string{"127.0.0.1"}, AllowHTTP: true}
}

func newTestDiscord(t testing.TB, cfg DiscordConfig, client *http.Client) *Discord {
	t.Helper()
	d, err := NewDiscord(cfg, client)
	if err != nil {
		t.Fatalf("NewDiscord: %v", err)
	}
	return d
}

func newTestTelegram(t testing.TB, base string, client *http.Client) *Telegram {
	t.Helper()
	tg, err := NewTelegram(TelegramConfig{APIBase: base}, client)
	if err != nil {
		t.Fatalf("NewTelegram: %v", err)
	}
	return tg
}

// streakyMessage is the Message Herald builds from a Streaky request, matching
// what Streaky's proxy sends (CONTRACT.md §5).
func streakyMessage(username string, streak int, text string, ts *time.Time) herald.Message {
	color := 16739947
	return herald.Message{
		Title:    "⚠️ GitHub Streak Alert",
		Text:     text,
		Color:    &color,
		Username: "Streaky Bot",
		Fields: []herald.Field{
			{Icon: "👤", Name: "GitHub Username", Value: username, Inline: true},
			{Icon: "🔥", Name: "Current Streak", Value: fmt.Sprintf("%d days", streak), Inline: true},
		},
		Footer:    "Streaky - Never lose your GitHub streak",
		Timestamp: ts,
	}
}

func discordNotification(webhookURL string, m herald.Message) herald.Notification {
	return herald.Notification{JobID: "job1", Channel: herald.ChannelDiscord, Target: herald.Target{WebhookURL: webhookURL}, Message: m}
}

func telegramNotification(token, chat string, m herald.Message) herald.Notification {
	return herald.Notification{JobID: "job1", Channel: herald.ChannelTelegram, Target: herald.Target{BotToken: token, ChatID: chat}, Message: m}
}

func always(r fake.Response) func(fake.DiscordRequest, int) fake.Response {
	return func(fake.DiscordRequest, int) fake.Response { return r }
}

func alwaysTelegram(r fake.Response) func(fake.TelegramRequest, int) fake.Response {
	return func(fake.TelegramRequest, int) fake.Response { return r }
}

// assertNoSecrets fails when err, any error it wraps, or its formatted forms
// contain one of secrets, or when a *url.Error (whose text is the URL) is
// reachable.
func assertNoSecrets(t testing.TB, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		return
	}
	texts := []string{fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err), fmt.Sprintf("%q", err)}
	walk := []error{err}
	for len(walk) > 0 {
		e := walk[0]
		walk = walk[1:]
		texts = append(texts, e.Error())
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			if next := u.Unwrap(); next != nil {
				walk = append(walk, next)
			}
		case interface{ Unwrap() []error }:
			walk = append(walk, u.Unwrap()...)
		}
	}
	for _, s := range texts {
		for _, sec := range secrets {
			if sec != "" && strings.Contains(s, sec) {
				t.Errorf("error text leaks a secret (%q): %s", sec, s)
			}
		}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		t.Errorf("a *url.Error is reachable from %v", err)
	}
}
