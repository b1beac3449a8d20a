package crypto_test

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/heraldrelay/herald/crypto"
)

type vector struct {
	Name         string `json:"name"`
	Key          string `json:"key"`
	EffectiveKey string `json:"effective_key"`
	Plaintext    string `json:"plaintext"`
	IVHex        string `json:"iv_hex"`
	Ciphertext   string `json:"ciphertext"`
}

// loadVectors reads the WebCrypto test vectors (testdata/streaky).
func loadVectors(t testing.TB) []vector {
	t.Helper()
	path := filepath.Join("..", "testdata", "streaky", "vectors.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read Streaky vectors: %v", err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	return vs
}

func TestOpenStreakyVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			k, err := crypto.NewKeyring(v.Key)
			if err != nil {
				t.Fatal(err)
			}
			got, err := k.Open(v.Ciphertext)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if got != v.Plaintext {
				t.Fatalf("Open = %q, want %q", got, v.Plaintext)
			}
			// The vector's IV is its first 12 bytes.
			raw, _ := base64.URLEncoding.DecodeString(strings.NewReplacer("+", "-", "/", "_").Replace(v.Ciphertext))
			if hex.EncodeToString(raw[:crypto.NonceSize]) != v.IVHex {
				t.Fatalf("iv = %x, want %s", raw[:crypto.NonceSize], v.IVHex)
			}
			// Unpadded and whitespace-wrapped forms open too.
			if got, err := k.Open(" " + strings.TrimRight(v.Ciphertext, "=") + "\n"); err != nil || got != v.Plaintext {
				t.Fatalf("unpadded Open = %q, %v", got, err)
			}
		})
	}
}

func TestSealOpenRoundTripAndRotation(t *testing.T) {
	oldKey := "old-key-old-key-old-key-old-key-"
	newKey := "new-key-new-key-new-key-new-key-"
	old, _ := crypto.NewKeyring(oldKey)
	sealedOld, err := old.Seal("https://discord.com/api/webhooks/1/abc")
	if err != nil {
		t.Fatal(err)
	}
	ring, err := crypto.NewKeyring(newKey, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ring.Open(sealedOld); err != nil || got != "https://discord.com/api/webhooks/1/abc" {
		t.Fatalf("rotated ring cannot open old value: %q %v", got, err)
	}
	sealedNew, _ := ring.Seal("hello")
	if _, err := old.Open(sealedNew); !errors.Is(err, crypto.ErrDecrypt) {
		t.Fatalf("old ring opened a value sealed with the new key: %v", err)
	}
	newOnly, _ := crypto.NewKeyring(newKey)
	if got, err := newOnly.Open(sealedNew); err != nil || got != "hello" {
		t.Fatalf("first key does not seal: %q %v", got, err)
	}
	a, _ := ring.Seal("same")
	b, _ := ring.Seal("same")
	if a == b {
		t.Fatal("two seals of the same plaintext are equal: IV reused")
	}
}

func TestOpenErrors(t *testing.T) {
	k, _ := crypto.NewKeyring("test-encryption-key-32-chars!!!!")
	other, _ := crypto.NewKeyring("0123456789abcdef0123456789abcdef")
	sealed, _ := other.Seal("secret")
	notUTF8 := func() string {
		s, _ := k.Seal(string([]byte{0xff, 0xfe}))
		return s
	}()
	tests := []struct {
		name    string
		in      string
		wantErr error
	}{
		{"empty", "", crypto.ErrTooShort},
		{"not base64", "!!!not base64!!!", crypto.ErrEncoding},
		{"too short", base64.StdEncoding.EncodeToString(make([]byte, 20)), crypto.ErrTooShort},
		{"wrong key", sealed, crypto.ErrDecrypt},
		{"tampered", tamper(sealed), crypto.ErrDecrypt},
		{"not utf8", notUTF8, crypto.ErrNotUTF8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := k.Open(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Open error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func tamper(s string) string {
	raw, _ := base64.StdEncoding.DecodeString(s)
	raw[len(raw)-1] ^= 1
	return base64.StdEncoding.EncodeToString(raw)
}

func TestValidateKey(t *testing.T) {
	tests := []struct {
		name string
		key  string
		ok   bool
	}{
		{"32 ascii", "0123456789abcdef0123456789abcdef", true},
		{"64 hex", strings.Repeat("ab", 32), true},
		{"31 chars", strings.Repeat("a", 31), false},
		{"non-ascii in first 32", "é" + strings.Repeat("a", 40), false},
		{"non-ascii after 32", strings.Repeat("a", 32) + "é", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := crypto.ValidateKey(tt.key)
			if (err == nil) != tt.ok {
				t.Fatalf("ValidateKey = %v, want ok=%v", err, tt.ok)
			}
			if err != nil {
				if !errors.Is(err, crypto.ErrBadKey) {
					t.Fatalf("error %v does not wrap ErrBadKey", err)
				}
				if strings.Contains(err.Error(), tt.key) {
					t.Fatal("error text contains the key")
				}
			}
		})
	}
	if _, err := crypto.NewKeyring(); err == nil {
		t.Fatal("NewKeyring() with no key succeeded")
	}
}

func FuzzOpen(f *testing.F) {
	for _, v := range loadVectors(f) {
		f.Add(v.Ciphertext)
	}
	f.Add("")
	f.Add("AAAA")
	k, _ := crypto.NewKeyring("0123456789abcdef0123456789abcdef")
	f.Fuzz(func(t *testing.T, s string) {
		plain, err := k.Open(s)
		if err != nil {
			if plain != "" {
				t.Fatal("plaintext returned with an error")
			}
			for _, e := range []error{crypto.ErrEncoding, crypto.ErrTooShort, crypto.ErrDecrypt, crypto.ErrNotUTF8} {
				if errors.Is(err, e) {
					return
				}
			}
			t.Fatalf("unexpected error %v", err)
		}
		// Whatever opens must re-seal and open to the same text.
		again, err := k.Seal(plain)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := k.Open(again); err != nil || got != plain {
			t.Fatalf("round trip: %q %v", got, err)
		}
	})
}

func FuzzSealOpen(f *testing.F) {
	f.Add("https://discord.com/api/webhooks/1/x")
	f.Add("你好世界 🚀")
	k, _ := crypto.NewKeyring("test-encryption-key-32-chars!!!!")
	f.Fuzz(func(t *testing.T, plain string) {
		if plain == "" || !utf8.ValidString(plain) {
			return
		}
		s, err := k.Seal(plain)
		if err != nil {
			t.Fatal(err)
		}
		got, err := k.Open(s)
		if err != nil || got != plain {
			t.Fatalf("Open(Seal(%q)) = %q, %v", plain, got, err)
		}
	})
}
