package consumer

import (
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
)

func TestConfigDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	want := Config{
		Workers: 32, FirstSends: 32, Durable: herald.WorkersConsumer, AckWait: 30 * time.Second, MaxAckPending: 256,
		SendTimeout: 10 * time.Second, MinBackoff: time.Second, MaxBackoff: 5 * time.Minute,
		MaxRetryAfter: time.Hour, DrainTimeout: 15 * time.Second, MaxAttempts: 10, MaxAge: 24 * time.Hour, AckDelay: 5 * time.Millisecond,
		MaxParkedPerDestination: 2000, MaxParked: 20000,
	}
	if c != want {
		t.Errorf("defaults = %+v, want %+v", c, want)
	}
	if got := (Config{Workers: 100}).withDefaults().MaxAckPending; got != 400 {
		t.Errorf("MaxAckPending for 100 workers = %d, want 400", got)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero config: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"ok", Config{Workers: 4, AckWait: 5 * time.Second, SendTimeout: time.Second}, ""},
		{"negative workers", Config{Workers: -1}, "workers"},
		{"negative first sends", Config{FirstSends: -1}, "first sends"},
		{"bad durable", Config{Durable: "a.b"}, "durable"},
		{"short ack wait", Config{AckWait: 500 * time.Millisecond, SendTimeout: 100 * time.Millisecond}, "ack wait"},
		{"send timeout not below ack wait", Config{AckWait: 5 * time.Second, SendTimeout: 5 * time.Second}, "send timeout"},
		{"default send timeout above ack wait", Config{AckWait: 5 * time.Second}, "send timeout"},
		{"negative max ack pending", Config{MaxAckPending: -3}, "max ack pending"},
		{"max backoff below min", Config{MinBackoff: time.Minute, MaxBackoff: time.Second}, "max backoff"},
		{"negative min backoff", Config{MinBackoff: -time.Second}, "min backoff"},
		{"negative retry after", Config{MaxRetryAfter: -time.Second}, "max retry after"},
		{"negative drain", Config{DrainTimeout: -time.Second}, "drain timeout"},
		{"negative max attempts", Config{MaxAttempts: -1}, "max attempts"},
		{"negative max age", Config{MaxAge: -time.Hour}, "max age"},
		{"one attempt", Config{MaxAttempts: 1, MaxAge: time.Minute}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Validate = %v, want an error about %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewValidatesDeps(t *testing.T) {
	env := newTestEnv(t)
	ok := env.deps(map[herald.Channel]Sender{herald.ChannelDiscord: newRecorder(nil)})
	tests := []struct {
		name    string
		cfg     Config
		mutate  func(*Deps)
		wantErr string
	}{
		{"ok", Config{}, func(*Deps) {}, ""},
		{"bad config", Config{Workers: -1}, func(*Deps) {}, "workers"},
		{"no js", Config{}, func(d *Deps) { d.JS = nil }, "JS"},
		{"no keys", Config{}, func(d *Deps) { d.Keys = nil }, "Keys"},
		{"no senders", Config{}, func(d *Deps) { d.Senders = nil }, "Sender"},
		{"nil sender", Config{}, func(d *Deps) { d.Senders = map[herald.Channel]Sender{herald.ChannelDiscord: nil} }, "nil"},
		{"unknown channel", Config{}, func(d *Deps) { d.Senders = map[herald.Channel]Sender{"pigeon": newRecorder(nil)} }, "unknown channel"},
		{"nil middleware", Config{}, func(d *Deps) { d.Middlewares = []Middleware{nil} }, "middleware"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := ok
			tt.mutate(&d)
			p, err := New(tt.cfg, d)
			if tt.wantErr == "" {
				if err != nil || p == nil {
					t.Fatalf("New = %v", err)
				}
				cc := p.ConsumerConfig()
				if cc.Durable != herald.WorkersConsumer || cc.FilterSubject != herald.JobSubjects || cc.MaxDeliver != -1 ||
					cc.AckWait != DefaultAckWait || cc.MaxAckPending != 256 {
					t.Errorf("consumer config = %+v", cc)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New = %v, want an error about %q", err, tt.wantErr)
			}
		})
	}
}
