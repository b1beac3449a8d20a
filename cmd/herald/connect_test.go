package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"
)

// With no NATS to reach, a worker or an ingest gives up after
// nats.connect_timeout, naming the address it tried (without credentials)
// and the settings to check.
func TestStartWithoutNATSNamesTheAddress(t *testing.T) {
	addr := testkit.Addr(testkit.FreePort(t))
	tests := []struct {
		name string
		r    role
		env  map[string]string
		want []string
	}{
		{"worker, nats.url", roleWorker, map[string]string{"HERALD_NATS_URL": "nats://ops:hunter2-pw@" + addr},
			[]string{"nats://xxxxx@" + addr, "within 1s", "nats.connect_timeout", "check nats.url"}},
		{"ingest, embedded listen", roleIngest, map[string]string{"HERALD_NATS_EMBEDDED_LISTEN": addr},
			[]string{"nats://" + addr, "nats.connect_timeout", "nats.embedded.listen"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"HERALD_DATA_DIR": t.TempDir(), "HERALD_NATS_CONNECT_TIMEOUT": "1s",
				"HERALD_HTTP_ADDR": "127.0.0.1:0", "HERALD_WORKER_HTTP_ADDR": "127.0.0.1:0", "ENCRYPTION_KEY": testkit.Key, "VPS_SECRET": testSecret,
				"HERALD_VAULT_KEYS": testVaultKey, "HERALD_CHALLENGE_KEYS": testVaultKey}
			for k, v := range tt.env {
				env[k] = v
			}
			cfg, err := loadConfig(writeFile(t, "c.yaml", "{}"), envMap(env))
			if err != nil {
				t.Fatal(err)
			}
			logger, _ := testkit.Logger(t, "hunter2-pw")
			app := &App{cfg: cfg, role: tt.r, logger: logger}
			start := time.Now()
			err = app.Open(context.Background())
			took := time.Since(start)
			app.Close()
			if err == nil {
				t.Fatal("Open succeeded without NATS")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			testkit.AssertNoSecrets(t, "error", err.Error(), "hunter2-pw")
			if took > 10*time.Second {
				t.Errorf("gave up after %s, want about nats.connect_timeout (1s)", took)
			}
		})
	}
}

// The binary checks its environment before anything else.
func TestBinaryRefusesUnknownVariable(t *testing.T) {
	bin := buildHerald(t)
	cmd := exec.Command(bin, "version")
	cmd.Env = append(os.Environ(), "HERALD_CONSUMER_WROKERS=64")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1\n%s", err, out)
	}
	if !strings.Contains(string(out), "unknown environment variable HERALD_CONSUMER_WROKERS (did you mean HERALD_CONSUMER_WORKERS?)") {
		t.Errorf("output: %s", out)
	}
}

// /metrics says which Herald runs.
func TestBuildInfoMetric(t *testing.T) {
	app := newTestApp(t, nil)
	_, _, body := call(t, "GET", app.MetricsURL+"/metrics", "", "", "")
	want := `herald_build_info{go_version="` + runtime.Version() + `",version="` + version + `"} 1`
	if !strings.Contains(string(body), want) {
		t.Errorf("/metrics lacks %s", want)
	}
	if stampedVersion("v1.2.3") != "v1.2.3" || !strings.HasPrefix(stampedVersion("dev"), "dev") {
		t.Error("stampedVersion does not keep a version given at build time")
	}
}
