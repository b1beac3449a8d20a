package dlq

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/consumer"
	"github.com/heraldrelay/herald/internal/testkit"
)

func TestEnsureStream(t *testing.T) {
	f := newFixture(t) // created the stream once with defaults
	ctx := testkit.Context(t, 30*time.Second)
	st, err := EnsureStream(ctx, f.js, StreamConfig{MaxAge: 48 * time.Hour, MaxBytes: 1 << 20})
	if err != nil {
		t.Fatalf("second EnsureStream: %v", err)
	}
	cfg := st.CachedInfo().Config
	if cfg.Name != herald.DeadLetterStream || len(cfg.Subjects) != 1 || cfg.Subjects[0] != herald.DeadLetterSubjects {
		t.Errorf("stream %s on %v", cfg.Name, cfg.Subjects)
	}
	if cfg.Retention != jetstream.LimitsPolicy || cfg.Storage != jetstream.FileStorage || cfg.Duplicates != 2*time.Minute {
		t.Errorf("retention %v storage %v duplicates %s", cfg.Retention, cfg.Storage, cfg.Duplicates)
	}
	if cfg.MaxAge != 48*time.Hour || cfg.MaxBytes != 1<<20 || cfg.Discard != jetstream.DiscardNew {
		t.Errorf("max age %s, max bytes %d, discard %v", cfg.MaxAge, cfg.MaxBytes, cfg.Discard)
	}
	if got := streamConfig(StreamConfig{}).MaxAge; got != 30*24*time.Hour {
		t.Errorf("default max age %s, want 720h", got)
	}

	for _, bad := range []StreamConfig{{MaxAge: -time.Hour}, {MaxAge: time.Minute}, {Replicas: 6}, {MaxBytes: -1}} {
		if _, err := EnsureStream(ctx, f.js, bad); err == nil {
			t.Errorf("EnsureStream(%+v) succeeded", bad)
		}
	}
}

