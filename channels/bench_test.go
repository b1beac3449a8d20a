package channels

import (
	"context"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/fake"
)

// BenchmarkDiscordRequest measures building a Discord request body.
func BenchmarkDiscordRequest(b *testing.B) {
	d := newTestDiscord(b, DiscordConfig{}, nil)
	ts := time.Now()
	m := streakyMessage("octocat", 42, "You haven't committed today! Keep your streak going 🔥", &ts)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.requestBody(m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTelegramRequest measures rendering the HTML and building a
// Telegram request body.
func BenchmarkTelegramRequest(b *testing.B) {
	tg := newTestTelegram(b, "", nil)
	m := streakyMessage("octocat", 42, "You haven't committed today! Keep your streak going 🔥 <&>", nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tg.requestBody(testChatID, renderTelegramHTML(m)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDiscordSend measures one full Send against the fake over loopback.
func BenchmarkDiscordSend(b *testing.B) {
	f := fake.NewDiscord(b)
	d := newTestDiscord(b, testDiscordConfig(), nil)
	n := discordNotification(f.WebhookURL(testWebhookID, testWebhookToken), streakyMessage("octocat", 42, "Keep it going", nil))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Send(ctx, n); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTelegramSend measures one full Send against the fake over loopback.
func BenchmarkTelegramSend(b *testing.B) {
	f := fake.NewTelegram(b)
	tg := newTestTelegram(b, f.URL(), nil)
	n := telegramNotification(testBotToken, testChatID, streakyMessage("octocat", 42, "Keep it going", nil))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := tg.Send(ctx, n); err != nil {
			b.Fatal(err)
		}
	}
}
