package challenge

import (
	"crypto/sha256"
	"strings"
)

// Algorithm names the proof of work in the JSON challenge.
const Algorithm = "sha256"

// maxNonceLen bounds a nonce: 20 digits already exceed any search a client
// could run.
const maxNonceLen = 32

// validNonce reports whether nonce is a decimal string Herald accepts.
func validNonce(nonce string) bool {
	if nonce == "" || len(nonce) > maxNonceLen {
		return false
	}
	for i := 0; i < len(nonce); i++ {
		if nonce[i] < '0' || nonce[i] > '9' {
			return false
		}
	}
	return true
}

// Solves reports whether nonce solves the challenge (seed, difficulty): the
// lowercase hex of sha256(seed + nonce), hashing the UTF-8 bytes of the
// concatenated strings, starts with difficulty '0' characters.
func Solves(seed, nonce string, difficulty int) bool {
	var b strings.Builder
	b.Grow(len(seed) + len(nonce))
	b.WriteString(seed)
	b.WriteString(nonce)
	sum := sha256.Sum256([]byte(b.String()))
	return leadingZeros(sum[:], difficulty)
}

// leadingZeros reports whether the hex spelling of sum starts with n zeros:
// n/2 zero bytes, then, for odd n, a byte below 0x10.
func leadingZeros(sum []byte, n int) bool {
	if n < 0 || n > 2*len(sum) {
		return false
	}
	for i := 0; i < n/2; i++ {
		if sum[i] != 0 {
			return false
		}
	}
	return n%2 == 0 || sum[n/2] < 0x10
}
