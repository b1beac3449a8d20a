package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/fake"
	"github.com/heraldrelay/herald/internal/testkit"
)

// proc is the real binary running `herald serve`.
type proc struct {
	cmd  *exec.Cmd
	logs *testkit.LogBuffer
}

// startHerald starts `herald serve` with env added to the test's
// environment. Its output is checked for secrets when the test ends, and
// shown when it failed; it is killed if it still runs then.
func startHerald(t *testing.T, bin string, env []string) *proc {
	t.Helper()
	return startHeraldAs(t, bin, "serve", append(os.Environ(), env...))
}

// startHeraldAs starts `herald <role>` with exactly env, as startHerald
// does.
func startHeraldAs(t *testing.T, bin, role string, env []string) *proc {
	t.Helper()
	_, logs := testkit.Logger(t, testSecret, testAdminSecret)
	cmd := exec.Command(bin, role, "--config", writeFile(t, "c.yaml", "{}"))
	cmd.Env = env
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

// waitReady waits until herald at url is ready (its logs are shown when it
// does not become ready).
func waitReady(t *testing.T, url string) {
	t.Helper()
	// Every 200 ms, not faster: /readyz sits behind the per-client token
	// bucket (60, then 1/s), which a tighter loop empties before a slow
	// start-up (a cluster's replicated streams) is over.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("herald at %s not ready after 30s", url)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestKill9LosesNothing kills `herald serve` with SIGKILL while it delivers,
// restarts it on the same data directory, and checks that every job accepted
// before the kill is delivered, with duplicates bounded by what was in flight.
func TestKill9LosesNothing(t *testing.T) {
	bin := buildHerald(t)
	discord := unlimitedDiscord(t)
	// Slow enough that jobs are in flight when the process dies.
	discord.Script(func(fake.DiscordRequest, int) fake.Response { return fake.Response{Delay: 50 * time.Millisecond} })
	const workers = 8
	httpAddr, natsAddr := testkit.Addr(testkit.FreePort(t)), testkit.Addr(testkit.FreePort(t))
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
		// Every job goes to one webhook; all workers must be sending to it
		// when the process dies, so its in-flight cap is the pool's size.
		fmt.Sprintf("HERALD_PACING_MAX_IN_FLIGHT=%d", workers),
		"HERALD_CHANNELS_DISCORD_GLOBAL_RATE=100000",
		"HERALD_INGEST_STREAKY_WAIT=0s",
		"HERALD_LOG_LEVEL=warn",
		"ENCRYPTION_KEY=" + testkit.Key,
		"VPS_SECRET=" + testSecret,
		"PORT=",
	}
	url := "http://" + httpAddr
	p := startHerald(t, bin, env)
	waitReady(t, url)

	sealed := testkit.Seal(t, testkit.Keyring(t), discord.WebhookURL("555", "crash-token"))
	const jobs = 400
	accepted := map[string]bool{}
	for i := 0; i < jobs; i++ {
		body := fmt.Sprintf(`{"channel":"discord","credentials":{"webhook":%q},"message":{"title":"crash","text":"job-%d"}}`, sealed, i)
		if code, _, _ := call(t, http.MethodPost, url+"/v1/notifications", "X-API-Secret", testSecret, body); code != http.StatusAccepted {
			t.Fatalf("job %d: status %d", i, code)
		}
		accepted[fmt.Sprintf("job-%d", i)] = true
	}
	testkit.WaitFor(t, 15*time.Second, "some deliveries before the kill", func() bool { return discord.Count() >= 50 })
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = p.cmd.Process.Wait()
	before := discord.Count()
	if before >= jobs {
		t.Fatalf("all %d jobs were delivered before the kill; the test proves nothing", jobs)
	}

	p2 := startHerald(t, bin, env)
	waitReady(t, url)
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
	// In flight at the kill: up to `workers` sends, plus acks held for their
	// burst (consumer.ack_delay, 5 ms: about one job at this pace), the
	// newest ack the acker holds until the next burst, or acks sent but not
	// yet stored by the server.
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
	testkit.AssertNoSecrets(t, "logs", p.logs.String()+p2.logs.String(), "crash-token")
}
