package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heraldrelay/herald/crypto"
	"github.com/heraldrelay/herald/internal/fake"
)

// buildHerald compiles the real binary once per test run.
func buildHerald(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "herald")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type proc struct {
	cmd  *exec.Cmd
	logs *syncBuffer
}

func startHerald(t *testing.T, bin string, env []string) *proc {
	t.Helper()
	logs := &syncBuffer{}
	cmd := exec.Command(bin, "serve", "--config", writeFile(t, "c.yaml", "{}"))
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, logs: logs}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_, _ = cmd.Process.Wait()
		}
	})
	return p
}

func waitReady(t *testing.T, url string, p *proc) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("herald did not become ready; logs:\n%s", p.logs.String())
}

// TestKill9LosesNothing kills `herald serve` with SIGKILL while it delivers,
// restarts it on the same data directory, and checks that every job accepted
// before the kill is delivered, with duplicates bounded by what was in flight.
func TestKill9LosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped with -short")
	}
	bin := buildHerald(t)
	discord := fake.NewDiscord(t)
	// Slow enough that jobs are in flight when the process dies.
	discord.Script(func(fake.DiscordRequest, int) fake.Response { return fake.Response{Delay: 50 * time.Millisecond} })
	// A bucket large enough that pacing never holds a send: this test is about
	// crashes, not rate limits.
	discord.Limit(1_000_000, time.Second, 0)
	const workers = 8
	httpAddr, natsAddr := freeAddr(t), freeAddr(t)
	env := []string{
		"HERALD_DATA_DIR=" + t.TempDir(),
		"HERALD_HTTP_ADDR=" + httpAddr,
		"HERALD_NATS_EMBEDDED_LISTEN=" + natsAddr,
		"HERALD_CHANNELS_DISCORD_ALLOWED_HOSTS=127.0.0.1",
		"HERALD_CHANNELS_DISCORD_ALLOW_HTTP=true",
		fmt.Sprintf("HERALD_CONSUMER_WORKERS=%d", workers),
		"HERALD_CONSUMER_ACK_WAIT=2s",
		"HERALD_CONSUMER_SEND_TIMEOUT=1s",
		"HERALD_PACING_MAX_HOLD=500ms",
		"HERALD_CHANNELS_DISCORD_GLOBAL_RATE=100000",
		"HERALD_INGEST_STREAKY_WAIT=0s",
		"HERALD_LOG_LEVEL=warn",
		"ENCRYPTION_KEY=" + testKey,
		"VPS_SECRET=" + testSecret,
		"PORT=",
	}
	url := "http://" + httpAddr
	p := startHerald(t, bin, env)
	waitReady(t, url, p)

	keys, _ := crypto.NewKeyring(testKey)
	sealed, _ := keys.Seal(discord.WebhookURL("555", "crash-token"))
	const jobs = 400
	accepted := map[string]bool{}
	for i := 0; i < jobs; i++ {
		body := fmt.Sprintf(`{"channel":"discord","credentials":{"webhook":%q},"message":{"title":"crash","text":"job-%d"}}`, sealed, i)
		req, _ := http.NewRequest(http.MethodPost, url+"/v1/notifications", bytes.NewReader([]byte(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-API-Secret", testSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("job %d: status %d", i, resp.StatusCode)
		}
		accepted[fmt.Sprintf("job-%d", i)] = true
	}
	waitFor(t, "some deliveries before the kill", func() bool { return discord.Count() >= 50 })
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = p.cmd.Process.Wait()
	before := discord.Count()
	if before >= jobs {
		t.Fatalf("all %d jobs were delivered before the kill; the test proves nothing", jobs)
	}

	p2 := startHerald(t, bin, env)
	waitReady(t, url, p2)
	seen := map[string]int{}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		seen = map[string]int{}
		for _, r := range discord.Requests() {
			e := r.Body["embeds"].([]any)[0].(map[string]any)
			seen[e["description"].(string)]++
		}
		if len(seen) >= jobs {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var missing []string
	for id := range accepted {
		if seen[id] == 0 {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d accepted jobs never delivered after restart (e.g. %v); logs:\n%s", len(missing), missing[:min(5, len(missing))], p2.logs.String())
	}
	dups := discord.Count() - jobs
	t.Logf("delivered before kill: %d; duplicates after restart: %d (workers in flight: %d)", before, dups, workers)
	// In flight at the kill: up to `workers` sends, plus acks sent but not yet
	// stored by the server.
	if dups > 2*workers {
		t.Fatalf("%d duplicates, more than could have been in flight (%d)", dups, 2*workers)
	}
	_ = p2.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p2.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("herald exited with %v after SIGTERM; logs:\n%s", err, p2.logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Error("herald did not exit within 30 s of SIGTERM")
	}
	if strings.Contains(p.logs.String()+p2.logs.String(), "crash-token") {
		t.Error("logs contain the webhook token")
	}
}
