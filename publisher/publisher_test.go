package publisher_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/queue"
	"github.com/heraldrelay/herald/publisher"
	"github.com/nats-io/nats.go/jetstream"
)

func TestPublishStoresJob(t *testing.T) {
	s := newTestServer(t)
	_, js, st := newTestJetStream(t, s, queue.StreamConfig{})
	ctx := testCtx(t)
	pub := publisher.New(js)

	job := discordJob()
	before := time.Now().UTC()
	res, err := pub.Publish(ctx, job)
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if job.Version != herald.JobVersion || !herald.ValidID(job.ID) || job.CreatedAt.Before(before.Add(-time.Second)) || job.CreatedAt.Location() != time.UTC {
		t.Errorf("job not completed in place: version %d id %q created %v", job.Version, job.ID, job.CreatedAt)
	}
	if res.ID != job.ID || res.Stream != herald.JobsStream || res.Sequence != 1 || res.Duplicate {
		t.Errorf("result = %+v", res)
	}

	raw, err := st.GetMsg(ctx, res.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if raw.Subject != "herald.jobs.discord."+job.ID {
		t.Errorf("subject = %q", raw.Subject)
	}
	if got := raw.Header.Get(jetstream.MsgIDHeader); got != job.ID {
		t.Errorf("Nats-Msg-Id = %q, want the job id %q", got, job.ID)
	}
	got, err := publisher.Decode(raw.Data)
	if err != nil {
		t.Fatalf("Decode stored job: %v", err)
	}
	if !reflect.DeepEqual(got, *job) {
		t.Errorf("stored job differs:\n got %+v\nwant %+v", got, *job)
	}
	if strings.HasSuffix(string(raw.Data), "\n") {
		t.Error("wire JSON ends with a newline")
	}
}

func TestPublishKeepsGivenFields(t *testing.T) {
	s := newTestServer(t)
	_, js, _ := newTestJetStream(t, s, queue.StreamConfig{})
	job := discordJob()
	job.ID = "my-job_1"
	job.CreatedAt = time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC)
	res, err := publisher.New(js).Publish(testCtx(t), job)
	if err != nil {
		t.Fatal(err)
	}
	if res.ID != "my-job_1" || job.ID != "my-job_1" || !job.CreatedAt.Equal(time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC)) {
		t.Errorf("given fields changed: %+v, %+v", res, job)
	}
}

func TestPublishDeduplicates(t *testing.T) {
	s := newTestServer(t)
	_, js, st := newTestJetStream(t, s, queue.StreamConfig{})
	ctx := testCtx(t)
	pub := publisher.New(js)

	t.Run("by job id", func(t *testing.T) {
		job := discordJob()
		first, err := pub.Publish(ctx, job)
		if err != nil {
			t.Fatal(err)
		}
		again := discordJob()
		again.ID = job.ID
		second, err := pub.Publish(ctx, again)
		if err != nil {
			t.Fatal(err)
		}
		if first.Duplicate || !second.Duplicate || second.Sequence != first.Sequence {
			t.Errorf("first %+v second %+v; want the second a duplicate of the first", first, second)
		}
	})
	t.Run("by message id", func(t *testing.T) {
		first, err := pub.Publish(ctx, discordJob(), publisher.WithMsgID("client-key:abc"))
		if err != nil {
			t.Fatal(err)
		}
		// A different job (new id) with the same idempotency key is the same publish.
		second, err := pub.Publish(ctx, discordJob(), publisher.WithMsgID("client-key:abc"))
		if err != nil {
			t.Fatal(err)
		}
		if first.Duplicate || !second.Duplicate || second.Sequence != first.Sequence {
			t.Errorf("first %+v second %+v; want the second a duplicate of the first", first, second)
		}
		raw, err := st.GetMsg(ctx, first.Sequence)
		if err != nil {
			t.Fatal(err)
		}
		if got := raw.Header.Get(jetstream.MsgIDHeader); got != "client-key:abc" {
			t.Errorf("Nats-Msg-Id = %q", got)
		}
		third, err := pub.Publish(ctx, discordJob(), publisher.WithMsgID("client-key:other"))
		if err != nil || third.Duplicate {
			t.Errorf("another key: %+v, %v; want a new message", third, err)
		}
	})
	if n := msgCount(t, st); n != 3 {
		t.Errorf("stream holds %d jobs, want 3", n)
	}
}

