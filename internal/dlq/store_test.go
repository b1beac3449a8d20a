package dlq

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/consumer"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/publisher"
)

// threeLetters dead-letters a (discord, permanent 404), b (telegram, budget
// exhausted 500) and, after a pause, c (discord, max age). mid is a time
// between b and c.
func threeLetters(t *testing.T, f *fixture) (mid time.Time) {
	t.Helper()
	f.kill(t, f.job(t, herald.ChannelDiscord, "a"), consumer.DeadLetterInfo{StatusCode: 404})
	f.kill(t, f.job(t, herald.ChannelTelegram, "b"), consumer.DeadLetterInfo{Cause: consumer.CauseBudgetExhausted,
		Reason: "retry budget spent after 10 attempts: Telegram API error: 500 Internal Server Error", StatusCode: 500, Attempts: 10})
	time.Sleep(50 * time.Millisecond)
	mid = time.Now()
	time.Sleep(50 * time.Millisecond)
	f.kill(t, f.job(t, herald.ChannelDiscord, "c"), consumer.DeadLetterInfo{Cause: consumer.CauseMaxAge, Reason: "older than 24h"})
	return mid
}

func TestListFilters(t *testing.T) {
	f := newFixture(t)
	ctx := testkit.Context(t, 30*time.Second)
	mid := threeLetters(t, f)

	tests := []struct {
		name   string
		filter Filter
		want   []string
	}{
		{"everything", Filter{}, []string{"a", "b", "c"}},
		{"all", Filter{All: true}, []string{"a", "b", "c"}},
		{"channel", Filter{Channel: herald.ChannelDiscord}, []string{"a", "c"}},
		{"channel unknown", Filter{Channel: UnknownChannel}, nil},
		{"since", Filter{Since: mid}, []string{"c"}},
		{"since future", Filter{Since: time.Now().Add(time.Hour)}, nil},
		{"reason ignores case", Filter{Reason: "UNKNOWN webhook"}, []string{"a"}},
		{"reason matches cause", Filter{Reason: "budget_EXHAUSTED"}, []string{"b"}},
		{"limit", Filter{Limit: 2}, []string{"a", "b"}},
		{"ids", Filter{IDs: []string{"c", "a", "zzz"}}, []string{"a", "c"}},
		{"seq ids", Filter{IDs: []string{"seq:2", "seq:99"}}, []string{"b"}},
		{"seq and job ids", Filter{IDs: []string{"seq:2", "c"}}, []string{"b", "c"}},
		{"combined", Filter{Channel: herald.ChannelDiscord, Since: mid, Reason: "24h"}, []string{"c"}},
		{"channel and limit", Filter{Channel: herald.ChannelDiscord, Limit: 1}, []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.store.List(ctx, tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
				t.Errorf("List = %v, want %v", ids(got), tt.want)
			}
		})
	}

	ls, err := f.store.List(ctx, Filter{IDs: []string{"b"}})
	if err != nil || len(ls) != 1 {
		t.Fatalf("List b = %v, %v", ls, err)
	}
	b := ls[0]
	if b.Seq != 2 || b.Channel != herald.ChannelTelegram || b.Cause != "budget_exhausted" || b.StatusCode != 500 ||
		b.Attempts != 10 || b.OriginalSubject != herald.JobIDSubject(herald.ChannelTelegram, "b") || b.OriginalSeq != 2 || b.DeadAt.IsZero() ||
		b.FirstAttempt.IsZero() || !b.LastAttempt.After(b.FirstAttempt) || !b.Decoded() || b.Job.ID != "b" ||
		b.Job.Message.Title != "Build failed" || len(b.Raw) == 0 {
		t.Errorf("letter b = %+v", b)
	}
}

func TestListBadFilterAndNoStream(t *testing.T) {
	f := newFixture(t)
	ctx := testkit.Context(t, 30*time.Second)
	for _, bad := range []Filter{{Channel: "slack"}, {Limit: -1}, {IDs: []string{"no spaces"}}, {IDs: []string{"seq:0"}}} {
		if _, err := f.store.List(ctx, bad); !errors.Is(err, ErrInvalidFilter) {
			t.Errorf("List(%+v) err = %v, want ErrInvalidFilter", bad, err)
		}
	}
	if ls, err := f.store.List(ctx, Filter{}); err != nil || len(ls) != 0 {
		t.Errorf("empty stream: %v, %v", ls, err)
	}
	if err := f.js.DeleteStream(ctx, herald.DeadLetterStream); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.List(ctx, Filter{}); !errors.Is(err, ErrNoStream) {
		t.Errorf("no stream: err = %v, want ErrNoStream", err)
	}
}

