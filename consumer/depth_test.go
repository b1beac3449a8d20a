package consumer

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestSampleDepth(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	before := time.Now()
	for range 3 {
		e.publish(discordJob(t, e.keys, "waiting"))
	}
	// Start high, so a missing dead-letter stream visibly resets to 0.
	e.metrics.QueueDepth.WithLabelValues("dead_letters").Set(42)
	e.metrics.QueueOldest.WithLabelValues("dead_letters").Set(42)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		SampleDepth(ctx, e.js, e.metrics, 20*time.Millisecond)
	}()
	depth := func(stream string) float64 { return testutil.ToFloat64(e.metrics.QueueDepth.WithLabelValues(stream)) }
	oldest := func(stream string) float64 { return testutil.ToFloat64(e.metrics.QueueOldest.WithLabelValues(stream)) }
	e.waitFor("jobs depth 3, dead letters 0", func() bool { return depth("jobs") == 3 && depth("dead_letters") == 0 })
	if age := oldest("jobs"); age <= 0 || age > time.Since(before).Seconds() {
		t.Errorf("oldest job age %vs, want within the %s since the first publish", age, time.Since(before))
	}
	if age := oldest("dead_letters"); age != 0 {
		t.Errorf("oldest dead letter age %v without dead letters, want 0", age)
	}
	// Nothing takes the jobs: the oldest one gets older at every sample.
	e.waitFor("the oldest job 100 ms old", func() bool { return oldest("jobs") >= 0.1 })

	dlq := e.newDLQ(0)
	for range 2 {
		if _, err := dlq.js.Publish(context.Background(), herald.DeadLetterSubject(herald.ChannelDiscord), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	e.waitFor("dead letters depth 2", func() bool { return depth("dead_letters") == 2 })
	e.waitFor("an oldest dead letter", func() bool { return oldest("dead_letters") > 0 })

	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("SampleDepth did not return after cancel")
	}
}

func TestPoolConsumerInfo(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	p, err := New(testConfig(), e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: newRecorder(nil)}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.ConsumerInfo(context.Background()); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("before Run: ConsumerInfo = %v, want ErrConsumerNotFound", err)
	}
	r := e.startPool(testConfig(), e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: newRecorder(nil)}))
	id := e.publish(discordJob(t, e.keys, "counted"))
	e.waitFinal(id)
	e.waitFor("delivered counted", func() bool {
		info, err := r.ConsumerInfo(context.Background())
		return err == nil && info.Name == herald.WorkersConsumer && info.Delivered.Consumer == 1 && info.NumAckPending == 0
	})
}
