package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/nats-io/nats.go/jetstream"
)

func TestStreamConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     StreamConfig
		wantErr string
	}{
		{"defaults", StreamConfig{}, ""},
		{"full", StreamConfig{Replicas: 3, DuplicateWindow: time.Minute, MaxAge: time.Hour, Memory: true, MaxBytes: 1 << 30}, ""},
		{"negative replicas", StreamConfig{Replicas: -1}, "replicas"},
		{"too many replicas", StreamConfig{Replicas: 7}, "replicas"},
		{"negative window", StreamConfig{DuplicateWindow: -time.Second}, "duplicate window"},
		{"negative age", StreamConfig{MaxAge: -time.Second}, "max age"},
		{"negative bytes", StreamConfig{MaxBytes: -1}, "max bytes"},
		{"window over age", StreamConfig{MaxAge: time.Minute}, "exceeds max age"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestEnsureJobsStreamCreatesAndUpdates(t *testing.T) {
	_, _, js := testkit.JetStream(t)
	ctx := testCtx(t)

	st, err := EnsureJobsStream(ctx, js, StreamConfig{})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	cfg := st.CachedInfo().Config
	if cfg.Name != herald.JobsStream || len(cfg.Subjects) != 1 || cfg.Subjects[0] != herald.JobSubjects {
		t.Errorf("name/subjects = %s %v", cfg.Name, cfg.Subjects)
	}
	if cfg.Retention != jetstream.WorkQueuePolicy {
		t.Errorf("retention = %v, want work queue", cfg.Retention)
	}
	if cfg.Storage != jetstream.FileStorage {
		t.Errorf("storage = %v, want file", cfg.Storage)
	}
	if cfg.Discard != jetstream.DiscardNew {
		t.Errorf("discard = %v, want new", cfg.Discard)
	}
	if cfg.Duplicates != DefaultDuplicateWindow || cfg.Replicas != 1 || cfg.MaxAge != 0 || cfg.MaxBytes != -1 {
		t.Errorf("duplicates %s replicas %d max age %s max bytes %d; want defaults", cfg.Duplicates, cfg.Replicas, cfg.MaxAge, cfg.MaxBytes)
	}

	// Same config again: no error, nothing changes.
	if _, err := EnsureJobsStream(ctx, js, StreamConfig{}); err != nil {
		t.Fatalf("ensure again: %v", err)
	}

	// A message survives an update.
	if _, err := js.Publish(ctx, herald.JobSubject(herald.ChannelDiscord), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	st, err = EnsureJobsStream(ctx, js, StreamConfig{DuplicateWindow: 30 * time.Second, MaxAge: time.Hour, MaxBytes: 1 << 20})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Duplicates != 30*time.Second || info.Config.MaxAge != time.Hour || info.Config.MaxBytes != 1<<20 {
		t.Errorf("after update: duplicates %s max age %s max bytes %d", info.Config.Duplicates, info.Config.MaxAge, info.Config.MaxBytes)
	}
	if info.State.Msgs != 1 {
		t.Errorf("update lost messages: %d left", info.State.Msgs)
	}

	// Storage cannot change in place: refused, not recreated.
	if _, err := EnsureJobsStream(ctx, js, StreamConfig{Memory: true}); err == nil {
		t.Error("switching to memory storage succeeded, want an error")
	}
	if _, err := EnsureJobsStream(ctx, js, StreamConfig{Replicas: -1}); err == nil {
		t.Error("invalid config accepted")
	}
}

func TestEnsureJobsStreamMemory(t *testing.T) {
	_, _, js := testkit.JetStream(t)
	st, err := EnsureJobsStream(testCtx(t), js, StreamConfig{Memory: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := st.CachedInfo().Config.Storage; got != jetstream.MemoryStorage {
		t.Errorf("storage = %v, want memory", got)
	}
}

func TestJobsStreamFullRefusesPublish(t *testing.T) {
	_, _, js := testkit.JetStream(t)
	ctx := testCtx(t)
	if _, err := EnsureJobsStream(ctx, js, StreamConfig{MaxBytes: 1024}); err != nil {
		t.Fatal(err)
	}
	payload := []byte(strings.Repeat("x", 300))
	var err error
	stored := 0
	for i := 0; i < 10 && err == nil; i++ {
		if _, err = js.Publish(ctx, herald.JobSubject(herald.ChannelTelegram), payload); err == nil {
			stored++
		}
	}
	if err == nil {
		t.Fatal("a full stream kept accepting publishes")
	}
	if stored == 0 {
		t.Fatal("the stream refused the first publish")
	}
	st, _ := js.Stream(ctx, herald.JobsStream)
	info, _ := st.Info(ctx)
	if info.State.Msgs != uint64(stored) {
		t.Errorf("stream holds %d messages, want the %d accepted ones (DiscardNew keeps them)", info.State.Msgs, stored)
	}
}

func TestEnsureStatusBucket(t *testing.T) {
	_, _, js := testkit.JetStream(t)
	ctx := testCtx(t)

	kv, err := EnsureStatusBucket(ctx, js, 0, 0)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Bucket() != herald.StatusBucket || st.TTL() != DefaultStatusTTL || st.History() != 1 {
		t.Errorf("bucket %s ttl %s history %d; want %s 24h 1", st.Bucket(), st.TTL(), st.History(), herald.StatusBucket)
	}
	if kst, ok := st.(*jetstream.KeyValueBucketStatus); ok {
		if kst.StreamInfo().Config.Storage != jetstream.FileStorage || kst.StreamInfo().Config.Replicas != 1 {
			t.Errorf("storage %v replicas %d", kst.StreamInfo().Config.Storage, kst.StreamInfo().Config.Replicas)
		}
	} else {
		t.Errorf("status is %T, want *jetstream.KeyValueBucketStatus", st)
	}
	if _, err := kv.Put(ctx, "job1", []byte(`{"id":"job1"}`)); err != nil {
		t.Fatal(err)
	}

	kv, err = EnsureStatusBucket(ctx, js, time.Hour, 1)
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	st, err = kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.TTL() != time.Hour {
		t.Errorf("ttl after update = %s, want 1h", st.TTL())
	}
	if _, err := kv.Get(ctx, "job1"); err != nil {
		t.Errorf("record lost by the update: %v", err)
	}
	if _, err := EnsureStatusBucket(ctx, js, -time.Second, 1); err == nil {
		t.Error("negative ttl accepted")
	}
	if _, err := EnsureStatusBucket(ctx, js, time.Hour, -1); err == nil {
		t.Error("negative replicas accepted")
	}
}

// A bucket made by the key-value helper (an earlier Herald) is taken over:
// its records kept, per-record TTLs allowed, and no delete markers added.
func TestEnsureStatusBucketTakesOverAHelperBucket(t *testing.T) {
	_, _, js := testkit.JetStream(t)
	ctx := testCtx(t)
	old, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: herald.StatusBucket, History: 1, TTL: DefaultStatusTTL, Storage: jetstream.FileStorage,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Put(ctx, "kept", []byte(`{"id":"kept"}`)); err != nil {
		t.Fatal(err)
	}
	kv, err := EnsureStatusBucket(ctx, js, 0, 0)
	if err != nil {
		t.Fatalf("take over: %v", err)
	}
	if _, err := kv.Get(ctx, "kept"); err != nil {
		t.Errorf("record lost: %v", err)
	}
	s, err := js.Stream(ctx, "KV_"+herald.StatusBucket)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	if !cfg.AllowMsgTTL || cfg.SubjectDeleteMarkerTTL != 0 || cfg.MaxMsgsPerSubject != 1 || !cfg.AllowDirect || !cfg.AllowRollup {
		t.Errorf("stream config %+v", cfg)
	}
	// A record may carry its own, shorter TTL.
	if _, err := js.Publish(ctx, "$KV."+herald.StatusBucket+".brief", []byte(`{}`), jetstream.WithMsgTTL(time.Second)); err != nil {
		t.Fatalf("publish with a TTL: %v", err)
	}
	testkit.WaitFor(t, 10*time.Second, "the brief record to expire", func() bool {
		_, err := kv.Get(ctx, "brief")
		return errors.Is(err, jetstream.ErrKeyNotFound)
	})
	if _, err := kv.Get(ctx, "kept"); err != nil {
		t.Errorf("the bucket's own TTL record expired with the brief one: %v", err)
	}
}

func TestStatusBucketTTLExpires(t *testing.T) {
	_, _, js := testkit.JetStream(t)
	ctx := testCtx(t)
	kv, err := EnsureStatusBucket(ctx, js, time.Second, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "short", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 15*time.Second, "record to expire", func() bool {
		_, err := kv.Get(ctx, "short")
		return errors.Is(err, jetstream.ErrKeyNotFound)
	})
}

func TestReady(t *testing.T) {
	s, nc, js := testkit.JetStream(t)
	ctx := testCtx(t)

	if err := Ready(ctx, nc, js); err == nil {
		t.Error("Ready without the jobs stream = nil, want an error")
	}
	if _, err := EnsureJobsStream(ctx, js, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	if err := Ready(ctx, nc, js); err != nil {
		t.Fatalf("Ready = %v, want nil", err)
	}

	s.Shutdown()
	testkit.WaitFor(t, 10*time.Second, "disconnect", func() bool { return !nc.IsConnected() })
	if err := Ready(ctx, nc, js); !errors.Is(err, ErrNotConnected) {
		t.Errorf("Ready with the server down = %v, want ErrNotConnected", err)
	}
	if err := Ready(ctx, nil, js); !errors.Is(err, ErrNotConnected) {
		t.Errorf("Ready(nil conn) = %v", err)
	}
}

// TestReadyFalseWhenStreamFull: a jobs stream with no room left refuses
// every publish, so the process is not ready, and is again once there is
// room.
func TestReadyFalseWhenStreamFull(t *testing.T) {
	_, nc, js := testkit.JetStream(t)
	ctx := testCtx(t)
	st, err := EnsureJobsStream(ctx, js, StreamConfig{MaxBytes: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := Ready(ctx, nc, js); err != nil {
		t.Fatalf("Ready on an empty stream = %v", err)
	}
	big := make([]byte, 32<<10)
	for i := 0; ; i++ {
		if _, err := js.Publish(ctx, herald.JobIDSubject(herald.ChannelDiscord, fmt.Sprint(i)), big); err != nil {
			break // full: DiscardNew refuses
		}
		if i > 100 {
			t.Fatal("the stream never filled")
		}
	}
	if err := Ready(ctx, nc, js); !errors.Is(err, ErrStreamFull) {
		t.Fatalf("Ready on a full stream = %v, want ErrStreamFull", err)
	}
	if err := st.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	if err := Ready(ctx, nc, js); err != nil {
		t.Fatalf("Ready after the stream emptied = %v", err)
	}
}

func TestReadyBoundedByContext(t *testing.T) {
	_, nc, js := testkit.JetStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Ready(ctx, nc, js); err == nil {
		t.Error("Ready with an ended context = nil")
	}
}
