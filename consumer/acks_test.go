package consumer

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/queue"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/nats-io/nats.go/jetstream"
)

// fetchAll publishes n jobs and returns them fetched, unacked.
func fetchAll(t *testing.T, e *testEnv, n int) []jetstream.Msg {
	t.Helper()
	for i := range n {
		e.publishRaw(herald.JobSubjectPrefix+"discord", []byte(`{}`), fmt.Sprintf("ack-%d", i))
	}
	cons, err := e.js.CreateOrUpdateConsumer(context.Background(), herald.JobsStream, jetstream.ConsumerConfig{
		Durable: "acker-test", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Hour, MaxAckPending: 10_000,
	})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []jetstream.Msg
	for len(msgs) < n {
		batch, err := cons.Fetch(n-len(msgs), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
	}
	return msgs
}

// A full burst is sent at once, however long the delay, but for its newest
// ack, which is held back until the next burst.
func TestAckerSendsAFullBurstAtOnce(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	msgs := fetchAll(t, e, maxAckBurst)
	a := newAcker(time.Hour, time.Hour, slog.New(slog.DiscardHandler))
	defer func() { close(a.in); <-a.done }()
	for _, m := range msgs {
		a.in <- m
	}
	e.waitFor("every job but the held one acked", func() bool { return e.streamMsgs() == 1 })
}

// Closing the acker sends what it holds before done closes.
func TestAckerFlushesWhenClosed(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	msgs := fetchAll(t, e, 7)
	a := newAcker(time.Hour, time.Hour, slog.New(slog.DiscardHandler))
	for _, m := range msgs {
		a.in <- m
	}
	if n := e.streamMsgs(); n != 7 {
		t.Fatalf("%d jobs in the stream before the burst, want 7", n)
	}
	close(a.in)
	<-a.done
	e.waitFor("every job acked", func() bool { return e.streamMsgs() == 0 })
}

// A burst that is not full goes out after the delay.
func TestAckerSendsAfterTheDelay(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	msgs := fetchAll(t, e, 3)
	a := newAcker(10*time.Millisecond, 10*time.Millisecond, slog.New(slog.DiscardHandler))
	defer func() { close(a.in); <-a.done }()
	for _, m := range msgs {
		a.in <- m
	}
	e.waitFor("every job acked", func() bool { return e.streamMsgs() == 0 })
}

// The newest ack of a burst waits for the next burst, which sends it; with
// none, it goes after the hold.
func TestAckerHoldsTheNewestUntilTheNext(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	msgs := fetchAll(t, e, 3)
	a := newAcker(time.Millisecond, time.Hour, slog.New(slog.DiscardHandler))
	defer func() { close(a.in); <-a.done }()
	for i, m := range msgs {
		a.in <- m
		// Each burst sends the one held before it and holds its own.
		want := uint64(len(msgs) - i)
		e.waitFor(fmt.Sprintf("%d jobs left after burst %d", want, i+1), func() bool { return e.streamMsgs() == want })
		time.Sleep(20 * time.Millisecond) // the acker has settled: nothing more goes
		if n := e.streamMsgs(); n != want {
			t.Fatalf("%d jobs in the stream after burst %d, want %d: the newest ack was not held", n, i+1, want)
		}
	}
}

// Jobs acked one at a time keep the jobs stream's last block in use: the
// server does not create a block file and delete one per job, as it does
// when each ack empties the stream.
func TestAckerKeepsTheLastBlockInUse(t *testing.T) {
	t.Parallel()
	blocks := func(hold time.Duration, left uint64) int {
		srv, _, js := testkit.JetStream(t)
		if _, err := queue.EnsureJobsStream(testkit.Context(t, 5*time.Second), js, queue.StreamConfig{}); err != nil {
			t.Fatal(err)
		}
		cons, err := js.CreateOrUpdateConsumer(testkit.Context(t, 5*time.Second), herald.JobsStream, jetstream.ConsumerConfig{
			Durable: "blocks", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Hour,
		})
		if err != nil {
			t.Fatal(err)
		}
		a := newAcker(time.Millisecond, hold, slog.New(slog.DiscardHandler))
		defer func() { close(a.in); <-a.done }()
		const jobs = 20
		for i := range jobs {
			if _, err := js.Publish(testkit.Context(t, 5*time.Second), herald.JobSubjectPrefix+"discord", []byte(`{}`)); err != nil {
				t.Fatal(err)
			}
			batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			for m := range batch.Messages() {
				a.in <- m
			}
			// One at a time: the previous job is gone before the next comes.
			testkit.WaitFor(t, 15*time.Second, fmt.Sprintf("job %d in, the one before acked", i), func() bool {
				return testkit.StreamMsgs(t, js, herald.JobsStream) == left
			})
		}
		// The highest block file number: one more per block the server made.
		files, err := filepath.Glob(filepath.Join(srv.StoreDir(), "jetstream", "*", "streams", herald.JobsStream, "msgs", "*.blk"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no block files of the jobs stream (%v)", err)
		}
		highest := 0
		for _, f := range files {
			n, err := strconv.Atoi(strings.TrimSuffix(filepath.Base(f), ".blk"))
			if err != nil {
				t.Fatalf("block file %s", f)
			}
			highest = max(highest, n)
		}
		return highest
	}
	// Each ack sent at once empties the stream: a block per job. That is
	// what the hold is for; if the server stops doing it, the hold is moot.
	if n := blocks(time.Nanosecond, 0); n < 10 {
		t.Errorf("acks sent at once: block %d after 20 jobs, want one per job (the server no longer makes a block per emptied stream?)", n)
	}
	if n := blocks(time.Hour, 1); n > 2 {
		t.Errorf("newest ack held: block %d after 20 jobs, want the first one or two", n)
	}
}
