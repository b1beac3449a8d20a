package client_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/heraldrelay/herald/client"
	"github.com/heraldrelay/herald/internal/challenge"
)

func TestSolve(t *testing.T) {
	for d := 0; d <= 4; d++ {
		seed := fmt.Sprintf("%032x", d*7919)
		nonce := client.Solve(seed, d)
		if !challenge.Solves(seed, nonce, d) {
			t.Errorf("difficulty %d: nonce %q does not solve", d, nonce)
		}
		// It is the first solution counting from 0.
		n, _ := strconv.Atoi(nonce)
		for i := range n {
			if challenge.Solves(seed, strconv.Itoa(i), d) {
				t.Fatalf("difficulty %d: %d solves too, before %d", d, i, n)
			}
		}
	}
}

func TestSolveContextGivesUp(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Difficulty 64 has no solution to find in any time.
	if _, err := client.SolveContext(ctx, "ab", 64); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

// BenchmarkSolve solves a fresh challenge of the default difficulty per
// iteration and reports the hash rate.
func BenchmarkSolve(b *testing.B) {
	hashes := 0
	i := 0
	for b.Loop() {
		nonce := client.Solve(fmt.Sprintf("%032x", i), challenge.DefaultDifficulty)
		n, _ := strconv.Atoi(nonce)
		hashes += n + 1
		i++
	}
	b.ReportMetric(float64(hashes)/b.Elapsed().Seconds(), "hashes/s")
	b.ReportMetric(float64(hashes)/float64(i), "hashes/op")
}
