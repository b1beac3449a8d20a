package consumer

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/nats-io/nats.go/jetstream"
)

// inStreamStatus is a StatusStore that notes, at every Put, whether the job
// is still in the jobs stream, and can hold Puts until released.
type inStreamStatus struct {
	*recordingStatus
	stream jetstream.Stream

	mu       sync.Mutex
	inStream map[string][]bool // by job id, one per Put
	release  chan struct{}     // when set, each Put waits for one value (or done)
	done     chan struct{}     // closed at the end of the test: nothing is held
	held     chan string       // receives the job id of each held Put
}

func (s *inStreamStatus) Put(ctx context.Context, rec herald.Status) error {
	_, err := s.stream.GetLastMsgForSubject(ctx, herald.JobIDSubjectPattern(rec.ID))
	s.mu.Lock()
	s.inStream[rec.ID] = append(s.inStream[rec.ID], err == nil)
	release, held := s.release, s.held
	s.mu.Unlock()
	if release != nil {
		held <- rec.ID
		select {
		case <-release:
		case <-s.done:
		}
	}
	return s.recordingStatus.Put(ctx, rec)
}

func (s *inStreamStatus) puts(id string) []bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]bool(nil), s.inStream[id]...)
}

func newInStreamStatus(t *testing.T, e *testEnv) *inStreamStatus {
	t.Helper()
	st, err := e.js.Stream(context.Background(), herald.JobsStream)
	if err != nil {
		t.Fatal(err)
	}
	return &inStreamStatus{recordingStatus: e.status, stream: st, inStream: map[string][]bool{}}
}

// A job's status record is written while the job is still in the stream, for
// every outcome: a status lookup then always finds the record or the job.
func TestSettleRecordsBeforeTheJobLeaves(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	st := newInStreamStatus(t, e)
	sender := newRecorder(func(n int, job string) error {
		switch {
		case job == "perm":
			return herald.Permanent(errors.New("webhook deleted"))
		case job == "flaky" && n == 1:
			return errors.New("Discord API error: 500")
		}
		return nil
	})
	deps := e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: sender})
	deps.Status = st
	e.startPool(testConfig(), deps) // no dead letters: permanent failures are terminated

	for _, id := range []string{"ok", "perm", "flaky"} {
		job := discordJob(t, e.keys, id)
		job.ID = id
		e.publish(job)
	}
	want := map[string]herald.State{"ok": herald.StateDelivered, "perm": herald.StateFailed, "flaky": herald.StateDelivered}
	for id, state := range want {
		if got := e.waitFinal(id); got.State != state {
			t.Errorf("%s: state %s, want %s", id, got.State, state)
		}
		puts := st.puts(id)
		if len(puts) == 0 {
			t.Errorf("%s: no status write", id)
		}
		for i, in := range puts {
			if !in {
				t.Errorf("%s: status write %d of %d made after the job left the stream", id, i+1, len(puts))
			}
		}
	}
	e.waitFor("stream empty", func() bool { return e.streamMsgs() == 0 })
}

// A delivered job is recorded and acked in the background, at most
// 2*Workers at a time, and Run waits for those at shutdown.
func TestSettleInBackground(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	st := newInStreamStatus(t, e)
	st.release, st.done, st.held = make(chan struct{}), make(chan struct{}), make(chan string, 10)
	sender := newRecorder(nil)
	deps := e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: sender})
	deps.Status = st
	cfg := testConfig()
	cfg.Workers = 1 // two background slots
	p := e.startPool(cfg, deps)
	t.Cleanup(func() { close(st.done) }) // before the pool's cleanup stops it

	ids := []string{"j1", "j2", "j3"}
	for _, id := range ids {
		job := discordJob(t, e.keys, id)
		job.ID = id
		e.publish(job)
	}
	// j1 and j2 are recorded in the background and held there; the one
	// worker is free and sends j3, then waits for a background slot.
	if a, b := <-st.held, <-st.held; !(a == "j1" && b == "j2" || a == "j2" && b == "j1") {
		t.Fatalf("held writes for %s and %s, want j1 and j2", a, b)
	}
	e.waitFor("j3 sent while j1 and j2 are being recorded", func() bool { return sender.count() == 3 })
	if got := len(st.held); got != 0 {
		t.Errorf("%d more status writes started with both background slots taken", got)
	}
	st.release <- struct{}{}
	if id := <-st.held; id != "j3" {
		t.Fatalf("held write for %s, want j3", id)
	}

	// The worker is idle now; j2 and j3 are still being recorded.
	stopped := make(chan error, 1)
	go func() { err, _ := p.stop(); stopped <- err }()
	select {
	case <-stopped:
		t.Fatal("Run returned while delivered jobs were still being recorded")
	case <-time.After(300 * time.Millisecond):
	}
	st.release <- struct{}{}
	st.release <- struct{}{}
	if err := <-stopped; err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, id := range ids {
		if got, ok := e.status.last(id); !ok || got.State != herald.StateDelivered {
			t.Errorf("%s: status %+v, want delivered", id, got)
		}
	}
	e.waitFor("every job acked", func() bool { return e.streamMsgs() == 0 })
	if sender.count() != 3 {
		t.Errorf("sent %d jobs, want 3", sender.count())
	}
}

