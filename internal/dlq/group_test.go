package dlq

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/consumer"
	"github.com/heraldrelay/herald/internal/destmask"
	"github.com/heraldrelay/herald/internal/testkit"
)

const otherWebhook = "https://discord.com/api/webhooks/223456789012345678/PLAINTEXT-other-token"

func TestGroups(t *testing.T) {
	f := newFixture(t)
	ctx := testkit.Context(t, 60*time.Second)
	masker := destmask.New(f.keys, destmask.DeriveKey(testkit.Key))

	other := func(id string) *herald.Job {
		j := f.job(t, herald.ChannelDiscord, id)
		j.Credentials.Webhook = f.seal(t, otherWebhook)
		return j
	}
	// Three letters to one webhook (each sealed anew), one of them with
	// another cause; two to another webhook; one Telegram.
	f.kill(t, f.job(t, herald.ChannelDiscord, "a1"), consumer.DeadLetterInfo{Reason: "first 404", StatusCode: 404})
	f.kill(t, f.job(t, herald.ChannelDiscord, "a2"), consumer.DeadLetterInfo{Reason: "second 404", StatusCode: 404})
	f.kill(t, f.job(t, herald.ChannelDiscord, "a3"), consumer.DeadLetterInfo{Cause: consumer.CauseBudgetExhausted, Reason: "budget spent: 500", StatusCode: 500})
	mid := time.Now()
	time.Sleep(5 * time.Millisecond) // stored times are the server's clock, after mid
	f.kill(t, other("b1"), consumer.DeadLetterInfo{Reason: `<script>alert(1)</script>`})
	f.kill(t, other("b2"), consumer.DeadLetterInfo{Reason: `"><img onerror=alert(1)>`, StatusCode: 401})
	f.kill(t, f.job(t, herald.ChannelTelegram, "t1"), consumer.DeadLetterInfo{Reason: "chat not found", StatusCode: 400})

	groups, err := f.store.Groups(ctx, Filter{}, masker)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 4 {
		t.Fatalf("got %d groups, want 4: %+v", len(groups), groups)
	}
	maskA := masker.Mask(*f.job(t, herald.ChannelDiscord, "x"))
	maskB := masker.Mask(*other("x"))
	g := groups[0]
	if g.Count != 2 || g.Cause != consumer.CausePermanent || g.Channel != herald.ChannelDiscord {
		t.Errorf("largest group %+v, want 2 permanent discord letters", g)
	}
	// Equal counts: the newest first, so b's group leads a's.
	if g.Destination != maskB || g.LastError != `"><img onerror=alert(1)>` || g.LastStatusCode != 401 {
		t.Errorf("first group %+v, want webhook b's with its last error", g)
	}
	a := groups[1]
	if a.Count != 2 || a.Destination != maskA || a.LastError != "second 404" || a.FirstSeen.After(a.LastSeen) || a.FirstSeen.Equal(a.LastSeen) {
		t.Errorf("webhook a's group %+v", a)
	}
	for _, gr := range groups {
		noSecrets(t, "group", gr.Destination+gr.LastError)
		if strings.Contains(gr.Destination, "sealed") {
			t.Errorf("destination %q not opened", gr.Destination)
		}
	}

	// Filters: cause, channel, until.
	byCause, err := f.store.Groups(ctx, Filter{Cause: "BUDGET_exhausted"}, masker)
	if err != nil || len(byCause) != 1 || byCause[0].Count != 1 || byCause[0].Destination != maskA {
		t.Errorf("cause filter: %+v, %v", byCause, err)
	}
	before, err := f.store.Groups(ctx, Filter{Until: mid, Channel: herald.ChannelDiscord}, masker)
	if err != nil || len(before) != 2 || before[0].Count+before[1].Count != 3 {
		t.Errorf("until filter: %+v, %v", before, err)
	}
	if ls, err := f.store.List(ctx, Filter{Since: mid}); err != nil || len(ls) != 3 {
		t.Errorf("since filter: %d letters, %v", len(ls), err)
	}
	// Without a masker, destinations are not opened.
	sealed, err := f.store.Groups(ctx, Filter{Channel: herald.ChannelDiscord}, nil)
	if err != nil || len(sealed) != 2 || sealed[0].Destination != DestinationSealed || sealed[0].Count != 4 {
		t.Errorf("groups without a masker: %+v, %v", sealed, err)
	}

	// Replaying one group replays its letters and no other.
	k := GroupKey{Cause: consumer.CausePermanent, Channel: herald.ChannelDiscord, Destination: maskA}
	gf, err := f.store.GroupFilter(ctx, Filter{}, masker, k)
	if err != nil || len(gf.IDs) != 2 {
		t.Fatalf("group filter %+v, %v", gf, err)
	}
	res, err := f.store.Replay(ctx, gf, ReplayOptions{})
	if err != nil || res.Replayed != 2 || strings.Join(res.IDs, ",") != "a1,a2" {
		t.Fatalf("replay of the group: %+v, %v", res, err)
	}
	for range 2 {
		_ = f.next(t).Ack()
	}
	f.noJob(t)
	if n := f.letters(t); n != 4 {
		t.Errorf("%d letters left, want 4", n)
	}
	// The group is gone; its filter now names nothing.
	if gf, err := f.store.GroupFilter(ctx, Filter{}, masker, k); err != nil || !gf.Empty() {
		t.Errorf("after the replay the group's filter is %+v, %v", gf, err)
	}
}

func TestFilterUntilAndCause(t *testing.T) {
	since := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	if err := (Filter{Since: since, Until: since}).Validate(); !errors.Is(err, ErrInvalidFilter) {
		t.Errorf("until = since: %v", err)
	}
	if (Filter{Until: since}).Empty() || (Filter{Cause: "permanent"}).Empty() {
		t.Error("until or cause alone is Empty")
	}
}
