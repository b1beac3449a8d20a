// Package destmask names a job's destination for operators without
// revealing it: a Discord webhook by its id (which is not secret) and a
// short keyed hash of its token, a Telegram destination by keyed hashes of
// its bot token and chat id, a vault credential by a keyed hash of its id.
//
// The hashes are keyed, so that a mask cannot be reversed by trying every
// chat id, and the key is derived from the encryption key (see DeriveKey),
// so that every process holding the same keys (the console in `herald
// serve`, `herald dlq list --group`) shows the same masks. Plaintext
// credentials exist only in memory while a mask is computed.
package destmask

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"strings"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/crypto"
)

// Masks of destinations that cannot be named.
const (
	// Unopenable is the mask of a job whose credentials do not open with
	// the keys given.
	Unopenable = "sealed (does not open with these keys)"
	// Invalid is the mask of a credential that opens but is not a valid
	// destination (the workers dead-letter such jobs as permanent).
	Invalid = "invalid destination"
)

// hashLen is how many bytes of the HMAC a mask shows (8 hex digits): enough
// to tell an operator's destinations apart, too few to identify a secret.
const hashLen = 4

// Masker computes masks. It is safe for concurrent use.
type Masker struct {
	keys *crypto.Keyring
	key  []byte
}

// New returns a Masker that opens credentials with keys and hashes them
// under key (see DeriveKey).
func New(keys *crypto.Keyring, key []byte) *Masker { return &Masker{keys: keys, key: key} }

// DeriveKey derives the hashing key from an encryption key (the first of
// encryption.keys): HMAC-SHA256 of a fixed label under the key. Masks
// change when the first encryption key does.
func DeriveKey(encryptionKey string) []byte {
	m := hmac.New(sha256.New, []byte(encryptionKey))
	m.Write([]byte("herald destination mask"))
	return m.Sum(nil)
}

// hash is the short keyed hash of value, labelled so that a token and a
// chat id with the same text hash differently.
func (m *Masker) hash(label, value string) string {
	h := hmac.New(sha256.New, m.key)
	h.Write([]byte(label + "\x00" + value))
	return hex.EncodeToString(h.Sum(nil)[:hashLen])
}

// Mask returns job's destination mask:
//   - "webhook <id> #<hash>" for a Discord webhook (the hash covers host and
//     token, so two URLs differing in either differ);
//   - "bot #<hash> chat #<hash>" for Telegram;
//   - "credential #<hash>" for a job naming a vault credential;
//   - Unopenable or Invalid when it cannot say more.
func (m *Masker) Mask(job herald.Job) string {
	if job.CredentialID != "" {
		return "credential #" + m.hash("credential", job.CredentialID)
	}
	c := job.Credentials
	switch job.Channel {
	case herald.ChannelDiscord:
		raw, err := m.keys.Open(c.Webhook)
		if err != nil {
			return Unopenable
		}
		host, id, token, ok := webhookParts(raw)
		if !ok {
			return Invalid
		}
		return "webhook " + id + " #" + m.hash("discord", host+"/"+token)
	case herald.ChannelTelegram:
		token, err := m.keys.Open(c.BotToken)
		if err != nil {
			return Unopenable
		}
		chat, err := m.keys.Open(c.ChatID)
		if err != nil {
			return Unopenable
		}
		if strings.HasPrefix(chat, "@") {
			chat = strings.ToLower(chat)
		}
		return "bot #" + m.hash("telegram bot", token) + " chat #" + m.hash("telegram chat", chat)
	}
	return Invalid
}

// webhookParts finds the host, id and token of a Discord webhook URL
// (/api[/v<N>]/webhooks/<id>/<token>[/...]); the id must be digits. It
// never returns an error that could quote the URL.
func webhookParts(raw string) (host, id, token string, ok bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", "", "", false
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	for i := 0; i+2 < len(parts); i++ {
		if parts[i] == "webhooks" {
			id, token = parts[i+1], parts[i+2]
			break
		}
	}
	if id == "" || token == "" || strings.Trim(id, "0123456789") != "" {
		return "", "", "", false
	}
	return strings.ToLower(u.Host), id, token, true
}
