package queue

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"
)

func TestEmbeddedConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     EmbeddedConfig
		wantErr string
	}{
		{"minimal", EmbeddedConfig{StoreDir: "/tmp/x"}, ""},
		{"random port", EmbeddedConfig{StoreDir: "/tmp/x", Listen: "127.0.0.1:-1"}, ""},
		{"port zero", EmbeddedConfig{StoreDir: "/tmp/x", Listen: "127.0.0.1:0"}, ""},
		{"all interfaces", EmbeddedConfig{StoreDir: "/tmp/x", Listen: ":4222"}, ""},
		{"no store dir", EmbeddedConfig{}, "store dir"},
		{"no port", EmbeddedConfig{StoreDir: "/tmp/x", Listen: "127.0.0.1"}, "listen address"},
		{"bad port", EmbeddedConfig{StoreDir: "/tmp/x", Listen: "127.0.0.1:70000"}, "port"},
		{"port not a number", EmbeddedConfig{StoreDir: "/tmp/x", Listen: "127.0.0.1:nats"}, "port"},
		{"negative sync", EmbeddedConfig{StoreDir: "/tmp/x", SyncInterval: -time.Second}, "sync interval"},
		{"negative memory", EmbeddedConfig{StoreDir: "/tmp/x", MaxMemory: -1}, "max memory"},
		{"negative store", EmbeddedConfig{StoreDir: "/tmp/x", MaxStore: -1}, "max store"},
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

func TestStartEmbedded(t *testing.T) {
	for _, listen := range []string{"127.0.0.1:-1", "127.0.0.1:0"} {
		t.Run(listen, func(t *testing.T) {
			log, logs := newTestLogger(t)
			s, err := StartEmbedded(EmbeddedConfig{
				Listen:       listen,
				StoreDir:     t.TempDir(),
				SyncInterval: time.Second,
				MaxMemory:    64 << 20,
				MaxStore:     256 << 20,
			}, log)
			if err != nil {
				t.Fatalf("StartEmbedded: %v", err)
			}
			defer shutdown(s)
			if port := portOf(t, s); port == 4222 || port == 0 {
				t.Fatalf("listening on port %d, want a random port", port)
			}
			if got := s.Name(); got != DefaultServerName {
				t.Errorf("server name %q, want %q", got, DefaultServerName)
			}
			jsCfg := s.JetStreamConfig()
			if jsCfg == nil || jsCfg.MaxStore != 256<<20 || jsCfg.MaxMemory != 64<<20 || jsCfg.SyncInterval != time.Second {
				t.Errorf("JetStream config %+v, want max store 256 MiB, max memory 64 MiB, sync 1s", jsCfg)
			}
			_, js := testkit.Connect(t, s.ClientURL())
			if _, err := js.AccountInfo(testCtx(t)); err != nil {
				t.Fatalf("AccountInfo: %v", err)
			}
			if !strings.Contains(logs.String(), `level=DEBUG msg="Server is ready" component=nats-server`) {
				t.Errorf("server notices not logged at DEBUG with component: %s", logs.String())
			}
			if strings.Contains(logs.String(), "level=INFO") {
				t.Errorf("server notices logged above DEBUG: %s", logs.String())
			}
		})
	}
}

func TestStartEmbeddedFailsFastWhenPortTaken(t *testing.T) {
	first := testkit.NewServer(t)
	log, logs := newTestLogger(t)
	start := time.Now()
	s, err := StartEmbedded(EmbeddedConfig{Listen: testkit.Addr(first.Port()), StoreDir: t.TempDir()}, log)
	if err == nil {
		shutdown(s)
		t.Fatal("StartEmbedded on a taken port succeeded")
	}
	if elapsed := time.Since(start); elapsed > readyTimeout {
		t.Errorf("took %s to fail, want well under %s", elapsed, readyTimeout)
	}
	if !strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("fatal error not logged at ERROR: %s", logs.String())
	}
}

func TestStartEmbeddedInvalidConfig(t *testing.T) {
	if _, err := StartEmbedded(EmbeddedConfig{}, nil); err == nil {
		t.Fatal("StartEmbedded without store dir succeeded")
	}
}

func TestServerLoggerLevels(t *testing.T) {
	log, logs := newTestLogger(t)
	l := newServerLogger(log)
	l.Noticef("notice %d", 1)
	l.Warnf("warn %d", 2)
	l.Errorf("error %d", 3)
	l.Fatalf("fatal %d", 4)
	l.Debugf("debug %d", 5)
	l.Tracef("trace %d", 6)
	out := logs.String()
	for _, want := range []string{`level=DEBUG msg="notice 1"`, `level=WARN msg="warn 2"`, `level=ERROR msg="error 3"`, `level=ERROR msg="fatal 4"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	for _, unwanted := range []string{"debug 5", "trace 6"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("log has %q, want it dropped", unwanted)
		}
	}
	if got := l.fatal(); got != "fatal 4" {
		t.Errorf("fatal() = %q", got)
	}
}

func TestEmbeddedRestartKeepsStreams(t *testing.T) {
	dir := t.TempDir()
	s := newEmbedded(t, "", dir)
	port := portOf(t, s)
	_, js := testkit.Connect(t, s.ClientURL())
	ctx := testCtx(t)
	if _, err := EnsureJobsStream(ctx, js, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "herald.jobs.discord", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	shutdown(s)

	s2 := newEmbedded(t, testkit.Addr(port), dir)
	_, js2 := testkit.Connect(t, s2.ClientURL())
	st, err := js2.Stream(ctx, "HERALD_JOBS")
	if err != nil {
		t.Fatalf("stream after restart: %v", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("stream has %d messages after restart, want 1", info.State.Msgs)
	}
}

func TestStartEmbeddedUnusableStoreDir(t *testing.T) {
	file := t.TempDir() + "/not-a-dir"
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	log, _ := newTestLogger(t)
	start := time.Now()
	s, err := StartEmbedded(EmbeddedConfig{Listen: "127.0.0.1:-1", StoreDir: file}, log)
	if err == nil {
		shutdown(s)
		t.Fatal("StartEmbedded with a file as store dir succeeded")
	}
	if elapsed := time.Since(start); elapsed > readyTimeout {
		t.Errorf("took %s to fail", elapsed)
	}
	t.Logf("error: %v", err)
}
