package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/heraldrelay/herald/internal/vault"
)

// Child process timings.
const (
	readyTimeout = 60 * time.Second
	stopTimeout  = 30 * time.Second
	// idleSettle is how long a started child is left alone before its idle
	// memory is read.
	idleSettle = time.Second
)

// child is a `herald serve`, a `herald ingest` or a `herald bench relay`,
// started by the harness.
type child struct {
	role    string // "serve", "ingest" or "bench relay"
	cmd     *exec.Cmd
	dir     string // temporary: config file and data directory
	url     string // http://127.0.0.1:<port>
	natsURL string // nats://127.0.0.1:<port>
	logs    *tailBuffer
	exited  chan struct{}
	waitErr error // set before exited closes
	// cgroup holds the child under Config.Limits; nil without limits.
	cgroup *cgroup
	// ready is how long the child took from its start to answering /readyz.
	ready time.Duration
}

// joinCgroupScript is run by /bin/sh to start a child inside its cgroup from
// its first instruction: it writes its own pid to each cgroup.procs file
// given before "--", then execs the command after it (same pid).
const joinCgroupScript = `while [ "$1" != -- ]; do echo $$ > "$1" || exit 97; shift; done; shift; exec "$@"`

// startChild starts cfg.Executable serve on loopback ports with a fresh data
// directory, the given key and secret, and the fake Discord allowed; it
// returns once the child answers /readyz. With natsURL set it starts
// `herald ingest` publishing to that server instead, configured the same way.
func startChild(ctx context.Context, cfg Config, key, secret, natsURL string) (*child, error) {
	dir, err := os.MkdirTemp("", "herald-bench-")
	if err != nil {
		return nil, err
	}
	c := &child{role: "serve", dir: dir, logs: &tailBuffer{max: 64 << 10}, exited: make(chan struct{})}
	fail := func(err error) (*child, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	configFile := cfg.ConfigFile
	if configFile == "" {
		configFile = filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(configFile, []byte("{}\n"), 0o600); err != nil {
			return fail(err)
		}
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return fail(err)
	}
	c.url, c.natsURL = "http://"+httpAddr, natsURL
	if cfg.BareRelay {
		c.role = "bench relay"
		c.cmd = exec.Command(cfg.Executable, "bench", "relay", "--listen", httpAddr)
		c.cmd.Env = append(parentEnv(os.Environ()), "ENCRYPTION_KEY="+key, "VPS_SECRET="+secret)
		return c.start(ctx, cfg, fail)
	}
	natsEnv := "HERALD_NATS_URL=" + natsURL
	if natsURL == "" {
		natsAddr, err := freeAddr()
		if err != nil {
			return fail(err)
		}
		c.natsURL = "nats://" + natsAddr
		natsEnv = "HERALD_NATS_EMBEDDED_LISTEN=" + natsAddr
	} else {
		c.role = "ingest"
	}
	globalRate := DefaultGlobalRate
	if cfg.GlobalLimit > 0 {
		globalRate = cfg.GlobalLimit
	}
	env := append(parentEnv(os.Environ()),
		"HERALD_DATA_DIR="+filepath.Join(dir, "data"),
		"HERALD_HTTP_ADDR="+httpAddr,
		natsEnv,
		"HERALD_LOG_LEVEL=warn",
		"HERALD_CHANNELS_DISCORD_ALLOWED_HOSTS=127.0.0.1,localhost",
		"HERALD_CHANNELS_DISCORD_ALLOW_HTTP=true",
		"HERALD_CHANNELS_DISCORD_GLOBAL_RATE="+strconv.Itoa(globalRate),
		"HERALD_INGEST_STREAKY_WAIT="+cfg.StreakyWait.String(),
		// One client sending thousands of requests a second is what a
		// benchmark does and what the per-client token buckets refuse; turn
		// them on with --env HERALD_RATELIMIT_ENABLED=true (and large
		// buckets) to measure their cost.
		"HERALD_RATELIMIT_ENABLED=false",
		// The harness is one client with --concurrency connections.
		"HERALD_HTTP_MAX_CONNECTIONS_PER_CLIENT=0",
		// The harness publishes to the child's embedded NATS itself (--via
		// nats, the baseline): no token on that loopback listener.
		"HERALD_NATS_EMBEDDED_AUTH=none",
		"ENCRYPTION_KEY="+key,
		"VPS_SECRET="+secret,
	)
	if c.role == "ingest" {
		// It joins the harness's NATS, where Herald generates no keys of
		// its own: give it the keys a deployment would share.
		vaultKey, err := vault.GenerateKey()
		if err != nil {
			return fail(err)
		}
		challengeKey, err := vault.GenerateKey() // the same kid:secret form
		if err != nil {
			return fail(err)
		}
		env = append(env, "HERALD_VAULT_KEYS="+vaultKey, "HERALD_CHALLENGE_KEYS="+challengeKey)
	}
	// Later entries win: os/exec keeps the last value of a repeated name.
	env = append(env, cfg.Env...)

	c.cmd = exec.Command(cfg.Executable, c.role, "--config", configFile)
	c.cmd.Env = env
	return c.start(ctx, cfg, fail)
}

// start starts c.cmd and waits until it answers /readyz.
func (c *child) start(ctx context.Context, cfg Config, fail func(error) (*child, error)) (*child, error) {
	var logs io.Writer = c.logs
	if cfg.Output.HeraldLog != nil {
		logs = io.MultiWriter(c.logs, cfg.Output.HeraldLog)
	}
	c.cmd.Stdout, c.cmd.Stderr = logs, logs
	if !cfg.Limits.IsZero() {
		g, err := newCgroup(cfg.Limits)
		if err != nil {
			return fail(err)
		}
		c.cgroup = g
		args := append([]string{"-c", joinCgroupScript, "herald-bench"}, g.procsFiles()...)
		args = append(append(args, "--", c.cmd.Path), c.cmd.Args[1:]...)
		env := c.cmd.Env
		c.cmd = exec.Command("/bin/sh", args...)
		c.cmd.Env = env
		c.cmd.Stdout, c.cmd.Stderr = logs, logs
		fail = func(err error) (*child, error) {
			g.remove()
			os.RemoveAll(c.dir)
			return nil, err
		}
	}
	childAttrs(c.cmd)
	started := time.Now()
	if err := c.cmd.Start(); err != nil {
		return fail(fmt.Errorf("start %s %s: %w", cfg.Executable, c.role, err))
	}
	go func() {
		c.waitErr = c.cmd.Wait()
		close(c.exited)
	}()
	if err := waitReady(ctx, c.url, c.exited); err != nil {
		c.stop()
		return nil, fmt.Errorf("herald %s: %w%s", c.role, err, c.logs.excerpt())
	}
	c.ready = time.Since(started)
	return c, nil
}

// parentEnv is the harness's environment without what configures Herald:
// the child is configured by the harness, Config.ConfigFile and Config.Env
// only.
func parentEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "HERALD_"), name == "ENCRYPTION_KEY", name == "VPS_SECRET", name == "PORT":
			continue
		}
		out = append(out, kv)
	}
	return out
}

