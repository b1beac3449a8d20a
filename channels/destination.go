package channels

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
)

// destinationKeySize is the size of the key that hashes credentials into
// destination keys.
const destinationKeySize = 32

// newDestinationKey returns a random key for keyedHash. Destination keys only
// name in-process state (breakers, pacing), so each process has its own.
func newDestinationKey() []byte {
	k := make([]byte, destinationKeySize)
	_, _ = rand.Read(k) // crypto/rand.Read never fails (Go 1.24+)
	return k
}

// keyedHash is the first 16 hex digits of HMAC-SHA256(key, s): it tells two
// secrets apart without revealing either, and an outsider who knows one
// cannot make another hash the same (a plain hash of a chat id, a dozen
// digits, could be reversed by trying them all).
func keyedHash(key []byte, s string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return hex.EncodeToString(m.Sum(nil)[:8])
}