// Many letters come back in order, across several fetch batches.
func TestListManyLetters(t *testing.T) {
	f := newFixture(t)
	ctx := testkit.Context(t, 30*time.Second)
	const n = 2*fetchBatch + 17
	job := f.job(t, herald.ChannelDiscord, "")
	for i := range n {
		j := *job
		j.ID = "many-" + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + "-" + strconv.Itoa(i)
		f.kill(t, &j, consumer.DeadLetterInfo{})
	}
	ls, err := f.store.List(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != n {
		t.Fatalf("listed %d letters, want %d", len(ls), n)
	}
	for i, l := range ls {
		if l.Seq != uint64(i+1) {
			t.Fatalf("letter %d has seq %d: not in stream order", i, l.Seq)
		}
	}
	page, err := f.store.List(ctx, Filter{Limit: fetchBatch + 3, Channel: herald.ChannelDiscord})
	if err != nil || len(page) != fetchBatch+3 {
		t.Fatalf("page: %d letters, %v", len(page), err)
	}
}

func TestGet(t *testing.T) {
	f := newFixture(t)
	ctx := testkit.Context(t, 30*time.Second)
	threeLetters(t, f)

	l, err := f.store.Get(ctx, "b")
	if err != nil || l.Seq != 2 || l.JobID != "b" {
		t.Errorf("Get(b) = seq %d id %q, %v", l.Seq, l.JobID, err)
	}
	l, err = f.store.Get(ctx, "seq:3")
	if err != nil || l.JobID != "c" {
		t.Errorf("Get(seq:3) = %q, %v", l.JobID, err)
	}
	for _, id := range []string{"nope", "seq:42", "seq:x", "", "a b", "seq:0"} {
		if _, err := f.store.Get(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q) err = %v, want ErrNotFound", id, err)
		}
	}

	// The same job dead twice (from two stored copies): the latest wins.
	again := f.job(t, herald.ChannelDiscord, "a")
	if _, err := f.pub.Publish(ctx, again, publisher.WithMsgID("a-again")); err != nil {
		t.Fatal(err)
	}
	f.killMsg(t, f.next(t), again, consumer.DeadLetterInfo{Reason: "second death"})
	l, err = f.store.Get(ctx, "a")
	if err != nil || l.Seq != 4 || l.Reason != "second death" {
		t.Errorf("Get(a) = seq %d reason %q, %v; want the latest letter", l.Seq, l.Reason, err)
	}
}

func TestPurge(t *testing.T) {
	f := newFixture(t)
	ctx := testkit.Context(t, 30*time.Second)
	threeLetters(t, f)

	if _, err := f.store.Purge(ctx, Filter{}); !errors.Is(err, ErrEmptyFilter) {
		t.Errorf("empty filter: err = %v, want ErrEmptyFilter", err)
	}
	if _, err := f.store.Purge(ctx, Filter{Limit: 5}); !errors.Is(err, ErrEmptyFilter) {
		t.Errorf("limit alone: err = %v, want ErrEmptyFilter", err)
	}
	n, err := f.store.Purge(ctx, Filter{Channel: herald.ChannelDiscord})
	if err != nil || n != 2 {
		t.Fatalf("Purge discord = %d, %v; want 2", n, err)
	}
	left, _ := f.store.List(ctx, Filter{})
	if !slices.Equal(ids(left), []string{"b"}) {
		t.Errorf("left %v, want [b]", ids(left))
	}
	if n, err := f.store.Purge(ctx, Filter{IDs: []string{"seq:1"}}); err != nil || n != 0 {
		t.Errorf("purging a gone letter = %d, %v; want 0", n, err)
	}
	n, err = f.store.Purge(ctx, Filter{All: true})
	if err != nil || n != 1 || f.letters(t) != 0 {
		t.Errorf("Purge all = %d, %v; %d left", n, err, f.letters(t))
	}
}

func TestLetterJSONHidesCredentials(t *testing.T) {
	f := newFixture(t)
	ctx := testkit.Context(t, 30*time.Second)
	dj := f.job(t, herald.ChannelDiscord, "d1")
	tj := f.job(t, herald.ChannelTelegram, "t1")
	f.kill(t, dj, consumer.DeadLetterInfo{})
	f.kill(t, tj, consumer.DeadLetterInfo{})
	ls, err := f.store.List(ctx, Filter{})
	if err != nil || len(ls) != 2 {
		t.Fatalf("List = %d, %v", len(ls), err)
	}
	out, err := json.Marshal(ls)
	if err != nil {
		t.Fatal(err)
	}
	noSecrets(t, "letters JSON", string(out), dj.Credentials.Webhook, tj.Credentials.BotToken, tj.Credentials.ChatID)
	var back []map[string]any
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	creds := back[0]["job"].(map[string]any)["credentials"].(map[string]any)
	if want := "sealed (" + strconv.Itoa(len(dj.Credentials.Webhook)) + " bytes)"; creds["webhook"] != want {
		t.Errorf("webhook shown as %v, want %q", creds["webhook"], want)
	}
	if _, ok := back[0]["Raw"]; ok {
		t.Error("JSON carries Raw")
	}
	for _, k := range []string{"seq", "job_id", "channel", "reason", "cause", "attempts", "dead_at", "original_subject", "job"} {
		if _, ok := back[1][k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, out)
		}
	}
	// The Letter itself still holds the sealed job for a replay.
	if ls[0].Job.Credentials.Webhook != dj.Credentials.Webhook {
		t.Error("MarshalJSON changed the letter")
	}
}
