package browser

import (
	"fmt"
	"strings"
	"testing"
)

// stopTB records how New ended a test; Skip and Fatal stop New as the real
// ones would.
type stopTB struct {
	testing.TB
	how, msg string
}

type stopped struct{}

func (s *stopTB) Helper()           {}
func (s *stopTB) Skip(args ...any)  { s.stop("skip", args) }
func (s *stopTB) Fatal(args ...any) { s.stop("fatal", args) }
func (s *stopTB) stop(how string, args []any) {
	s.how, s.msg = how, fmt.Sprint(args...)
	panic(stopped{})
}

func newWithout(t *testing.T, require string) *stopTB {
	t.Helper()
	t.Setenv(RequireEnv, require)
	was := findChromium
	findChromium = func() (string, bool) { return "", false }
	defer func() { findChromium = was }()
	tb := &stopTB{TB: t}
	func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(stopped); !ok {
					panic(r)
				}
			}
		}()
		New(tb)
	}()
	return tb
}

// Without chromium a browser test is skipped, saying why and how to install
// it; CI sets RequireEnv and fails instead, so the tests never skip there.
func TestWithoutChromium(t *testing.T) {
	tb := newWithout(t, "")
	if tb.how != "skip" || !strings.Contains(tb.msg, "chromium not found") || !strings.Contains(tb.msg, "apt-get install -y chromium") {
		t.Errorf("without chromium: %s %q, want a skip that says how to install it", tb.how, tb.msg)
	}
	if tb = newWithout(t, "1"); tb.how != "fatal" {
		t.Errorf("without chromium and with %s: %s, want a failure", RequireEnv, tb.how)
	}
}
