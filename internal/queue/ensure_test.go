package queue

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"
)

func TestEnsureRetriesTimeoutsOnly(t *testing.T) {
	calls := 0
	v, err := Ensure(context.Background(), func(ctx context.Context) (int, error) {
		calls++
		if calls < 3 {
			return 0, context.DeadlineExceeded
		}
		return 7, nil
	})
	if err != nil || v != 7 || calls != 3 {
		t.Errorf("Ensure = %d, %v after %d calls; want 7 after 3", v, err, calls)
	}
	refused := errors.New("stream name already in use with a different configuration")
	calls = 0
	if _, err := Ensure(context.Background(), func(ctx context.Context) (int, error) { calls++; return 0, refused }); !errors.Is(err, refused) || calls != 1 {
		t.Errorf("a refusal: %v after %d calls, want it at once", err, calls)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := Ensure(ctx, func(ctx context.Context) (int, error) { return 0, context.DeadlineExceeded }); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("past ctx: %v", err)
	}
}

// Processes starting together on a fresh cluster (compose's ingest and
// workers) create the same replicated streams at once; the server sometimes
// leaves such requests unanswered, and every process must still get its
// streams and buckets quickly.
func TestEnsureConcurrentlyOnAFreshCluster(t *testing.T) {
	c := testkit.NewCluster(t, 3)
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 3 {
		_, js := testkit.Connect(t, c.URLs())
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := EnsureJobsStream(ctx, js, StreamConfig{Replicas: 3})
			errs <- err
			_, err = EnsureStatusBucket(ctx, js, 0, 3)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}
