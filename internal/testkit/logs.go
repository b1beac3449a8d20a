package testkit

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// LogBuffer is a goroutine-safe sink for slog handlers (they may write from
// many goroutines).
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Reset forgets everything written so far.
func (b *LogBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}

// Logger returns a debug-level JSON logger writing into a LogBuffer. When
// the test ends, the logs are checked for every secret given (and Secrets)
// and, when the test failed, their tail is printed.
func Logger(t testing.TB, secrets ...string) (*slog.Logger, *LogBuffer) {
	t.Helper()
	b := &LogBuffer{}
	t.Cleanup(func() {
		out := b.String()
		AssertNoSecrets(t, "log", out, secrets...)
		if t.Failed() {
			// Masked: a test that failed for a leaked secret must not print
			// it into the CI output.
			out = Mask(out, secrets...)
			const max = 20000
			if len(out) > max {
				out = "…" + out[len(out)-max:]
			}
			t.Logf("logs:\n%s", out)
		}
	})
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// AssertNoSecrets fails the test if text (named what) contains Secrets or
// any of extra.
func AssertNoSecrets(t testing.TB, what, text string, extra ...string) {
	t.Helper()
	for _, s := range append(append([]string(nil), Secrets...), extra...) {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s contains a secret (%.6s…)", what, s)
		}
	}
}

// Mask replaces every occurrence of Secrets and of extra in text with
// "[secret]".
func Mask(text string, extra ...string) string {
	for _, s := range append(append([]string(nil), Secrets...), extra...) {
		if s != "" {
			text = strings.ReplaceAll(text, s, "[secret]")
		}
	}
	return text
}
