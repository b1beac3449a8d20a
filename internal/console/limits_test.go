package console

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald/consumer"
)

// Sessions are capped in memory: past MaxSessions a sign-in evicts the
// session closest to expiry, which is then sent to sign in again.
func TestSessionsCapped(t *testing.T) {
	v := newEnv(t, Config{MaxSessions: 3})
	var cookies []string
	for range 4 {
		cookies = append(cookies, v.signIn().Value)
		v.clock.Advance(time.Minute)
	}
	if n := len(v.c.sessions.m); n != 3 {
		t.Fatalf("%d sessions kept, want 3", n)
	}
	if r := v.do(http.MethodGet, "/console/dlq", cookies[0], nil, nil); r.code != http.StatusSeeOther {
		t.Errorf("the oldest session after a fourth sign-in: %d, want a redirect to sign in", r.code)
	}
	for i, ck := range cookies[1:] {
		if r := v.do(http.MethodGet, "/console/dlq", ck, nil, nil); r.code != http.StatusOK {
			t.Errorf("session %d: %d, want the page", i+2, r.code)
		}
	}
}

// One replay runs per process at a time: a second one, from any session,
// is refused with 409 while the first runs, and starts nothing.
func TestOneReplayAtATime(t *testing.T) {
	v := newEnv(t, Config{ReplayRate: 1})
	for _, id := range []string{"job-r1", "job-r2", "job-r3", "job-r4"} {
		v.kill(id, plainWebhook, consumer.CausePermanent, "404 Unknown Webhook", id)
	}
	first, second := v.signIn(), v.signIn()
	csrf := func(ck string) string {
		return csrfOf(t, v.do(http.MethodGet, "/console/dlq/confirm?action=replay", ck, nil, nil).body)
	}
	if r := v.do(http.MethodPost, "/console/dlq/replay", first.Value, url.Values{"csrf": {csrf(first.Value)}}, sameSite); r.code != http.StatusSeeOther {
		t.Fatalf("first replay: %d\n%s", r.code, r.body)
	}
	started := v.c.replayStatus()
	v.clock.Advance(time.Second)
	r := v.do(http.MethodPost, "/console/dlq/replay", second.Value, url.Values{"csrf": {csrf(second.Value)}}, sameSite)
	if r.code != http.StatusConflict || !strings.Contains(r.body, "A replay is running") {
		t.Fatalf("second replay while the first runs: %d\n%s", r.code, r.body)
	}
	if st := v.c.replayStatus(); st == nil || !st.Running() || !st.Started.Equal(started.Started) {
		t.Fatalf("the second replay replaced the first: %+v", st)
	}
}
