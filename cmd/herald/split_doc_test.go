package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"
)

// splitDocMarker precedes the fenced block of docs/operations.md that the
// split deployment test runs.
const splitDocMarker = "<!-- split-deployment -->"

// docs/operations.md's split deployment, run as written by a shell: the
// built herald and a nats-server built from the module's own dependency are
// on PATH, and 127.0.0.1 is replaced by another loopback address whose ports
// are free, so the doc's fixed ports cannot clash with anything else on the
// machine. The secrets are made, NATS starts asking for a token, the ingest
// and the worker start, and the job sent is delivered to the fake Discord.
// The image's way to make the secrets, given beside the binary's, runs the
// same binary with the same arguments.
func TestSplitDeploymentDocRunsAsWritten(t *testing.T) {
	bin := buildHerald(t)
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("REQUIRE_CURL") != "" {
			t.Fatal("the doc sends its job with curl, which is not installed: install curl (apt-get install -y curl)")
		}
		t.Skip("the doc sends its job with curl, which is not installed (REQUIRE_CURL=1 makes this a failure)")
	}
	block := docBlock(t, filepath.Join("..", "..", "docs", "operations.md"), splitDocMarker)

	binDir := t.TempDir()
	if err := os.Symlink(bin, filepath.Join(binDir, "herald")); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", filepath.Join(binDir, "nats-server"), "github.com/nats-io/nats-server/v2")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build nats-server from the module cache: %v\n%s", err, out)
	}

	host := freeLoopbackHost(t, 4222, 8000, 9090, 9999)
	script := strings.ReplaceAll(block, "127.0.0.1", host)
	work := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// A file, not a pipe: the processes the doc leaves running keep their
	// output open after the shell exits, and Wait would wait for them.
	outFile, err := os.Create(filepath.Join(t.TempDir(), "output"))
	if err != nil {
		t.Fatal(err)
	}
	defer outFile.Close()
	out := output{outFile.Name()}
	sh := exec.CommandContext(ctx, "sh", "-e", "-c", script)
	sh.Dir = work
	sh.Env = []string{"PATH=" + binDir + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	sh.Stdout, sh.Stderr = outFile, outFile
	// Its own process group: the doc leaves NATS, the ingest, the worker and
	// the fake running in the background; they are stopped with the group,
	// when the test ends or its time is up.
	sh.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	sh.Cancel = func() error { return syscall.Kill(-sh.Process.Pid, syscall.SIGKILL) }
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := sh.Process.Pid
	t.Cleanup(func() {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		time.Sleep(time.Second)
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	})
	defer func() {
		if t.Failed() {
			t.Logf("the doc's commands printed:\n%s", out.String())
		}
	}()
	if err := sh.Wait(); err != nil {
		t.Fatalf("the doc's commands failed: %v", err)
	}
	if !strings.Contains(out.String(), `{"success":true,"error":null}`) {
		t.Fatalf("the ingest did not answer success")
	}
	testkit.WaitFor(t, 30*time.Second, "the fake Discord to print the message", func() bool {
		return strings.Contains(out.String(), `webhook 1 as "Streaky Bot"`) && strings.Contains(out.String(), "octocat")
	})

	// The secrets were made and used, and nothing printed any of them.
	env := readEnvFile(t, filepath.Join(work, "herald.env"))
	for _, name := range []string{"ENCRYPTION_KEY", "VPS_SECRET", "HERALD_VAULT_KEYS", "HERALD_NATS_TOKEN"} {
		if env[name] == "" {
			t.Errorf("herald.env has no %s", name)
		}
	}
	var secrets []string
	for _, v := range env {
		secrets = append(secrets, v)
	}
	testkit.AssertNoSecrets(t, "the doc's commands' output", out.String(), secrets...)

	// The image's command: its entrypoint is this binary, and the doc gives
	// it the same arguments, which print the same kind of file.
	image := regexp.MustCompile(`docker run --rm \S+ (.+?) > herald\.env`).FindStringSubmatch(block)
	direct := regexp.MustCompile(`(?m)^herald (.+?) > herald\.env$`).FindStringSubmatch(block)
	if image == nil || direct == nil {
		t.Fatalf("the doc does not make herald.env both with the image and with the binary:\n%s", block)
	}
	if image[1] != direct[1] {
		t.Errorf("the image is run with %q, the binary with %q", image[1], direct[1])
	}
	dockerfile, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(dockerfile), `ENTRYPOINT ["/herald"]`) || !strings.Contains(string(dockerfile), "-o /herald ./cmd/herald") {
		t.Fatal("the image's entrypoint is no longer the herald binary: docker run <image> ARGS is not herald ARGS")
	}
	viaImage, err := exec.Command(bin, strings.Fields(image[1])...).Output()
	if err != nil {
		t.Fatal(err)
	}
	fresh := parseEnv(string(viaImage))
	if len(fresh) != len(env) {
		t.Errorf("the image's command prints %d variables, the binary's %d", len(fresh), len(env))
	}
	for name, v := range env {
		if w := fresh[name]; w == "" || w == v || len(w) != len(v) {
			t.Errorf("%s: the image's command prints %q, not a fresh value of the binary's form", name, w)
		}
	}
}