// pid is the child's process id.
func (c *child) pid() int { return c.cmd.Process.Pid }

// alive reports whether the child still runs.
func (c *child) alive() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM, waits for a clean exit (killing the child after
// stopTimeout) and removes its directory. It returns the exit error, with
// the end of the child's output, when the child did not exit cleanly.
func (c *child) stop() error {
	defer os.RemoveAll(c.dir)
	if c.cgroup != nil {
		defer c.cgroup.remove()
	}
	if c.alive() {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-c.exited:
	case <-time.After(stopTimeout):
		_ = c.cmd.Process.Kill()
		<-c.exited
		return fmt.Errorf("herald %s did not stop within %s of SIGTERM; killed%s", c.role, stopTimeout, c.logs.excerpt())
	}
	if c.waitErr != nil {
		return fmt.Errorf("herald %s: %w%s", c.role, c.waitErr, c.logs.excerpt())
	}
	return nil
}

// waitReady polls url/readyz until it answers 200, the process exits
// (exited closes; nil means never), ctx ends or readyTimeout passes.
func waitReady(ctx context.Context, url string, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/readyz", nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("exited before it was ready")
		case <-ctx.Done():
			return fmt.Errorf("not ready at %s/readyz: %w", url, ctx.Err())
		case <-tick.C:
		}
	}
}

// freeAddr returns a loopback address with a port free at the time of the
// call.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// tailBuffer keeps the last max bytes written to it, and counts lines.
type tailBuffer struct {
	max   int
	mu    sync.Mutex
	b     []byte
	lines int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines += bytes.Count(p, []byte{'\n'})
	t.b = append(t.b, p...)
	if len(t.b) > 2*t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

// Lines is the number of lines written so far.
func (t *tailBuffer) Lines() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lines
}

// excerpt is the last lines written, as an error suffix ("" when none).
func (t *tailBuffer) excerpt() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.b
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return ""
	}
	return "; its last output:\n" + s
}