func TestPublishInvalidSendsNothing(t *testing.T) {
	s := newTestServer(t)
	_, js, st := newTestJetStream(t, s, queue.StreamConfig{})
	ctx := testCtx(t)
	pub := publisher.New(js)

	tests := []struct {
		name string
		job  *herald.Job
		opts []publisher.Option
	}{
		{"nil job", nil, nil},
		{"unknown channel", &herald.Job{Channel: "sms", Message: herald.Message{Text: "x"}}, nil},
		{"no credentials", &herald.Job{Channel: herald.ChannelDiscord, Message: herald.Message{Text: "x"}}, nil},
		{"no content", &herald.Job{Channel: herald.ChannelDiscord, Credentials: herald.Credentials{Webhook: sealedWebhook}}, nil},
		{"future version", func() *herald.Job { j := discordJob(); j.Version = 2; return j }(), nil},
		{"bad id", func() *herald.Job { j := discordJob(); j.ID = "has space"; return j }(), nil},
		{"empty msg id", discordJob(), []publisher.Option{publisher.WithMsgID("")}},
		{"msg id with newline", discordJob(), []publisher.Option{publisher.WithMsgID("a\r\nX-Evil: 1")}},
		{"msg id too long", discordJob(), []publisher.Option{publisher.WithMsgID(strings.Repeat("k", 1000))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pub.Publish(ctx, tt.job, tt.opts...)
			if !errors.Is(err, herald.ErrInvalidJob) {
				t.Fatalf("Publish = %v, want ErrInvalidJob", err)
			}
			if errors.Is(err, publisher.ErrNotStored) {
				t.Errorf("validation error also wraps ErrNotStored: %v", err)
			}
			if strings.Contains(err.Error(), sealedWebhook) {
				t.Errorf("error leaks credentials: %v", err)
			}
		})
	}
	if n := msgCount(t, st); n != 0 {
		t.Errorf("invalid jobs stored %d messages", n)
	}
}

func TestPublishFullStreamNotStored(t *testing.T) {
	s := newTestServer(t)
	_, js, st := newTestJetStream(t, s, queue.StreamConfig{MaxBytes: 2048})
	ctx := testCtx(t)
	pub := publisher.New(js)
	var err error
	stored := uint64(0)
	for i := 0; i < 20 && err == nil; i++ {
		if _, err = pub.Publish(ctx, discordJob()); err == nil {
			stored++
		}
	}
	if !errors.Is(err, publisher.ErrNotStored) {
		t.Fatalf("Publish to a full stream = %v, want ErrNotStored", err)
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		t.Errorf("the server's refusal is not reachable with errors.As: %v", err)
	}
	if stored == 0 || msgCount(t, st) != stored {
		t.Errorf("stored %d, stream holds %d", stored, msgCount(t, st))
	}
}

func TestPublishServerDownNotStored(t *testing.T) {
	s := newTestServer(t)
	nc, js, _ := newTestJetStream(t, s, queue.StreamConfig{})
	pub := publisher.New(js)
	if _, err := pub.Publish(testCtx(t), discordJob()); err != nil {
		t.Fatal(err)
	}
	s.Shutdown()
	s.WaitForShutdown()
	deadline := time.Now().Add(10 * time.Second)
	for nc.IsConnected() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := pub.Publish(ctx, discordJob())
	if !errors.Is(err, publisher.ErrNotStored) {
		t.Fatalf("Publish with the server down = %v, want ErrNotStored", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Publish took %s, want about its 500ms deadline", elapsed)
	}
}

func TestPublishNoStream(t *testing.T) {
	s := newTestServer(t)
	_, js, st := newTestJetStream(t, s, queue.StreamConfig{})
	if err := js.DeleteStream(testCtx(t), st.CachedInfo().Config.Name); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := publisher.New(js).Publish(ctx, discordJob())
	if !errors.Is(err, publisher.ErrNotStored) {
		t.Fatalf("Publish without a stream = %v, want ErrNotStored", err)
	}
}

func TestPublishConcurrent(t *testing.T) {
	s := newTestServer(t)
	_, js, st := newTestJetStream(t, s, queue.StreamConfig{})
	pub := publisher.New(js)
	ctx := testCtx(t)
	const n = 50
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			_, err := pub.Publish(ctx, discordJob())
			errs <- err
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got := msgCount(t, st); got != n {
		t.Errorf("stream holds %d jobs, want %d", got, n)
	}
}