// docBlock returns the fenced code block that follows marker in the
// Markdown file path.
func docBlock(t *testing.T, path, marker string) string {
	t.Helper()
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), marker)
	if !ok {
		t.Fatalf("%s has no %s", path, marker)
	}
	m := regexp.MustCompile("(?s)\\A\\s*```[a-z]*\\n(.*?)\\n```").FindStringSubmatch(after)
	if m == nil {
		t.Fatalf("%s: no fenced block right after %s", path, marker)
	}
	return m[1]
}

// freeLoopbackHost picks an address of 127.0.0.0/8 other than 127.0.0.1
// where every port given is free.
func freeLoopbackHost(t *testing.T, ports ...int) string {
	t.Helper()
	for range 50 {
		host := fmt.Sprintf("127.%d.%d.%d", 1+rand.IntN(254), 1+rand.IntN(254), 1+rand.IntN(254))
		free := true
		for _, p := range ports {
			l, err := net.Listen("tcp", net.JoinHostPort(host, fmt.Sprint(p)))
			if err != nil {
				free = false
				break
			}
			l.Close()
		}
		if free {
			return host
		}
	}
	t.Fatal("no loopback address with the doc's ports free")
	return ""
}

func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := os.Stat(path)
	if info.Mode().Perm() != 0o600 {
		t.Errorf("%s mode %v, want 0600", path, info.Mode().Perm())
	}
	return parseEnv(string(b))
}

// parseEnv reads NAME=value lines, skipping comments.
func parseEnv(s string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			out[k] = v
		}
	}
	return out
}

// output is what the doc's commands printed, read from its file.
type output struct{ path string }

func (o output) String() string {
	b, _ := os.ReadFile(o.path)
	return string(b)
}

// `herald vault key --env` prints every setting a process joining a shared
// NATS needs, each valid, and fresh on every run: with it alone an ingest
// and a worker start on a NATS that asks for its token.
func TestVaultKeyEnvIsEnoughToJoin(t *testing.T) {
	stdout, _, err := runVaultCLI(t, nil, false, "key", "--env")
	if err != nil {
		t.Fatal(err)
	}
	env := parseEnv(stdout)
	again, _, _ := runVaultCLI(t, nil, false, "key", "--env")
	for name, v := range parseEnv(again) {
		if env[name] == v {
			t.Errorf("%s is the same in two runs", name)
		}
	}
	srv := testkit.NewServer(t, testkit.WithToken(env["HERALD_NATS_TOKEN"]))
	env["HERALD_NATS_URL"] = srv.URL()
	env["HERALD_WORKER_HTTP_ADDR"] = "127.0.0.1:0"
	// Nothing else Herald would otherwise generate: the test config's own
	// ENCRYPTION_KEY and VPS_SECRET are replaced by the file's.
	for _, r := range []role{roleIngest, roleWorker} {
		app := newTestAppAs(t, r, env)
		waitReady(t, app.URL)
		if r == roleIngest && app.cfg.Ingest.APISecrets[0] != env["VPS_SECRET"] {
			t.Error("the ingest does not accept the file's VPS_SECRET")
		}
	}
}
