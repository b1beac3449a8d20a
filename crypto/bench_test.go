package crypto_test

import (
	"testing"

	"github.com/heraldrelay/herald/crypto"
)

// BenchmarkOpen opens one credential in the Streaky format (base64 of IV ||
// ciphertext || tag), as the ingest does to check a job and a worker does to
// send it: a Discord webhook URL sealed with the keyring's first key, the
// same after a key rotation (the first key fails, the second opens), and the
// first Streaky WebCrypto vector.
//
//	go test ./crypto -run '^$' -bench Open -benchmem
func BenchmarkOpen(b *testing.B) {
	const (
		newKey  = "0123456789abcdef0123456789abcdef"
		oldKey  = "fedcba9876543210fedcba9876543210"
		webhook = "https://discord.com/api/webhooks/112233445566778899/WebhookSecretTokenAbcDef_123-xyz0123456789abcdefghijklmnopqrstuvwxyzABCDEF"
	)
	ring, err := crypto.NewKeyring(newKey, oldKey)
	if err != nil {
		b.Fatal(err)
	}
	old, err := crypto.NewKeyring(oldKey)
	if err != nil {
		b.Fatal(err)
	}
	sealed, err := ring.Seal(webhook)
	if err != nil {
		b.Fatal(err)
	}
	rotated, err := old.Seal(webhook)
	if err != nil {
		b.Fatal(err)
	}
	v := loadVectors(b)[0]
	vring, err := crypto.NewKeyring(v.Key)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name   string
		ring   *crypto.Keyring
		sealed string
	}{
		{"webhook", ring, sealed},
		{"rotated", ring, rotated},
		{"streaky-vector", vring, v.Ciphertext},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.ring.Open(bc.sealed); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
