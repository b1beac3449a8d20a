package destmask

import (
	"strings"
	"testing"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/testkit"
)

const (
	webhookA = "https://discord.com/api/webhooks/123456789012345678/SECRET-token-a"
	webhookB = "https://discord.com/api/webhooks/123456789012345678/SECRET-token-b"
	botToken = "123456:SECRET-bot-token"
	chatID   = "-1009876543210"
)

func TestMask(t *testing.T) {
	keys := testkit.Keyring(t)
	m := New(keys, DeriveKey(testkit.Key))
	// The same destination sealed twice (two ciphertexts) masks the same,
	// in another Masker with the same key too.
	a1 := m.Mask(*testkit.DiscordJob(t, keys, webhookA, "x"))
	a2 := New(keys, DeriveKey(testkit.Key)).Mask(*testkit.DiscordJob(t, keys, webhookA, "y"))
	b := m.Mask(*testkit.DiscordJob(t, keys, webhookB, "x"))
	if a1 != a2 {
		t.Errorf("one webhook masks as %q and %q", a1, a2)
	}
	if !strings.HasPrefix(a1, "webhook 123456789012345678 #") || len(a1) != len("webhook 123456789012345678 #")+8 {
		t.Errorf("mask %q, want the webhook id and an 8-digit hash", a1)
	}
	if a1 == b {
		t.Errorf("two tokens of one webhook id mask alike: %q", a1)
	}
	// Another key, another hash.
	if other := New(keys, DeriveKey("another key")).Mask(*testkit.DiscordJob(t, keys, webhookA, "x")); other == a1 {
		t.Errorf("the mask does not depend on the key: %q", other)
	}
	tg := m.Mask(*testkit.TelegramJob(t, keys, botToken, chatID, "x"))
	if !strings.HasPrefix(tg, "bot #") || !strings.Contains(tg, " chat #") {
		t.Errorf("telegram mask %q", tg)
	}
	cred := m.Mask(herald.Job{Channel: herald.ChannelDiscord, CredentialID: "cred_SECRETISH"})
	if !strings.HasPrefix(cred, "credential #") {
		t.Errorf("credential mask %q", cred)
	}
	bad := m.Mask(*testkit.DiscordJob(t, testkit.Keyring(t, testkit.OtherKey), webhookA, "x"))
	if bad != Unopenable {
		t.Errorf("a job sealed under another key masks as %q, want %q", bad, Unopenable)
	}
	if inv := m.Mask(*testkit.DiscordJob(t, keys, "https://discord.com/api/SECRET", "x")); inv != Invalid {
		t.Errorf("a URL that is no webhook masks as %q", inv)
	}
	for _, s := range []string{a1, b, tg, cred} {
		testkit.AssertNoSecrets(t, "mask", s, "SECRET", "9876543210", "123456:", "cred_")
	}
}
