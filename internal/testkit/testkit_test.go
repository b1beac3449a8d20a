package testkit_test

import (
	"context"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/nats-io/nats.go/jetstream"
)

func TestServerRestartKeepsStore(t *testing.T) {
	s, _, js := testkit.JetStream(t)
	ctx := testkit.Context(t, 20*time.Second)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "KIT", Subjects: []string{"kit.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "kit.a", []byte("x")); err != nil {
		t.Fatal(err)
	}
	port := s.Port()
	s.Restart()
	if s.Port() != port {
		t.Fatalf("restarted on port %d, want %d", s.Port(), port)
	}
	_, js2 := s.Connect()
	if got := testkit.StreamMsgs(t, js2, "KIT"); got != 1 {
		t.Fatalf("stream holds %d messages after restart, want 1", got)
	}
}

func TestClusterReplicatesAndSurvivesANode(t *testing.T) {
	c := testkit.NewCluster(t, 3)
	_, js := testkit.Connect(t, c.URLs())
	ctx := testkit.Context(t, 30*time.Second)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "KIT", Subjects: []string{"kit.>"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	c.Nodes[0].Shutdown()
	testkit.WaitFor(t, 20*time.Second, "a publish with one node down", func() bool {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := js.Publish(pctx, "kit.a", []byte("x"))
		return err == nil
	})
	c.Nodes[0].Start()
	c.WaitReady(t, 30*time.Second)
}

func TestAssertNoSecretsFindsThem(t *testing.T) {
	ft := &failRecorder{TB: t}
	testkit.AssertNoSecrets(ft, "text", "a "+testkit.WebhookToken+" b")
	if !ft.failed {
		t.Fatal("a webhook token in the text was not reported")
	}
	ft = &failRecorder{TB: t}
	testkit.AssertNoSecrets(ft, "text", "nothing secret", "extra-secret")
	if ft.failed {
		t.Fatal("clean text reported")
	}
}

type failRecorder struct {
	testing.TB
	failed bool
}

func (f *failRecorder) Errorf(string, ...any) { f.failed = true }
func (f *failRecorder) Helper()               {}

func TestClocks(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := testkit.NewClock(start)
	if !c.Now().Equal(start) {
		t.Fatalf("Now = %s, want %s", c.Now(), start)
	}
	c.Advance(time.Minute)
	if got := c.Now().Sub(start); got != time.Minute {
		t.Fatalf("advanced %s, want 1m", got)
	}
	var s testkit.ShiftedClock
	s.Advance(time.Hour)
	if d := time.Until(s.Now()); d < 59*time.Minute || d > 61*time.Minute {
		t.Fatalf("shifted clock is %s ahead, want about 1h", d)
	}
}

func TestMaskHidesSecrets(t *testing.T) {
	got := testkit.Mask("a "+testkit.WebhookToken+" b extra-secret c", "extra-secret")
	if got != "a [secret] b [secret] c" {
		t.Fatalf("Mask = %q", got)
	}
}
