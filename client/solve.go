package client

import (
	"context"
	"crypto/sha256"
	"strconv"
)

// Solve returns the first nonce (a decimal string, counting from 0) such that
// the lowercase hex of sha256(seed + nonce) starts with difficulty '0'
// characters: the answer to a Herald challenge. It takes 16^difficulty hashes
// on average; see SolveContext to bound the time.
func Solve(seed string, difficulty int) string {
	nonce, _ := SolveContext(context.Background(), seed, difficulty)
	return nonce
}

// SolveContext is Solve that gives up with ctx's error when ctx ends.
func SolveContext(ctx context.Context, seed string, difficulty int) (string, error) {
	buf := make([]byte, len(seed), len(seed)+20)
	copy(buf, seed)
	for n := uint64(0); ; n++ {
		if n&0xffff == 0 {
			if err := ctx.Err(); err != nil {
				return "", err
			}
		}
		msg := strconv.AppendUint(buf[:len(seed)], n, 10)
		sum := sha256.Sum256(msg)
		if leadingZeros(sum[:], difficulty) {
			return string(msg[len(seed):]), nil
		}
	}
}

// leadingZeros reports whether the hex spelling of sum starts with n zeros.
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
