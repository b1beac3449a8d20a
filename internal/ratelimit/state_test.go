package ratelimit

import (
	"testing"
	"time"
)

func TestStateRefill(t *testing.T) {
	b := Bucket{MaxTokens: 10, RefillRate: 3, RefillTime: 30 * time.Second} // one token per 10 s
	t0 := time.UnixMilli(1_000_000)
	s := state{tokens: 0, at: t0.UnixMilli()}
	tests := []struct {
		name   string
		after  time.Duration
		tokens float64
		wait   time.Duration
	}{
		{"no time", 0, 0, 10 * time.Second},
		{"half a token", 5 * time.Second, 0.5, 5 * time.Second},
		{"one token", 10 * time.Second, 1, 0},
		{"capped", time.Hour, 10, 0},
		{"clock behind", -time.Minute, 0, 10 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := s.refill(b, t0.Add(tc.after))
			if got.tokens != tc.tokens {
				t.Errorf("tokens = %v, want %v", got.tokens, tc.tokens)
			}
			if w := got.wait(b); w != tc.wait {
				t.Errorf("wait = %s, want %s", w, tc.wait)
			}
			if tc.after < 0 && got.at != s.at {
				t.Errorf("a clock behind moved the refill mark back: %d", got.at)
			}
		})
	}
	// Over-full (MaxTokens lowered) is capped too.
	if got := (state{tokens: 50, at: t0.UnixMilli()}).refill(b, t0); got.tokens != 10 {
		t.Errorf("over-full bucket: %v", got.tokens)
	}
}

func TestStateWhole(t *testing.T) {
	for _, tc := range []struct {
		tokens float64
		want   int
	}{{0, 0}, {0.999, 0}, {1, 1}, {2.5, 2}} {
		if got := (state{tokens: tc.tokens}).whole(); got != tc.want {
			t.Errorf("whole(%v) = %d, want %d", tc.tokens, got, tc.want)
		}
	}
}

func TestStateEncoding(t *testing.T) {
	for _, s := range []state{{0, 0}, {59.25, 1767225600000}, {1.0 / 3, 1}, {1e9, 1 << 50}} {
		data := s.encode()
		got, ok := decodeState(data)
		if !ok || got != s {
			t.Errorf("decode(encode(%+v)) = %+v, %v (%q)", s, got, ok, data)
		}
	}
	if got := string((state{59.25, 1767225600000}).encode()); got != "59.25 1767225600000" {
		t.Errorf("encode = %q", got)
	}
	for _, bad := range []string{"", "1", "x 1", "1 x", "-1 5", "NaN 5", "+Inf 5", "1 -5", "1  5"} {
		if _, ok := decodeState([]byte(bad)); ok {
			t.Errorf("decodeState(%q) accepted", bad)
		}
	}
}

func FuzzDecodeState(f *testing.F) {
	f.Add([]byte("59.25 1767225600000"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, ok := decodeState(data)
		if !ok {
			return
		}
		if s.tokens < 0 || s.at < 0 {
			t.Fatalf("decoded an invalid state %+v", s)
		}
		again, ok := decodeState(s.encode())
		if !ok || again != s {
			t.Fatalf("round trip of %+v: %+v, %v", s, again, ok)
		}
	})
}
