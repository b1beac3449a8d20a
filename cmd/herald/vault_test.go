package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/fake"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/internal/testkit/relay"
	"github.com/heraldrelay/herald/internal/vault"
)

const (
	vaultKeyV1 = "v1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	vaultKeyV2 = "v2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
)

// runVaultCLI runs `herald vault args...` against env, as on a terminal when
// terminal is true.
func runVaultCLI(t *testing.T, env map[string]string, terminal bool, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	path := writeFile(t, "c.yaml", "{}")
	return execute(context.Background(), newVaultCmdWith(&path, envMap(env), func(any) bool { return terminal }), "", args...)
}

// Rotation while jobs flow through the real `herald serve`: credentials
// sealed under v1, the server running with v2 in front, `herald vault rotate`
// in the middle of a stream of jobs by credential id. Every job is delivered,
// none is dead-lettered, every credential ends under v2, and a second run has
// nothing to do.
func TestVaultRotateWhileJobsFlow(t *testing.T) {
	discord := fake.NewDiscord(t)
	keys := vaultKeyV2 + "," + vaultKeyV1
	app := newTestApp(t, map[string]string{"HERALD_VAULT_KEYS": keys, "HERALD_ADMIN_SECRET": testAdminSecret})

	// An older Herald, with only v1, stored the credentials.
	_, js := testkit.Connect(t, app.NATSURL())
	ctx := testkit.Context(t, 30*time.Second)
	creds, _, err := vault.EnsureBuckets(ctx, js, vault.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	checker := relay.DiscordChannel(t, nil)
	old, err := vault.New(vault.Config{Keys: []string{vaultKeyV1}}, vault.Deps{
		Credentials: creds, Checkers: map[herald.Channel]vault.TargetChecker{herald.ChannelDiscord: checker},
	})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	ids := make([]string, n)
	var secrets []string
	for i := range ids {
		tok := fmt.Sprintf("rotate-token-%d", i)
		info, err := old.Store(ctx, herald.ChannelDiscord, herald.Target{WebhookURL: discord.WebhookURL(fmt.Sprint(5000+i), tok)}, vault.StoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = info.ID
		secrets = append(secrets, tok)
	}

	var (
		accepted atomic.Int64
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			code, out := apiCall(t, app, "POST", "/v1/notifications", notificationByID("discord", ids[i%n], fmt.Sprint("job ", i)), secrets...)
			if code != http.StatusAccepted {
				t.Errorf("job %d: %d %v", i, code, out)
				return
			}
			accepted.Add(1)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	testkit.WaitFor(t, 15*time.Second, "jobs flowing", func() bool { return accepted.Load() >= 10 })
	env := map[string]string{"HERALD_NATS_URL": app.NATSURL(), "HERALD_VAULT_KEYS": keys, "HERALD_DATA_DIR": t.TempDir()}
	before := accepted.Load()
	stdout, stderr, err := runVaultCLI(t, env, true, "rotate")
	if err != nil {
		t.Fatalf("rotate: %v\n%s%s", err, stdout, stderr)
	}
	during := accepted.Load()
	testkit.WaitFor(t, 15*time.Second, "more jobs after the rotation", func() bool { return accepted.Load() >= during+10 })
	close(stop)
	wg.Wait()

	if want := "re-sealed 200 credentials under key v2 (0 already under it, 0 deleted meanwhile, 0 failed)"; !strings.Contains(stdout, want) {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
	if !strings.Contains(stderr, "200/200") || !strings.Contains(stderr, "[###") {
		t.Errorf("no progress bar on the terminal: %q", stderr)
	}
	testkit.WaitFor(t, 15*time.Second, "every accepted job delivered", func() bool { return int64(discord.Count()) == accepted.Load() })
	if code, list := adminCall(t, app, http.MethodGet, "/admin/dlq", ""); code != 200 || len(list["letters"].([]any)) != 0 {
		t.Fatalf("dead letters after the rotation: %v", list)
	}
	for _, id := range ids {
		if _, out := apiCall(t, app, "GET", "/v1/credentials/"+id, "", secrets...); out["key_id"] != "v2" {
			t.Fatalf("credential %s under %v", id, out["key_id"])
		}
	}
	stdout, _, err = runVaultCLI(t, env, false, "rotate")
	if err != nil || !strings.Contains(stdout, "re-sealed 0 credentials under key v2 (200 already under it") {
		t.Fatalf("second run: %v %q", err, stdout)
	}
	testkit.AssertNoSecrets(t, "log and output", app.Logs.String()+stdout+stderr, secrets...)
	t.Logf("%d jobs delivered, %d of them accepted while the rotation ran", accepted.Load(), during-before)
}

func TestVaultCLI(t *testing.T) {
	out, _, err := runVaultCLI(t, nil, false, "key")
	if err != nil {
		t.Fatal(err)
	}
	k, err := vault.ParseKey(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("vault key printed %q: %v", out, err)
	}
	if k.ID == "" {
		t.Fatal("no key id")
	}

	// No key configured and none generated: nothing could be opened.
	_, _, err = runVaultCLI(t, map[string]string{"HERALD_DATA_DIR": t.TempDir()}, false, "rotate")
	if err == nil || !strings.Contains(err.Error(), "vault.keys") {
		t.Fatalf("rotate without keys: %v", err)
	}

	// A NATS where Herald never stored a credential.
	s := testkit.NewServer(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, vaultKeyFile), []byte(vaultKeyV1+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err = runVaultCLI(t, map[string]string{"HERALD_NATS_URL": s.URL(), "HERALD_DATA_DIR": dir}, false, "rotate")
	if err != nil || !strings.Contains(out, "nothing to re-seal") {
		t.Fatalf("rotate on an empty NATS: %v %q", err, out)
	}

	// NATS unreachable.
	_, _, err = runVaultCLI(t, map[string]string{"HERALD_NATS_URL": "nats://127.0.0.1:1", "HERALD_VAULT_KEYS": vaultKeyV1}, false, "rotate", "--timeout", "500ms")
	if err == nil || !strings.Contains(err.Error(), "cannot reach NATS") {
		t.Fatalf("rotate without NATS: %v", err)
	}

	// A bad key is refused by name, without its material.
	_, err = loadConfig(writeFile(t, "c.yaml", "{}"), envMap(map[string]string{"HERALD_VAULT_KEYS": "v1:c2hvcnQtbWF0ZXJpYWw="}))
	if err == nil || !strings.Contains(err.Error(), "vault.keys") || strings.Contains(err.Error(), "c2hvcnQtbWF0ZXJpYWw") {
		t.Fatalf("bad key: %v", err)
	}
}

// With no vault key configured, `herald serve` generates one into data_dir
// (mode 0600) and logs the file's name only.
func TestServeGeneratesVaultKey(t *testing.T) {
	app := newTestApp(t, nil)
	path := filepath.Join(app.cfg.DataDir, vaultKeyFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	key := strings.TrimSpace(string(b))
	if _, err := vault.ParseKey(key); err != nil {
		t.Fatalf("generated key: %v", err)
	}
	_, material, _ := strings.Cut(key, ":")
	logs := app.Logs.String()
	if !strings.Contains(logs, vaultKeyFile) || strings.Contains(logs, material) {
		t.Fatalf("log does not name the file, or shows the key")
	}
}
