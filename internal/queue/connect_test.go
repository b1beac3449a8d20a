package queue

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"
)

func TestConnectBeforeServerStarts(t *testing.T) {
	port := testkit.FreePort(t)
	log, _ := newTestLogger(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	type result struct {
		ok  bool
		err error
	}
	done := make(chan result, 1)
	go func() {
		nc, err := Connect(ctx, "nats://"+testkit.Addr(port), "early", log)
		if err != nil {
			done <- result{err: err}
			return
		}
		ok := nc.IsConnected()
		nc.Close()
		done <- result{ok: ok}
	}()

	// Give Connect time to fail its first dial, then bring the server up.
	time.Sleep(300 * time.Millisecond)
	select {
	case r := <-done:
		t.Fatalf("Connect returned before the server started: %+v", r)
	default:
	}
	testkit.NewServer(t, testkit.WithPort(port))

	select {
	case r := <-done:
		if r.err != nil || !r.ok {
			t.Fatalf("Connect = connected %v, err %v; want a live connection", r.ok, r.err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Connect did not return after the server started")
	}
}

func TestConnectContextEndsFirst(t *testing.T) {
	port := testkit.FreePort(t)
	log, _ := newTestLogger(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	nc, err := Connect(ctx, "nats://"+testkit.Addr(port), "nobody", log)
	if err == nil {
		nc.Close()
		t.Fatal("Connect with no server succeeded")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want it to wrap context.DeadlineExceeded", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Connect took %s after its context ended", elapsed)
	}
}

func TestConnectReconnectsAfterRestart(t *testing.T) {
	s := testkit.NewServer(t)
	log, logs := newTestLogger(t)
	ctx := testCtx(t)
	// The server has no auth and ignores the user info; it is here to prove
	// no log line carries it.
	nc, err := Connect(ctx, "nats://alice:s3cr3t-pw@"+testkit.Addr(s.Port()), "restart", log)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	s.Shutdown()
	testkit.WaitFor(t, 10*time.Second, "disconnect", func() bool { return !nc.IsConnected() })
	s.Start() // same port and store
	testkit.WaitFor(t, 15*time.Second, "reconnect", nc.IsConnected)

	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		t.Fatalf("flush after reconnect: %v", err)
	}
	testkit.WaitFor(t, 5*time.Second, "reconnect log", func() bool { return strings.Contains(logs.String(), "NATS reconnected") })
	nc.Close()
	testkit.WaitFor(t, 5*time.Second, "closed log", func() bool { return strings.Contains(logs.String(), "NATS connection closed") })
	out := logs.String()
	for _, want := range []string{"NATS disconnected", "NATS reconnected", "client=restart"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, `msg="NATS disconnected" component=nats client=restart server=nats://alice:xxxxx@`) {
		t.Errorf("disconnect log does not name the (redacted) server:\n%s", out)
	}
	if strings.Contains(out, "s3cr3t-pw") {
		t.Errorf("log leaks URL credentials:\n%s", out)
	}
}

func TestConnectErrorsHideCredentials(t *testing.T) {
	log, logs := newTestLogger(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, url := range []string{
		"nats://bob:hunter2-secret@127.0.0.1:notaport",
		"nats://bob:hunter2-secret@[::1",
		"nats://hunter2-secret@127.0.0.1:" + strconv.Itoa(-5),
	} {
		nc, err := Connect(ctx, url, "bad", log)
		if err == nil {
			nc.Close()
			t.Errorf("Connect(%q) succeeded", url)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error leaks the password: %v", err)
		}
	}
	if strings.Contains(logs.String(), "hunter2") {
		t.Errorf("log leaks the password: %s", logs.String())
	}
	if _, err := Connect(ctx, " ", "empty", log); err == nil {
		t.Error("Connect with an empty URL succeeded")
	}
}

func TestRedactErr(t *testing.T) {
	base := errors.New(`parse "nats://u:p%40ss@h:x": invalid port, user u, pass p@ss`)
	err := redactErr(base, "nats://other@h2:4222, nats://u:p%40ss@h:x")
	if !errors.Is(err, base) {
		t.Error("redacted error does not wrap the original")
	}
	for _, secret := range []string{"p%40ss", "p@ss", "u:p"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%q still in %q", secret, err.Error())
		}
	}
	plain := errors.New("connection refused")
	if got := redactErr(plain, "nats://u:p@h:1"); got != plain {
		t.Errorf("untouched error was rewrapped: %v", got)
	}
	if redactErr(nil, "x") != nil {
		t.Error("redactErr(nil) != nil")
	}
}

func TestPublishWhileDisconnectedFailsAtOnce(t *testing.T) {
	s := testkit.NewServer(t)
	nc, js := connectTest(t, s.URL())
	ctx := testCtx(t)
	if _, err := EnsureJobsStream(ctx, js, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	s.Shutdown()
	testkit.WaitFor(t, 10*time.Second, "disconnect", func() bool { return !nc.IsConnected() })
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := js.Publish(pctx, "herald.jobs.discord", []byte("{}")); err == nil {
		t.Fatal("publish while disconnected succeeded")
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("publish took %s to fail, want it at once rather than at the deadline", elapsed)
	}
}
