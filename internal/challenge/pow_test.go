package challenge

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
)

func TestLeadingZeros(t *testing.T) {
	for _, tc := range []struct {
		sum  []byte
		n    int
		want bool
	}{
		{[]byte{0x00, 0x00, 0xff}, 4, true},
		{[]byte{0x00, 0x00, 0xff}, 5, false},
		{[]byte{0x00, 0x0f, 0xff}, 3, true},
		{[]byte{0x00, 0x10, 0xff}, 3, false},
		{[]byte{0x01}, 0, true},
		{[]byte{0x00}, 3, false}, // longer than the digest
	} {
		if got := leadingZeros(tc.sum, tc.n); got != tc.want {
			t.Errorf("leadingZeros(%x, %d) = %v", tc.sum, tc.n, got)
		}
	}
}

func TestSolvesMatchesTheHexDigest(t *testing.T) {
	seed := "3f2a9c"
	for n := range 5000 {
		nonce := strconv.Itoa(n)
		sum := sha256.Sum256([]byte(seed + nonce))
		h := hex.EncodeToString(sum[:])
		for d := 0; d <= 3; d++ {
			if got, want := Solves(seed, nonce, d), strings.HasPrefix(h, strings.Repeat("0", d)); got != want {
				t.Fatalf("Solves(%q, %q, %d) = %v, digest %s", seed, nonce, d, got, h)
			}
		}
	}
}
