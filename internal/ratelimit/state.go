package ratelimit

import (
	"bytes"
	"math"
	"strconv"
	"time"
)

// state is one client's bucket as stored: tokens left at a moment (unix
// milliseconds). Tokens are fractional: the refill is continuous.
type state struct {
	tokens float64
	at     int64
}

// fullState is a full bucket at now.
func fullState(b Bucket, now time.Time) state {
	return state{tokens: float64(b.MaxTokens), at: now.UnixMilli()}
}

// refill returns s at now: the tokens earned since s.at added, up to
// b.MaxTokens. A clock behind s.at (another replica's clock is ahead) earns
// nothing and keeps s.at, so no interval is ever refilled twice.
func (s state) refill(b Bucket, now time.Time) state {
	ms := now.UnixMilli()
	if ms > s.at {
		s.tokens += float64(ms-s.at) * float64(b.RefillRate) / float64(b.RefillTime.Milliseconds())
		s.at = ms
	}
	s.tokens = min(s.tokens, float64(b.MaxTokens))
	return s
}

// whole is the number of whole tokens in s.
func (s state) whole() int {
	if s.tokens < 1 {
		return 0
	}
	return int(s.tokens)
}

// wait is how long s takes to hold one whole token.
func (s state) wait(b Bucket) time.Duration {
	need := 1 - s.tokens
	if need <= 0 {
		return 0
	}
	ms := math.Ceil(need * float64(b.RefillTime.Milliseconds()) / float64(b.RefillRate))
	return time.Duration(ms) * time.Millisecond
}

// encode writes s compactly as "<tokens> <unix ms>", readable with the nats
// CLI, e.g. "59.25 1767225600000".
func (s state) encode() []byte {
	buf := make([]byte, 0, 32)
	buf = strconv.AppendFloat(buf, s.tokens, 'g', -1, 64)
	buf = append(buf, ' ')
	return strconv.AppendInt(buf, s.at, 10)
}

// decodeState parses what encode wrote.
func decodeState(data []byte) (state, bool) {
	tok, at, ok := bytes.Cut(data, []byte{' '})
	if !ok {
		return state{}, false
	}
	t, err := strconv.ParseFloat(string(tok), 64)
	if err != nil || math.IsNaN(t) || math.IsInf(t, 0) || t < 0 {
		return state{}, false
	}
	ms, err := strconv.ParseInt(string(at), 10, 64)
	if err != nil || ms < 0 {
		return state{}, false
	}
	return state{tokens: t, at: ms}, true
}
