package consumer

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
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

// A full burst is sent at once, however long the delay.
func TestAckerSendsAFullBurstAtOnce(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	msgs := fetchAll(t, e, maxAckBurst)
	a := newAcker(time.Hour, slog.New(slog.DiscardHandler))
	defer func() { close(a.in); <-a.done }()
	for _, m := range msgs {
		a.in <- m
	}
	e.waitFor("every job acked", func() bool { return e.streamMsgs() == 0 })
}

// Closing the acker sends what it holds before done closes.
func TestAckerFlushesWhenClosed(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	msgs := fetchAll(t, e, 7)
	a := newAcker(time.Hour, slog.New(slog.DiscardHandler))
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
	a := newAcker(10*time.Millisecond, slog.New(slog.DiscardHandler))
	defer func() { close(a.in); <-a.done }()
	for _, m := range msgs {
		a.in <- m
	}
	e.waitFor("every job acked", func() bool { return e.streamMsgs() == 0 })
}
