package testkit

import (
	"testing"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/crypto"
)

// Credentials every test may use. Logs written through Logger are checked
// for all of them.
const (
	Key          = "0123456789abcdef0123456789abcdef-test-key"
	OtherKey     = "fedcba9876543210fedcba9876543210-other-key"
	WebhookID    = "112233445566778899"
	WebhookToken = "WebhookSecretTokenAbcDef_123-xyz"
	BotToken     = "123456789:BotSecretTokenAAAbbbCCCdddEEE"
	ChatID       = "-1009876543210"
)

// Secrets is what no log line, error text or response may contain.
var Secrets = []string{Key[:crypto.KeySize], OtherKey[:crypto.KeySize], WebhookToken, BotToken, ChatID, "BotSecretToken"}

// Keyring returns a keyring of the given keys (Key when none).
func Keyring(t testing.TB, keys ...string) *crypto.Keyring {
	t.Helper()
	if len(keys) == 0 {
		keys = []string{Key}
	}
	k, err := crypto.NewKeyring(keys...)
	if err != nil {
		t.Fatalf("testkit: keyring: %v", err)
	}
	return k
}

// Seal seals plaintext with keys, failing the test on error.
func Seal(t testing.TB, keys *crypto.Keyring, plaintext string) string {
	t.Helper()
	s, err := keys.Seal(plaintext)
	if err != nil {
		t.Fatalf("testkit: seal: %v", err)
	}
	return s
}

// DiscordJob is a Discord job to webhookURL, sealed with keys.
func DiscordJob(t testing.TB, keys *crypto.Keyring, webhookURL, text string) *herald.Job {
	t.Helper()
	return &herald.Job{
		Channel:     herald.ChannelDiscord,
		Source:      "test",
		Credentials: herald.Credentials{Webhook: Seal(t, keys, webhookURL)},
		Message:     herald.Message{Title: "Test", Text: text},
	}
}

// TelegramJob is a Telegram job for bot token and chat, sealed with keys.
func TelegramJob(t testing.TB, keys *crypto.Keyring, token, chat, text string) *herald.Job {
	t.Helper()
	return &herald.Job{
		Channel:     herald.ChannelTelegram,
		Source:      "test",
		Credentials: herald.Credentials{BotToken: Seal(t, keys, token), ChatID: Seal(t, keys, chat)},
		Message:     herald.Message{Title: "Test", Text: text},
	}
}
