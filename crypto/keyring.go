// Package crypto seals and opens credentials in the format Streaky Workers use
// (WebCrypto AES-256-GCM): the key is the first 32 characters of a secret taken
// as raw bytes, a sealed value is base64(IV(12) || ciphertext || tag(16)), with
// no additional data.
//
// A Keyring holds one or more keys so a key can be rotated: the first seals,
// every key may open.
package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Sizes of the sealed format.
const (
	KeySize   = 32 // AES-256
	NonceSize = 12 // GCM standard IV, as WebCrypto callers use
	TagSize   = 16 // WebCrypto's default tag length
)

// Errors returned by Open. Their texts are safe to show a client: they never
// include the input or a key.
var (
	ErrEncoding = errors.New("invalid encrypted data: not base64")
	ErrTooShort = errors.New("invalid encrypted data: too short")
	ErrDecrypt  = errors.New("decryption failed: wrong key or corrupted data")
	ErrNotUTF8  = errors.New("decryption failed: plaintext is not UTF-8")
)

// ErrBadKey is wrapped by the errors ValidateKey and NewKeyring return.
var ErrBadKey = errors.New("invalid encryption key")

// ValidateKey checks that secret can be a key: at least 32 characters, the
// first 32 of them ASCII. The error never includes the secret.
func ValidateKey(secret string) error {
	if utf8.RuneCountInString(secret) < KeySize {
		return fmt.Errorf("%w: it has %d characters, at least %d are needed", ErrBadKey, utf8.RuneCountInString(secret), KeySize)
	}
	for i := 0; i < KeySize; i++ {
		if secret[i] >= utf8.RuneSelf {
			return fmt.Errorf("%w: its first %d characters must be ASCII (the key is those characters taken as bytes)", ErrBadKey, KeySize)
		}
	}
	return nil
}

// Keyring seals with its first key and opens with any of its keys. It is safe
// for concurrent use.
type Keyring struct {
	aeads []cipher.AEAD
}

// NewKeyring builds a keyring from secrets, newest first. Each secret must pass
// ValidateKey; only its first 32 characters are used.
func NewKeyring(secrets ...string) (*Keyring, error) {
	if len(secrets) == 0 {
		return nil, fmt.Errorf("%w: no key configured", ErrBadKey)
	}
	k := &Keyring{}
	for i, s := range secrets {
		if err := ValidateKey(s); err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		block, err := aes.NewCipher([]byte(s[:KeySize]))
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		k.aeads = append(k.aeads, aead)
	}
	return k, nil
}

// Len returns the number of keys.
func (k *Keyring) Len() int { return len(k.aeads) }

// Seal encrypts plaintext under the first key with a fresh random IV and
// returns standard padded base64, exactly as a Streaky Worker does.
func (k *Keyring) Seal(plaintext string) (string, error) {
	buf := make([]byte, NonceSize, NonceSize+len(plaintext)+TagSize)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("crypto: read nonce: %w", err)
	}
	buf = k.aeads[0].Seal(buf, buf[:NonceSize], []byte(plaintext), nil)
	return base64.StdEncoding.EncodeToString(buf), nil
}

// Open decodes and decrypts a sealed value with whichever key opens it and
// returns the UTF-8 plaintext. It accepts standard or url-safe base64, padded
// or not, with surrounding whitespace trimmed. Errors are ErrEncoding,
// ErrTooShort, ErrDecrypt or ErrNotUTF8.
func (k *Keyring) Open(sealed string) (string, error) {
	raw, err := decode(sealed)
	if err != nil {
		return "", err
	}
	if len(raw) < NonceSize+TagSize+1 {
		return "", ErrTooShort
	}
	nonce, box := raw[:NonceSize], raw[NonceSize:]
	for _, aead := range k.aeads {
		// Open into a fresh buffer: an in-place open would clobber box for the
		// next key on failure.
		plain, err := aead.Open(nil, nonce, box, nil)
		if err != nil {
			continue
		}
		if !utf8.Valid(plain) {
			return "", ErrNotUTF8
		}
		return string(plain), nil
	}
	return "", ErrDecrypt
}

// decode accepts the encodings Streaky's proxy accepts (padded standard, padded
// url-safe) and, harmlessly, their unpadded forms.
func decode(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, ErrTooShort
	}
	enc := base64.StdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.URLEncoding
	}
	if !strings.HasSuffix(s, "=") && len(s)%4 != 0 {
		enc = enc.WithPadding(base64.NoPadding)
	}
	raw, err := enc.Strict().DecodeString(s)
	if err != nil {
		return nil, ErrEncoding
	}
	return raw, nil
}
