package channels

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"sync"
)

// destinationKeySize is the size of the key that hashes credentials into
// destination keys.
const destinationKeySize = 32

// destinationHasher makes the keyed hashes in destination keys, with a key of
// its own: destination keys only name in-process state (breakers, pacing),
// so each process has its own key. It keeps its HMAC states in a pool,
// since every delivery names its destination (twice: breakers and pacing).
type destinationHasher struct {
	pool sync.Pool // of hash.Hash, HMAC-SHA256 under the key
}

// newDestinationHasher returns a hasher with a random key.
func newDestinationHasher() *destinationHasher {
	key := make([]byte, destinationKeySize)
	_, _ = rand.Read(key) // crypto/rand.Read never fails (Go 1.24+)
	return &destinationHasher{pool: sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}}
}

// sum is the first 16 hex digits of HMAC-SHA256(key, s): it tells two
// secrets apart without revealing either, and an outsider who knows one
// cannot make another hash the same (a plain hash of a chat id, a dozen
// digits, could be reversed by trying them all).
func (h *destinationHasher) sum(s string) string {
	m := h.pool.Get().(hash.Hash)
	m.Reset()
	_, _ = m.Write([]byte(s))
	var buf [sha256.Size]byte
	out := hex.EncodeToString(m.Sum(buf[:0])[:8])
	h.pool.Put(m)
	return out
}