// A job stays in progress while its status record is being written, however
// long that takes: it is not redelivered (and sent again) meanwhile.
func TestSettleKeepsJobInProgress(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	st := newInStreamStatus(t, e)
	st.release, st.done, st.held = make(chan struct{}), make(chan struct{}), make(chan string, 10)
	sender := newRecorder(nil)
	deps := e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: sender})
	deps.Status = st
	cfg := testConfig()
	cfg.AckWait, cfg.SendTimeout = time.Second, 500*time.Millisecond
	e.startPool(cfg, deps)
	t.Cleanup(func() { close(st.done) })

	id := e.publish(discordJob(t, e.keys, "slow record"))
	if got := <-st.held; got != id {
		t.Fatalf("held write for %s, want %s", got, id)
	}
	// Long enough for JetStream to redeliver twice, were the job not kept
	// in progress.
	time.Sleep(2500 * time.Millisecond)
	st.release <- struct{}{}
	e.waitFor("job acked", func() bool { return e.streamMsgs() == 0 })
	if n := sender.count(); n != 1 {
		t.Errorf("sent %d times, want once", n)
	}
	if info := e.consumerInfo(herald.WorkersConsumer); info.NumRedelivered != 0 {
		t.Errorf("redelivered %d", info.NumRedelivered)
	}
}

// settledAt records what Deps.Outcomes is handed, with the job's records
// written by then.
type settledAt struct {
	status *recordingStatus
	take   map[string]bool // jobs whose outcome a waiting request takes
	mu     sync.Mutex
	got    map[string][]herald.Status // handed over, by job id
	before map[string][]herald.Status // the records written before each
}

func (s *settledAt) Settle(rec herald.Status) bool {
	written := s.status.all(rec.ID)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got[rec.ID] = append(s.got[rec.ID], rec)
	s.before[rec.ID] = append(s.before[rec.ID], written...)
	return s.take[rec.ID]
}

func (s *settledAt) of(id string) (got, before []herald.Status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]herald.Status(nil), s.got[id]...), append([]herald.Status(nil), s.before[id]...)
}

// Final outcomes reach Deps.Outcomes (the ingest of the same process) before
// their record is written, so a waiting request needs no round trip through
// NATS; retries never reach it.
func TestSettleHandsFinalOutcomesOver(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	sender := newRecorder(func(n int, job string) error {
		switch {
		case job == "perm":
			return errUnknownWebhook
		case job == "flaky" && n == 1:
			return errTransient
		}
		return nil
	})
	deps := e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: sender})
	settled := &settledAt{status: e.status, got: map[string][]herald.Status{}, before: map[string][]herald.Status{},
		take: map[string]bool{"taken": true, "perm": true}}
	deps.Outcomes = settled
	cfg := testConfig()
	e.startPool(cfg, deps) // no dead letters: permanent failures are terminated

	for _, id := range []string{"ok", "perm", "flaky", "taken"} {
		job := discordJob(t, e.keys, id)
		job.ID = id
		e.publish(job)
	}
	// A delivered job whose outcome a waiting request took has no record;
	// every other final outcome is recorded, taken or not.
	e.waitFor("every send made", func() bool { return sender.count() >= 5 })
	e.waitFor("stream empty", func() bool { return e.streamMsgs() == 0 })
	if recs := e.status.all("taken"); len(recs) != 0 {
		t.Errorf("taken: records %+v written, want none", recs)
	}
	want := map[string]herald.State{"ok": herald.StateDelivered, "perm": herald.StateFailed, "flaky": herald.StateDelivered, "taken": herald.StateDelivered}
	for id, state := range want {
		if id != "taken" {
			e.waitFinal(id)
		}
		got, before := settled.of(id)
		if len(got) != 1 {
			t.Fatalf("%s: handed over %d times, want once", id, len(got))
		}
		for _, rec := range got {
			if rec.State != state || rec.ID != id || rec.Channel != herald.ChannelDiscord {
				t.Errorf("%s: handed over %+v, want state %s", id, rec, state)
			}
		}
		if id == "perm" && (got[0].LastError == "" || got[0].Attempts != 1) {
			t.Errorf("perm: handed over %+v, want the error and one attempt", got[0])
		}
		for _, rec := range before {
			if rec.State.Final() {
				t.Errorf("%s: the final record was written before it was handed over", id)
			}
		}
	}
}
