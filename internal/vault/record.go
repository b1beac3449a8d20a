package vault

import (
	"crypto/sha256"
	"encoding/json"
	"time"

	"github.com/heraldrelay/herald"
)

// recordVersion is the version of the stored record format.
const recordVersion = 1

// record is a credential as stored under credentialKey(id). Nothing in it is
// plaintext but its metadata.
type record struct {
	Version int            `json:"v"`
	Channel herald.Channel `json:"channel"`
	// KID names the key that sealed Sealed.
	KID string `json:"kid"`
	// Sealed is base64(nonce || ciphertext || tag) of the target's JSON,
	// with credentialAAD(id, channel) as additional data.
	Sealed    string    `json:"sealed"`
	CreatedAt time.Time `json:"created_at"`
	// Owner is StoreOptions.Owner: the keyed id of the API secret that
	// stored the credential, never the secret. Empty: the credential
	// belongs to nobody and its id is a bearer capability (registrations,
	// and records stored before owners were recorded).
	Owner string `json:"owner,omitempty"`
	// RequireVerification says jobs may use the credential only once it is
	// verified (whatever Config.RequireVerification says later).
	RequireVerification bool      `json:"require_verification,omitempty"`
	Verified            bool      `json:"verified,omitempty"`
	VerifiedAt          time.Time `json:"verified_at,omitzero"`
	// PendingUntil is when an unverified credential that needs verification
	// is deleted; zero when it does not apply.
	PendingUntil time.Time `json:"pending_until,omitzero"`
	// Code is the verification code sent and not yet confirmed, sealed.
	Code *sealedCode `json:"code,omitempty"`
	// WrongCodes counts wrong codes so far, across resends.
	WrongCodes int `json:"wrong_codes,omitempty"`
}

// sealedCode is a verification code sealed with codeAAD(id).
type sealedCode struct {
	KID       string    `json:"kid"`
	Sealed    string    `json:"sealed"`
	ExpiresAt time.Time `json:"expires_at"`
}

// secretRecord is a read-once secret as stored under secretKey(id).
type secretRecord struct {
	KID       string    `json:"kid"`
	Sealed    string    `json:"sealed"`
	ExpiresAt time.Time `json:"expires_at"`
}

// plainTarget is the sealed plaintext of a credential. herald.Target
// marshals as "[redacted]" on purpose, so it has a type of its own here.
type plainTarget struct {
	Webhook  string `json:"webhook,omitempty"`
	BotToken string `json:"bot_token,omitempty"`
	ChatID   string `json:"chat_id,omitempty"`
}

// Keys of the buckets.
func credentialKey(id string) string { return "c." + id }
func secretKey(id string) string     { return "s." + id }

// Additional data: each sealed value is bound to what it is and to its id,
// so a value copied under another id or into another field does not open.
func credentialAAD(id string, c herald.Channel) []byte {
	return []byte("herald vault credential\x00" + id + "\x00" + string(c))
}
func codeAAD(id string) []byte   { return []byte("herald vault code\x00" + id) }
func secretAAD(id string) []byte { return []byte("herald vault secret\x00" + id) }

func encodeTarget(t herald.Target) ([]byte, error) {
	return json.Marshal(plainTarget{Webhook: t.WebhookURL, BotToken: t.BotToken, ChatID: t.ChatID})
}

func decodeTarget(b []byte) (herald.Target, error) {
	var p plainTarget
	if err := json.Unmarshal(b, &p); err != nil {
		return herald.Target{}, ErrCorrupt
	}
	return herald.Target{WebhookURL: p.Webhook, BotToken: p.BotToken, ChatID: p.ChatID}, nil
}

// wipe overwrites b: plaintext bytes should not outlive their use.
func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}

// digest is SHA-256 of b, for comparisons whose timing must not depend on
// the inputs' lengths.
func digest(b []byte) []byte {
	sum := sha256.Sum256(b)
	return sum[:]
}
