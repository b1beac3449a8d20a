package vault

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"fmt"
	"strings"
)

// Sizes of the sealed format.
const (
	// KeySize is the size of a vault key's material: AES-256.
	KeySize = 32
	// maxKeyIDLen bounds a key id, which every record repeats.
	maxKeyIDLen = 16
	nonceSize   = 12
	tagSize     = 16
)

// Key is one parsed vault key.
type Key struct {
	// ID names the key in the records it seals; it is not secret.
	ID  string
	raw []byte
}

// ParseKey parses a key written "kid:base64": kid is 1-16 of A-Z a-z 0-9 _ -,
// and the base64 (standard or url-safe, padded or not) decodes to exactly
// KeySize bytes. The error names what is wrong, never the key material.
func ParseKey(s string) (Key, error) {
	kid, b64, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return Key{}, fmt.Errorf("%w: want kid:base64(%d bytes)", ErrBadKey, KeySize)
	}
	if !validKeyID(kid) {
		return Key{}, fmt.Errorf("%w: key id must be 1-%d of A-Z a-z 0-9 _ -", ErrBadKey, maxKeyIDLen)
	}
	raw, err := decodeKey(b64)
	if err != nil || len(raw) != KeySize {
		return Key{}, fmt.Errorf("%w: key %s: the part after the colon must be the base64 of %d random bytes", ErrBadKey, kid, KeySize)
	}
	return Key{ID: kid, raw: raw}, nil
}

func decodeKey(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	enc := base64.RawStdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.RawURLEncoding
	}
	return enc.DecodeString(s)
}

func validKeyID(kid string) bool {
	if kid == "" || len(kid) > maxKeyIDLen {
		return false
	}
	for i := 0; i < len(kid); i++ {
		c := kid[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

var kidEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// GenerateKey returns a new key "kid:base64": a random key id ("k" and
// seven base32 characters, so that it cannot collide with an operator's
// "v1") and KeySize random bytes.
func GenerateKey() (string, error) {
	var id [5]byte
	material := make([]byte, KeySize)
	if _, err := rand.Read(id[:]); err != nil {
		return "", err
	}
	if _, err := rand.Read(material); err != nil {
		return "", err
	}
	kid := "k" + strings.ToLower(kidEncoding.EncodeToString(id[:]))[:7]
	return kid + ":" + base64.StdEncoding.EncodeToString(material), nil
}

// keySet seals with its first (newest) key and opens with whichever key a
// record names. It is immutable, so safe for concurrent use.
type keySet struct {
	ids   []string
	raw   [][]byte
	aeads map[string]cipher.AEAD
}

func newKeySet(specs []string) (*keySet, error) {
	if len(specs) == 0 {
		return nil, fmt.Errorf("%w: no key configured", ErrBadKey)
	}
	ks := &keySet{aeads: make(map[string]cipher.AEAD, len(specs))}
	for i, s := range specs {
		k, err := ParseKey(s)
		if err != nil {
			return nil, fmt.Errorf("vault key %d: %w", i+1, err)
		}
		if _, dup := ks.aeads[k.ID]; dup {
			return nil, fmt.Errorf("vault key %d: %w: key id %s is used twice", i+1, ErrBadKey, k.ID)
		}
		block, err := aes.NewCipher(k.raw)
		if err != nil {
			return nil, fmt.Errorf("vault key %d: %w", i+1, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("vault key %d: %w", i+1, err)
		}
		ks.ids = append(ks.ids, k.ID)
		ks.raw = append(ks.raw, k.raw)
		ks.aeads[k.ID] = aead
	}
	return ks, nil
}

// newest is the id of the key that seals.
func (ks *keySet) newest() string { return ks.ids[0] }

func (ks *keySet) has(kid string) bool {
	_, ok := ks.aeads[kid]
	return ok
}

// seal encrypts plain under the newest key with aad and returns the key id
// and base64(nonce || ciphertext || tag).
func (ks *keySet) seal(plain, aad []byte) (kid, sealed string, err error) {
	kid = ks.newest()
	buf := make([]byte, nonceSize, nonceSize+len(plain)+tagSize)
	if _, err := rand.Read(buf); err != nil {
		return "", "", fmt.Errorf("vault: read nonce: %w", err)
	}
	buf = ks.aeads[kid].Seal(buf, buf[:nonceSize], plain, aad)
	return kid, base64.StdEncoding.EncodeToString(buf), nil
}

// open decrypts what seal returned under key kid with aad. Errors are
// ErrUnknownKey (naming the key id, which is not secret) or ErrCorrupt.
func (ks *keySet) open(kid, sealed string, aad []byte) ([]byte, error) {
	aead, ok := ks.aeads[kid]
	if !ok {
		return nil, fmt.Errorf("%w: key id %q", ErrUnknownKey, clip(kid, maxKeyIDLen))
	}
	raw, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil || len(raw) < nonceSize+tagSize {
		return nil, ErrCorrupt
	}
	plain, err := aead.Open(nil, raw[:nonceSize], raw[nonceSize:], aad)
	if err != nil {
		return nil, ErrCorrupt
	}
	return plain, nil
}

// derive returns one 32-byte key per configured key, newest first, for
// purpose: HMAC-SHA256 of the purpose under the key's material.
func (ks *keySet) derive(purpose string) [][]byte {
	out := make([][]byte, len(ks.raw))
	for i, raw := range ks.raw {
		m := hmac.New(sha256.New, raw)
		m.Write([]byte("herald vault derived key\x00" + purpose))
		out[i] = m.Sum(nil)
	}
	return out
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
