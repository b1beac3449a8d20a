package faulttest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/internal/testkit/relay"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/consumer"
	"github.com/heraldrelay/herald/internal/queue"
	"github.com/heraldrelay/herald/internal/status"
	"github.com/heraldrelay/herald/publisher"
)

// TestClusterNodeKilledWhileJobsFlow kills the node the consumer (and, when
// possible, the publisher) is connected to in the middle of a steady stream
// of publishes to an R3 jobs stream, brings it back on the same store, and
// checks that every acknowledged job is delivered, that duplicates stay
// within the consumer's ack-pending window, and that the connections came
// back by themselves.
func TestClusterNodeKilledWhileJobsFlow(t *testing.T) {
	const (
		jobs    = 500
		pace    = 8 * time.Millisecond
		killAt  = 150
		workers = 8
		// maxAckPending bounds the jobs delivered but not yet acked. A job
		// is delivered twice only when its ack is lost (the ack went to the
		// dying node, or the consumer's new leader had not yet applied it),
		// so at most the jobs outstanding at the failover can come back:
		// the duplicate bound.
		maxAckPending = 64
	)
	start := time.Now()
	cluster := testkit.NewCluster(t, 3)
	urls := cluster.URLs()
	ctx := testkit.Context(t, 2*time.Minute)
	log := newLogger(t)
	keys := testkit.Keyring(t)
	fd, discord := newDiscord(t)
	webhook := fd.WebhookURL(webhookID, webhookToken)

	connect := func(name string) (*nats.Conn, jetstream.JetStream) {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		nc, err := queue.Connect(cctx, urls, name, log)
		if err != nil {
			t.Fatalf("connect %s: %v", name, err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		return nc, js
	}
	consNC, consJS := connect("faulttest-worker")

	// The stream and bucket need the three peers: retry while the cluster
	// settles.
	var kv jetstream.KeyValue
	testkit.WaitFor(t, 30*time.Second, "the R3 jobs stream and status bucket", func() bool {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := queue.EnsureJobsStream(sctx, consJS, queue.StreamConfig{Replicas: 3}); err != nil {
			return false
		}
		var err error
		kv, err = queue.EnsureStatusBucket(sctx, consJS, 0, 3)
		return err == nil
	})

	relay.StartPool(t, consJS, consumer.Config{
		Workers:       workers,
		MaxAckPending: maxAckPending,
		AckWait:       3 * time.Second,
		SendTimeout:   time.Second,
		MinBackoff:    100 * time.Millisecond,
		MaxBackoff:    500 * time.Millisecond,
		MaxAttempts:   1000,
		DrainTimeout:  5 * time.Second,
	}, consumer.Deps{
		JS:      consJS,
		Keys:    keys,
		Senders: map[herald.Channel]consumer.Sender{herald.ChannelDiscord: discord},
		Status:  status.New(kv, consNC),
		Logger:  log,
	})

	// The victim is the consumer's node; put the publisher on it too when
	// the client's random server pick allows (a few tries).
	victimName := consNC.ConnectedServerName()
	pubNC, pubJS := connect("faulttest-publisher")
	for i := 0; i < 15 && pubNC.ConnectedServerName() != victimName; i++ {
		pubNC.Close()
		pubNC, pubJS = connect("faulttest-publisher")
	}
	var victim *testkit.Server
	for _, n := range cluster.Nodes {
		if n.NATS().Name() == victimName {
			victim = n
		}
	}
	if victim == nil {
		t.Fatalf("consumer connected to unknown server %q", victimName)
	}
	onVictim := map[string]*nats.Conn{"worker": consNC}
	if pubNC.ConnectedServerName() == victimName {
		onVictim["publisher"] = pubNC
	}
	pub := publisher.New(pubJS)

	var (
		accepted = make(map[string]bool) // key of every acknowledged job
		retries  int                     // failed publish attempts, all retried
		killed   time.Time
		restart  = make(chan struct{})
		restarts sync.WaitGroup
	)
	pubStart := time.Now()
	for i := range jobs {
		if i == killAt {
			t.Logf("killing %s (worker%s connected to it)", victimName, map[bool]string{true: " and publisher", false: ""}[len(onVictim) == 2])
			victim.Shutdown()
			killed = time.Now()
			// Bring it back after a while, on the same store, while the
			// publisher keeps going.
			restarts.Go(func() {
				time.Sleep(1500 * time.Millisecond)
				victim.Start()
				close(restart)
			})
		}
		job := discordJob(t, keys, webhook, "job "+marker("c", i))
		job.ID = herald.NewID()
		for attempt := 0; ; attempt++ {
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := pub.Publish(pctx, job)
			cancel()
			if err == nil {
				accepted[key("c", i)] = true
				break
			}
			if !errors.Is(err, publisher.ErrNotStored) {
				t.Fatalf("publish %d: %v", i, err)
			}
			if ctx.Err() != nil {
				t.Fatalf("publish %d: gave up: %v", i, err)
			}
			retries++
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(pace)
	}
	pubTime := time.Since(pubStart)
	restarts.Wait()
	<-restart

	// Every accepted job is delivered.
	want := len(accepted)
	var got map[string]int
	testkit.WaitFor(t, 45*time.Second, "every accepted job to be delivered", func() bool {
		got = deliveries(fd, webhookID)
		for m := range accepted {
			if got[m] == 0 {
				return false
			}
		}
		return true
	})
	dups := 0
	for _, n := range got {
		dups += n - 1
	}
	if dups > maxAckPending {
		t.Errorf("%d duplicate deliveries, want at most %d (MaxAckPending)", dups, maxAckPending)
	}
	for name, nc := range onVictim {
		if nc.Stats().Reconnects == 0 {
			t.Errorf("%s connection did not reconnect after its server was killed", name)
		}
	}
	testkit.WaitFor(t, 10*time.Second, "every connection to be up", func() bool {
		return consNC.IsConnected() && pubNC.IsConnected()
	})
	testkit.WaitFor(t, 30*time.Second, "the restarted node to rejoin JetStream", func() bool {
		return victim.NATS().JetStreamIsCurrent()
	})
	t.Logf("jobs accepted %d/%d, delivered %d distinct, failover publish retries %d, duplicates %d (bound %d), "+
		"publishing took %s (pace %s), worker reconnects %d, publisher on victim %v, total %s since kill %s",
		want, jobs, len(got), retries, dups, maxAckPending, pubTime.Round(time.Millisecond), pace,
		consNC.Stats().Reconnects, onVictim["publisher"] != nil,
		time.Since(start).Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
}
