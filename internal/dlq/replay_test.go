package dlq

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/consumer"
	"github.com/heraldrelay/herald/internal/testkit"
)

func TestReplay(t *testing.T) {
	f := newFixture(t)
	ctx := testkit.Context(t, 30*time.Second)
	job := f.job(t, herald.ChannelDiscord, "replay-1")
	f.kill(t, job, consumer.DeadLetterInfo{})
	letter, err := f.store.Get(ctx, "replay-1")
	if err != nil {
		t.Fatal(err)
	}

	var progress [][2]int
	before := time.Now().UTC()
	res, err := f.store.Replay(ctx, Filter{IDs: []string{"replay-1"}}, ReplayOptions{
		Progress: func(done, total int) { progress = append(progress, [2]int{done, total}) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Replayed != 1 || res.Failed != 0 || res.Skipped != 0 || !slices.Equal(res.IDs, []string{"replay-1"}) || len(res.Problems) != 0 {
		t.Errorf("result = %+v", res)
	}
	if !slices.Equal(progress, [][2]int{{1, 1}}) {
		t.Errorf("progress calls %v", progress)
	}

	got := f.next(t)
	if got.Subject() != "herald.jobs.discord" {
		t.Errorf("replayed to %q", got.Subject())
	}
	if !bytes.Equal(got.Data(), letter.Raw) {
		t.Errorf("replayed body differs:\n got %s\nwant %s", got.Data(), letter.Raw)
	}
	h := got.Headers()
	if id, want := h.Get(jetstream.MsgIDHeader), "replay-1-replay-"+strconv.FormatUint(letter.Seq, 10); id != want {
		t.Errorf("Nats-Msg-Id = %q, want %q: one id per letter", id, want)
	}
	start, err := time.Parse(time.RFC3339Nano, h.Get(HeaderBudgetStart))
	if err != nil || start.Before(before.Add(-time.Second)) || start.After(time.Now().Add(time.Second)) {
		t.Errorf("%s = %q (%v), want about now", HeaderBudgetStart, h.Get(HeaderBudgetStart), err)
	}
	if h.Get(HeaderReplays) != "1" {
		t.Errorf("%s = %q, want 1", HeaderReplays, h.Get(HeaderReplays))
	}
	if n := f.letters(t); n != 0 {
		t.Errorf("%d letters left after replay, want 0", n)
	}
	if recs := f.status.all(); len(recs) != 1 || recs[0].ID != "replay-1" || recs[0].State != herald.StateQueued ||
		recs[0].Attempts != 0 || recs[0].Channel != herald.ChannelDiscord {
		t.Errorf("status writes %+v, want one queued record", recs)
	}

	// It dies again: the letter keeps the replay count, and the next replay
	// counts on from it with yet another message id.
	f.killMsg(t, got, job, consumer.DeadLetterInfo{})
	again, err := f.store.Get(ctx, "replay-1")
	if err != nil || again.Replays != 1 {
		t.Fatalf("second letter replays = %d, %v", again.Replays, err)
	}
	if _, err := f.store.Replay(ctx, Filter{All: true}, ReplayOptions{}); err != nil {
		t.Fatal(err)
	}
	third := f.next(t)
	if third.Headers().Get(HeaderReplays) != "2" || third.Headers().Get(jetstream.MsgIDHeader) == h.Get(jetstream.MsgIDHeader) {
		t.Errorf("second replay headers %v", third.Headers())
	}
}

func TestReplayJobsStreamMissingKeepsLetter(t *testing.T) {
	f := newFixture(t)
	ctx := testkit.Context(t, 30*time.Second)
	f.kill(t, f.job(t, herald.ChannelTelegram, "keep-1"), consumer.DeadLetterInfo{Reason: "blocked by the user", Attempts: 3})
	if err := f.js.DeleteStream(ctx, herald.JobsStream); err != nil {
		t.Fatal(err)
	}
	res, err := f.store.Replay(ctx, Filter{Channel: herald.ChannelTelegram}, ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Replayed != 0 || res.Failed != 1 || len(res.Problems) != 1 || res.Problems[0].JobID != "keep-1" || len(res.IDs) != 0 {
		t.Errorf("result = %+v", res)
	}
	if n := f.letters(t); n != 1 {
		t.Errorf("%d letters, want the letter kept", n)
	}
	recs := f.status.all()
	if len(recs) != 2 || recs[0].State != herald.StateQueued || recs[1].State != herald.StateDead ||
		recs[1].LastError != "blocked by the user" || recs[1].Attempts != 3 {
		t.Errorf("status writes %+v, want queued then dead again", recs)
	}
}

func TestReplayAbortsWhenEveryPublishFails(t *testing.T) {
	f := newFixture(t)
	ctx := testkit.Context(t, 30*time.Second)
	f.store.maxFailuresInRow = 3 // each failed publish retries for ~0.5 s
	job := f.job(t, herald.ChannelDiscord, "")
	for i := range 5 {
		j := *job
		j.ID = "abort-" + strconv.Itoa(i)
		f.kill(t, &j, consumer.DeadLetterInfo{})
	}
	if err := f.js.DeleteStream(ctx, herald.JobsStream); err != nil {
		t.Fatal(err)
	}
	res, err := f.store.Replay(ctx, Filter{All: true}, ReplayOptions{})
	if !errors.Is(err, ErrReplayAborted) {
		t.Fatalf("err = %v, want ErrReplayAborted", err)
	}
	if res.Failed != 3 || res.Replayed != 0 {
		t.Errorf("result = %+v", res)
	}
	if n := f.letters(t); n != 5 {
		t.Errorf("%d letters left, want all kept", n)
	}
}

func TestReplayRateIsRespected(t *testing.T) {
	f := newFixture(t)
	ctx := testkit.Context(t, 30*time.Second)
	job := f.job(t, herald.ChannelDiscord, "")
	for i := range 5 {
		j := *job
		j.ID = "rate-" + strconv.Itoa(i)
		f.kill(t, &j, consumer.DeadLetterInfo{})
	}
	start := time.Now()
	res, err := f.store.Replay(ctx, Filter{All: true}, ReplayOptions{Rate: 10})
	if err != nil || res.Replayed != 5 {
		t.Fatalf("Replay = %+v, %v", res, err)
	}
	// 10/s with a burst of one: the first goes at once, four wait 100 ms each.
	if elapsed := time.Since(start); elapsed < 350*time.Millisecond {
		t.Errorf("5 letters at 10/s took %s, want at least ~400ms", elapsed)
	}
	if _, err := f.store.Replay(ctx, Filter{All: true}, ReplayOptions{Rate: -1}); err == nil {
		t.Error("negative rate accepted")
	}
}

func TestReplayDryRunChangesNothing(t *testing.T) {
	f := newFixture(t)
	ctx := testkit.Context(t, 30*time.Second)
	threeLetters(t, f)
	res, err := f.store.Replay(ctx, Filter{Channel: herald.ChannelDiscord}, ReplayOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !res.DryRun || res.Replayed != 2 || !slices.Equal(res.IDs, []string{"a", "c"}) {
		t.Errorf("result = %+v", res)
	}
	if n := f.letters(t); n != 3 {
		t.Errorf("%d letters after a dry run, want 3", n)
	}
	f.noJob(t)
	if recs := f.status.all(); len(recs) != 0 {
		t.Errorf("dry run wrote status %+v", recs)
	}
}

func TestReplaySkipsUndecodable(t *testing.T) {
	f := newFixture(t)
	ctx := testkit.Context(t, 30*time.Second)
	if _, err := f.js.PublishMsg(ctx, &nats.Msg{Subject: "herald.jobs.discord", Data: []byte(`{"v":1,"channel":"discord"`)}); err != nil {
		t.Fatal(err)
	}
	f.killMsg(t, f.next(t), nil, consumer.DeadLetterInfo{JobID: "seq-1", Cause: consumer.CauseUndecodable, Reason: "malformed"})
	f.kill(t, f.job(t, herald.ChannelDiscord, "good"), consumer.DeadLetterInfo{})

	ls, err := f.store.List(ctx, Filter{})
	if err != nil || len(ls) != 2 || ls[0].Decoded() || ls[0].Channel != UnknownChannel || ls[0].JobID != "seq-1" {
		t.Fatalf("List = %+v, %v", ls, err)
	}
	res, err := f.store.Replay(ctx, Filter{All: true}, ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Replayed != 1 || res.Skipped != 1 || res.Failed != 0 || len(res.Problems) != 1 || res.Problems[0].Seq != 1 {
		t.Errorf("result = %+v", res)
	}
	left, _ := f.store.List(ctx, Filter{})
	if len(left) != 1 || left[0].JobID != "seq-1" {
		t.Errorf("left %v, want the undecodable letter kept", ids(left))
	}
	if got := f.next(t); got.Headers().Get(HeaderReplays) != "1" {
		t.Errorf("good job not replayed")
	}
}

// A job published without an id was named after its Nats-Msg-Id; the replay
// keeps that name although the message id changes.
func TestReplayKeepsNameOfJobWithoutID(t *testing.T) {
	f := newFixture(t)
	ctx := testkit.Context(t, 30*time.Second)
	job := f.job(t, herald.ChannelDiscord, "")
	m := f.enqueueRaw(t, job, "client-key-1")
	f.killMsg(t, m, nil, consumer.DeadLetterInfo{JobID: "client-key-1", Channel: herald.ChannelDiscord})
	if _, err := f.store.Replay(ctx, Filter{IDs: []string{"client-key-1"}}, ReplayOptions{}); err != nil {
		t.Fatal(err)
	}
	got := f.next(t)
	if !strings.Contains(string(got.Data()), `"id":"client-key-1"`) {
		t.Errorf("replayed job lost its name: %s", got.Data())
	}
	noSecrets(t, "replayed job", string(got.Data()))
	if !strings.Contains(string(got.Data()), job.Credentials.Webhook) {
		t.Error("replayed job lost its sealed credential")
	}
}

func TestReplayEmptyFilterAndCancel(t *testing.T) {
	f := newFixture(t)
	threeLetters(t, f)
	if _, err := f.store.Replay(testkit.Context(t, 30*time.Second), Filter{Limit: 1}, ReplayOptions{}); !errors.Is(err, ErrEmptyFilter) {
		t.Errorf("err = %v, want ErrEmptyFilter", err)
	}
	ctx, cancel := context.WithCancel(testkit.Context(t, 30*time.Second))
	res, err := f.store.Replay(ctx, Filter{All: true}, ReplayOptions{Rate: 5, Progress: func(done, _ int) {
		if done == 1 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) || res.Replayed != 1 {
		t.Errorf("cancelled replay = %+v, %v", res, err)
	}
	if n := f.letters(t); n != 2 {
		t.Errorf("%d letters left, want 2", n)
	}
}

// enqueueRaw publishes job as its JSON with msgID and no job id.
func (f *fixture) enqueueRaw(t *testing.T, job *herald.Job, msgID string) jetstream.Msg {
	t.Helper()
	data, err := jsonEncode(job)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.js.PublishMsg(testkit.Context(t, 30*time.Second), &nats.Msg{Subject: herald.JobSubject(job.Channel), Data: data,
		Header: nats.Header{jetstream.MsgIDHeader: []string{msgID}}}); err != nil {
		t.Fatal(err)
	}
	return f.next(t)
}

// A letter deleted elsewhere while a replay runs is not republished.
func TestReplaySkipsLettersGoneMeanwhile(t *testing.T) {
	f := newFixture(t)
	ctx := testkit.Context(t, 30*time.Second)
	threeLetters(t, f)
	res, err := f.store.Replay(ctx, Filter{All: true}, ReplayOptions{Progress: func(done, _ int) {
		if done == 1 {
			if n, err := f.store.Purge(ctx, Filter{IDs: []string{"b"}}); err != nil || n != 1 {
				t.Errorf("purge b = %d, %v", n, err)
			}
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Replayed != 2 || res.Gone != 1 || res.Failed != 0 || !slices.Equal(res.IDs, []string{"a", "c"}) {
		t.Errorf("result = %+v", res)
	}
	for _, want := range []string{"a", "c"} {
		if m := f.next(t); !strings.Contains(string(m.Data()), `"id":"`+want+`"`) {
			t.Errorf("replayed %s, want %s", m.Data(), want)
		}
	}
	f.noJob(t)
}

// Replays running at once, on connections of their own as in two
// processes, send each dead letter exactly once between them: the others
// count it gone, none counts it failed.
func TestConcurrentReplaysSendEachLetterOnce(t *testing.T) {
	f := newFixture(t)
	const letters, replays = 40, 3
	for i := range letters {
		f.kill(t, f.job(t, herald.ChannelDiscord, "twice-"+strconv.Itoa(i)), consumer.DeadLetterInfo{})
	}
	results := make(chan ReplayResult, replays)
	errs := make(chan error, replays)
	for range replays {
		nc, js := testkit.Connect(t, f.nc.ConnectedUrl())
		_ = nc
		store := NewStore(js, WithStatus(f.status))
		go func() {
			res, err := store.Replay(testkit.Context(t, 30*time.Second), Filter{All: true}, ReplayOptions{})
			results <- res
			errs <- err
		}()
	}
	replayed, gone := 0, 0
	for range replays {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		res := <-results
		if res.Failed != 0 || res.Skipped != 0 {
			t.Errorf("result %+v, want nothing failed or skipped", res)
		}
		replayed += res.Replayed
		gone += res.Gone
	}
	// A replay that listed after another had sent some letters never saw
	// them: gone is at most the other replays' share.
	if replayed != letters || gone > (replays-1)*letters {
		t.Errorf("replayed %d and gone %d over %d replays, want %d and at most %d", replayed, gone, replays, letters, (replays-1)*letters)
	}
	// Each job once in the jobs stream, and no letter left.
	seen := map[string]int{}
	for range letters {
		m := f.next(t)
		job, err := herald.DecodeJob(m.Data())
		if err != nil {
			t.Fatal(err)
		}
		seen[job.ID]++
		_ = m.Ack()
	}
	f.noJob(t)
	if len(seen) != letters {
		t.Errorf("%d distinct jobs replayed, want %d", len(seen), letters)
	}
	if n := f.letters(t); n != 0 {
		t.Errorf("%d dead letters left", n)
	}
}

// A claim held by a replay that died keeps others off the letter until it
// expires; a failed republish releases it at once.
func TestReplayClaimHeldElsewhere(t *testing.T) {
	f := newFixture(t)
	ctx := testkit.Context(t, 30*time.Second)
	f.kill(t, f.job(t, herald.ChannelDiscord, "claimed"), consumer.DeadLetterInfo{})
	letter, err := f.store.Get(ctx, "claimed")
	if err != nil {
		t.Fatal(err)
	}
	st, err := f.store.stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	claims, err := f.store.claims(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := claims.Create(ctx, strconv.FormatUint(letter.Seq, 10), []byte("elsewhere")); err != nil {
		t.Fatal(err)
	}
	res, err := f.store.Replay(ctx, Filter{All: true}, ReplayOptions{})
	if err != nil || res.Replayed != 0 || res.Gone != 1 {
		t.Fatalf("replay of a claimed letter: %+v, %v; want it counted gone", res, err)
	}
	if n := f.letters(t); n != 1 {
		t.Fatalf("%d letters, want the claimed one kept", n)
	}
	f.noJob(t)
	if e, err := claims.Get(ctx, strconv.FormatUint(letter.Seq, 10)); err != nil || string(e.Value()) != "elsewhere" {
		t.Errorf("the other replay's claim was touched: %v", err)
	}
}
