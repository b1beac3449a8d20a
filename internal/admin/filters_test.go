package admin

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/consumer"
)

// The admin API takes the CLI's until and cause filters: on the list, and
// in the bodies of replay and purge.
func TestUntilAndCauseFilters(t *testing.T) {
	e := newEnv(t)
	e.killAs(t, herald.ChannelDiscord, "old1", "Discord API error: 503", consumer.CauseBudgetExhausted)
	time.Sleep(20 * time.Millisecond) // letters are stamped when stored: put a time between them
	between := time.Now().UTC().Format(time.RFC3339Nano)
	time.Sleep(20 * time.Millisecond)
	e.killAs(t, herald.ChannelDiscord, "new1", "Discord API error: 503", consumer.CauseBudgetExhausted)
	e.killAs(t, herald.ChannelDiscord, "new2", "Discord API error: 404 Unknown Webhook", consumer.CausePermanent)

	ids := func(r reply) string {
		var got []string
		for _, l := range r.json["letters"].([]any) {
			got = append(got, l.(map[string]any)["job_id"].(string))
		}
		return strings.Join(got, ",")
	}
	for _, tt := range []struct{ query, want string }{
		{"until=" + url.QueryEscape(between), "old1"},
		{"since=" + url.QueryEscape(between), "new1,new2"},
		{"cause=budget_exhausted", "old1,new1"},
		{"cause=permanent", "new2"},
		{"cause=budget_exhausted&since=" + url.QueryEscape(between), "new1"},
		{"until=1h", ""},
	} {
		if r := e.do(t, "GET", "/admin/dlq?"+tt.query, "", nil); r.code != 200 || ids(r) != tt.want {
			t.Errorf("list ?%s = %d %q, want %q", tt.query, r.code, ids(r), tt.want)
		}
	}
	for _, q := range []string{"until=later", "since=1h&until=2h"} {
		r := e.do(t, "GET", "/admin/dlq?"+q, "", nil)
		if r.code != 400 || errCode(r) != "invalid_filter" {
			t.Errorf("list ?%s = %d %s, want 400 invalid_filter", q, r.code, r.body)
		}
		if q == "until=later" && !strings.Contains(r.body, `until \"later\"`) {
			t.Errorf("the error does not name until: %s", r.body)
		}
	}

	// Replay the outage's letters only: cause and until.
	r := e.do(t, "POST", "/admin/dlq/replay", `{"cause":"budget_exhausted","until":"`+between+`","dry_run":true}`, nil)
	if r.code != 200 || r.json["replayed"] != float64(1) {
		t.Fatalf("dry run = %d %s", r.code, r.body)
	}
	r = e.do(t, "POST", "/admin/dlq/replay", `{"cause":"budget_exhausted","until":"`+between+`","rate":0}`, nil)
	if ids, _ := r.json["ids"].([]any); r.code != 200 || len(ids) != 1 || ids[0] != "old1" {
		t.Fatalf("replay = %d %s", r.code, r.body)
	}
	if m := e.next(t); !strings.HasPrefix(m.Subject(), "herald.jobs.discord") {
		t.Errorf("replayed job on %s", m.Subject())
	}
	if !strings.Contains(e.logs.String(), `"cause":"budget_exhausted"`) {
		t.Errorf("the replay's log line lacks its cause:\n%s", e.logs)
	}
	// Purge by cause: only the permanent letter goes.
	r = e.do(t, "POST", "/admin/dlq/purge", `{"cause":"permanent"}`, nil)
	if r.code != 200 || r.json["purged"] != float64(1) {
		t.Fatalf("purge = %d %s", r.code, r.body)
	}
	if r := e.do(t, "GET", "/admin/dlq", "", nil); ids(r) != "new1" {
		t.Errorf("letters left %q, want new1", ids(r))
	}
	if r := e.do(t, "POST", "/admin/dlq/purge", `{"until":"soon"}`, nil); r.code != 400 || errCode(r) != "invalid_filter" {
		t.Errorf("purge until=soon = %d %s", r.code, r.body)
	}
}