func TestWriterHeadersAndBodyUnchanged(t *testing.T) {
	f := newFixture(t)
	ctx := testkit.Context(t, 30*time.Second)
	job := f.job(t, herald.ChannelDiscord, "job-1")
	if _, err := f.pub.Publish(ctx, job); err != nil {
		t.Fatal(err)
	}
	m := f.next(t)
	meta, _ := m.Metadata()
	original := bytes.Clone(m.Data())

	first := time.Date(2026, 3, 1, 10, 0, 0, 123456789, time.UTC)
	last := first.Add(90 * time.Minute)
	long := "Discord API error: 500\r\nInternal Server Error " + strings.Repeat("é", 800)
	info := consumer.DeadLetterInfo{
		JobID: "job-1", Channel: herald.ChannelDiscord, Reason: long, Cause: consumer.CauseBudgetExhausted,
		StatusCode: 500, Attempts: 10, FirstAttempt: first, LastAttempt: last,
		Subject: m.Subject(), Sequence: meta.Sequence.Stream,
	}
	if err := f.w.DeadLetter(ctx, m, info); err != nil {
		t.Fatal(err)
	}

	st, _ := f.js.Stream(ctx, herald.DeadLetterStream)
	raw, err := st.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if raw.Subject != "herald.dlq.discord" {
		t.Errorf("subject %q", raw.Subject)
	}
	if !bytes.Equal(raw.Data, original) {
		t.Errorf("body changed:\n got %s\nwant %s", raw.Data, original)
	}
	seq := strconv.FormatUint(meta.Sequence.Stream, 10)
	want := map[string]string{
		HeaderCause:            "budget_exhausted",
		HeaderStatusCode:       "500",
		HeaderAttempts:         "10",
		HeaderFirstAttempt:     "2026-03-01T10:00:00.123456789Z",
		HeaderLastAttempt:      "2026-03-01T11:30:00.123456789Z",
		HeaderOriginalSubject:  herald.JobIDSubject(herald.ChannelDiscord, "job-1"),
		HeaderJobID:            "job-1",
		HeaderOriginalSequence: seq,
		HeaderOriginalMsgID:    "job-1",
		jetstream.MsgIDHeader:  "dlq-job-1-" + seq,
	}
	for k, v := range want {
		if got := raw.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	reason := raw.Header.Get(HeaderReason)
	if len(reason) > MaxReasonBytes || !utf8.ValidString(reason) || strings.ContainsAny(reason, "\r\n") {
		t.Errorf("reason not one valid line of at most 1 KiB (%d bytes): %q", len(reason), reason)
	}
	if !strings.HasPrefix(reason, "Discord API error: 500 Internal Server Error éé") || !strings.HasSuffix(reason, "…") {
		t.Errorf("reason = %q", reason)
	}
	noSecrets(t, "dead letter", string(raw.Data))
}

func TestWriterDuplicateStoredOnce(t *testing.T) {
	f := newFixture(t)
	ctx := testkit.Context(t, 30*time.Second)
	job := f.job(t, herald.ChannelTelegram, "dup-1")
	m := f.enqueue(t, job)
	meta, _ := m.Metadata()
	info := consumer.DeadLetterInfo{JobID: "dup-1", Channel: herald.ChannelTelegram, Cause: consumer.CausePermanent,
		Reason: "blocked", Subject: m.Subject(), Sequence: meta.Sequence.Stream}
	for range 3 {
		if err := f.w.DeadLetter(ctx, m, info); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.letters(t); n != 1 {
		t.Errorf("stream holds %d letters after 3 publishes of one, want 1", n)
	}
}

func TestWriterChannelAndDefaults(t *testing.T) {
	f := newFixture(t)
	ctx := testkit.Context(t, 30*time.Second)
	// A body that is not a job, as the consumer hands over an undecodable
	// message: no job id, no channel; sequence and subject come from msg.
	if _, err := f.js.PublishMsg(ctx, &nats.Msg{Subject: "herald.jobs.discord", Data: []byte("not json"),
		Header: nats.Header{"X-Custom": []string{"kept"}, "Nats-Expected-Stream": []string{herald.JobsStream}}}); err != nil {
		t.Fatal(err)
	}
	m := f.next(t)
	for _, c := range []herald.Channel{"", "bogus.>", "slack"} {
		if err := f.w.DeadLetter(ctx, m, consumer.DeadLetterInfo{JobID: "seq-1", Channel: c, Cause: consumer.CauseUndecodable, Reason: "malformed"}); err != nil {
			t.Fatalf("channel %q: %v", c, err)
		}
	}
	st, _ := f.js.Stream(ctx, herald.DeadLetterStream)
	raw, err := st.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if raw.Subject != "herald.dlq.unknown" {
		t.Errorf("subject %q, want herald.dlq.unknown", raw.Subject)
	}
	if raw.Header.Get(HeaderOriginalSubject) != "herald.jobs.discord" || raw.Header.Get(HeaderOriginalSequence) != "1" {
		t.Errorf("original subject/seq not taken from the message: %v", raw.Header)
	}
	if raw.Header.Get("X-Custom") != "kept" || raw.Header.Get("Nats-Expected-Stream") != "" {
		t.Errorf("headers not copied as documented: %v", raw.Header)
	}
	if raw.Header.Get(HeaderStatusCode) != "" || raw.Header.Get(HeaderFirstAttempt) != "" {
		t.Errorf("empty fields written: %v", raw.Header)
	}
	if n := f.letters(t); n != 1 {
		t.Errorf("%d letters, want 1 (same job and sequence)", n)
	}
}

func TestWriterNotStored(t *testing.T) {
	f := newFixture(t)
	ctx := testkit.Context(t, 30*time.Second)
	m := f.enqueue(t, f.job(t, herald.ChannelDiscord, "lost-1"))
	if err := f.js.DeleteStream(ctx, herald.DeadLetterStream); err != nil {
		t.Fatal(err)
	}
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	err := f.w.DeadLetter(dctx, m, consumer.DeadLetterInfo{JobID: "lost-1", Channel: herald.ChannelDiscord})
	if !errors.Is(err, ErrNotStored) {
		t.Fatalf("err = %v, want ErrNotStored", err)
	}
	if err := f.w.DeadLetter(ctx, nil, consumer.DeadLetterInfo{}); !errors.Is(err, ErrNotStored) {
		t.Errorf("nil msg: err = %v", err)
	}
}

func TestOneLine(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"plain", 10, "plain"},
		{"a\r\nb\tc  d", 20, "a b c d"},
		{"  x  ", 10, "x"},
		{"bad\xffbyte", 20, "bad byte"},
		{"abcdefghij", 7, "abcd…"},
		{"ééééé", 6, "é…"},
	}
	for _, tt := range tests {
		if got := oneLine(tt.in, tt.max); got != tt.want {
			t.Errorf("oneLine(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
		if got := oneLine(tt.in, tt.max); len(got) > tt.max || !utf8.ValidString(got) {
			t.Errorf("oneLine(%q, %d) = %q: too long or invalid", tt.in, tt.max, got)
		}
	}
}
