package consumer

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/queue"
	"github.com/heraldrelay/herald/internal/status"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Environment of the crashing worker that TestParkSurvivesKill9 runs as a
// child process (this test binary, running TestParkCrashWorker).
const (
	crashURLEnv  = "HERALD_TEST_PARK_CRASH_NATS"
	crashStepEnv = "HERALD_TEST_PARK_CRASH_STEP"
)

// crashAckWait is the ack wait of the crash tests' consumer: the original
// of a job whose worker died comes back after it.
const crashAckWait = 3 * time.Second

func crashConfig() Config {
	cfg := testConfig()
	cfg.AckWait = crashAckWait
	cfg.SendTimeout = 2 * time.Second
	return cfg
}

// TestParkCrashWorker is not a test of its own: it is the worker process
// TestParkSurvivesKill9 starts and kills. It runs a pool whose every send
// is told to wait 2 s, and sends itself SIGKILL at the park step its parent
// names.
func TestParkCrashWorker(t *testing.T) {
	url, step := os.Getenv(crashURLEnv), os.Getenv(crashStepEnv)
	if url == "" {
		t.Skip("the worker process of TestParkSurvivesKill9; it runs only as its child")
	}
	nc, js := testkit.Connect(t, url)
	kv, err := queue.EnsureStatusBucket(testkit.Context(t, 5*time.Second), js, time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	wait := senderFunc(func(context.Context, herald.Notification) error {
		if calls.Add(1) > 1 && step == "sending" {
			// The parked copy, which took the job: die mid-send.
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
		return &herald.RetryAfterError{After: 2 * time.Second, Err: &herald.DestinationError{StatusCode: 429}}
	})
	p, err := New(crashConfig(), Deps{
		JS: js, Keys: testkit.Keyring(t), Status: status.New(kv, nc),
		Senders: map[herald.Channel]Sender{herald.ChannelDiscord: wait},
	})
	if err != nil {
		t.Fatal(err)
	}
	var recorded atomic.Int64
	p.parkStep = func(s string) {
		if s == "recorded" && recorded.Add(1) == 2 {
			s = "recorded again" // the parked copy parking the job again
		}
		if s == step {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_ = p.Run(ctx)
	t.Fatal("the worker was not killed")
}

// TestParkSurvivesKill9: a worker killed with SIGKILL in the middle of
// parking a job (after the record took the token, or after the schedule was
// stored but before the original was acked), or while sending the parked
// copy that took the job, loses nothing and sends nothing twice. Another
// worker delivers the job exactly once: either the parked copy or the
// redelivered original takes the token, and the other copy is dropped; a
// copy that took the job and died mid-send is its holder when it comes back.
func TestParkSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes")
	}
	for _, step := range []string{"recorded", "scheduled", "sending", "recorded again"} {
		t.Run("killed after "+step, func(t *testing.T) {
			t.Parallel()
			e, st := parkingEnv(t)
			id := e.publish(discordJob(t, e.keys, "parked when the worker dies"))

			cmd := exec.Command(os.Args[0], "-test.run=^TestParkCrashWorker$", "-test.count=1")
			cmd.Env = append(os.Environ(), crashURLEnv+"="+e.nc.ConnectedUrl(), crashStepEnv+"="+step)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("worker did not die of SIGKILL: %v\n%s", err, out)
			}
			rec, err := st.Get(context.Background(), id)
			if err != nil || (rec.NextAttemptAt.IsZero() != (step == "sending")) {
				t.Fatalf("record after the crash = %+v, %v; want the park's token, taken when sending", rec, err)
			}
			wantParked := map[string]uint64{"recorded": 0, "scheduled": 1, "sending": 1, "recorded again": 1}[step]
			if got := e.parkedMsgs(); got != wantParked {
				t.Fatalf("parked stream holds %d after a crash %s, want %d", got, step, wantParked)
			}

			var sends atomic.Int64
			deliver := senderFunc(func(context.Context, herald.Notification) error { sends.Add(1); return nil })
			deps := e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: deliver})
			deps.Status = st
			e.startPool(crashConfig(), deps)

			// Done when both copies have been dealt with: the jobs stream and
			// the parked stream are empty, and the job is delivered.
			testkit.WaitFor(t, 20*time.Second, "the job delivered and every copy gone", func() bool {
				rec, err := st.Get(context.Background(), id)
				return err == nil && rec.State == herald.StateDelivered && e.streamMsgs() == 0 && e.parkedMsgs() == 0
			})
			if got := sends.Load(); got != 1 {
				t.Errorf("the job was sent %d times after the crash, want exactly once", got)
			}
			stale := testutil.ToFloat64(e.metrics.StaleCopies)
			if step == "scheduled" && stale != 1 {
				t.Errorf("%v stale copies dropped, want 1 (the original or the parked copy)", stale)
			}
			if step != "scheduled" && stale != 0 {
				t.Errorf("%v stale copies dropped, want 0", stale)
			}
		})
	}
}
