package bench

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/queue"
)

// newTestJetStream starts an embedded NATS server with Herald's jobs stream
// in memory and returns its URL and a JetStream client.
func newTestJetStream(t *testing.T) (string, jetstream.JetStream) {
	t.Helper()
	s, _, js := testkit.JetStream(t)
	if _, err := queue.EnsureJobsStream(testkit.Context(t, 10*time.Second), js, queue.StreamConfig{Memory: true}); err != nil {
		t.Fatal(err)
	}
	return s.URL(), js
}

func TestBaselineStreamCopiesTheJobsStream(t *testing.T) {
	_, js := newTestJetStream(t)
	ctx := context.Background()
	for range 2 { // the second run replaces the first's leftover
		if err := ensureBaselineStream(ctx, js); err != nil {
			t.Fatal(err)
		}
	}
	s, err := js.Stream(ctx, BaselineStream)
	if err != nil {
		t.Fatal(err)
	}
	got := s.CachedInfo().Config
	if got.Storage != jetstream.MemoryStorage || got.Retention != jetstream.WorkQueuePolicy ||
		got.Duplicates != queue.DefaultDuplicateWindow || len(got.Subjects) != 1 || got.Subjects[0] != baselineSubject {
		t.Errorf("baseline stream config %+v", got)
	}
}

func TestBaselinePublishesEveryJobAndCleansUp(t *testing.T) {
	url, js := newTestJetStream(t)
	j := jobs{marker: "hb-test-", sealed: []string{"c2VhbGVkLXdlYmhvb2stMQ==", "c2VhbGVkLXdlYmhvb2stMg=="}}
	for _, via := range []Via{ViaStreaky, ViaAPI, ViaNATS} {
		r, err := runBaseline(context.Background(), url, via, j, 200, 8)
		if err != nil {
			t.Fatalf("%s: %v", via, err)
		}
		if r.Sent != 200 || r.Accepted != 200 || len(r.Refused) != 0 || r.AcceptedPerSecond <= 0 || r.HTTPLatency.Count != 200 {
			t.Fatalf("%s: baseline %+v", via, r)
		}
	}
	if _, err := js.Stream(context.Background(), BaselineStream); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("the baseline stream was left behind: %v", err)
	}
	// The jobs stream got none of the baseline's jobs.
	if n := testkit.StreamMsgs(t, js, herald.JobsStream); n != 0 {
		t.Errorf("jobs stream holds %d messages", n)
	}
}
