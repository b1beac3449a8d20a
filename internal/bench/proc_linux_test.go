//go:build linux

package bench

import (
	"os"
	"syscall"
	"testing"
	"time"
)

func TestReadProcOfThisProcess(t *testing.T) {
	// Use some CPU so utime is not zero.
	x := 0
	for start := time.Now(); selfCPU() < 20*time.Millisecond && time.Since(start) < 5*time.Second; {
		for i := range 1_000_000 {
			x += i
		}
	}
	_ = x
	s, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.rss <= 0 || s.hwm < s.rss || s.cpu <= 0 {
		t.Errorf("readProc = %+v: want rss > 0, hwm >= rss, cpu > 0", s)
	}
	// A Go test binary's heap is private, and it runs from its executable's
	// pages: both parts are there, and neither is all of it.
	if s.anon <= 0 || s.anon >= s.rss {
		t.Errorf("readProc = %+v: want 0 < anon (RssAnon) < rss", s)
	}
	if _, err := readProc(-1); err == nil {
		t.Error("readProc(-1) succeeded")
	}
	// The threads' CPU, to the nanosecond, is this process's, less what
	// exited threads used.
	threads, err := threadsStat(os.Getpid())
	if self := selfCPU(); err != nil || threads.cpu <= 0 || threads.cpu > self+10*time.Millisecond {
		t.Errorf("threadsStat = %+v, %v; want CPU > 0 and at most selfCPU %v", threads, err, self)
	}
	// Every wake-up is a run: a thread that sleeps 20 times runs 20 times
	// more. The sleeps are the thread's own (a system call), not the
	// goroutine's: a busy Go scheduler could run a time.Sleep's timer
	// without its thread ever sleeping.
	for range 20 {
		ts := syscall.NsecToTimespec(int64(time.Millisecond))
		_ = syscall.Nanosleep(&ts, nil)
	}
	if later, err := threadsStat(os.Getpid()); err != nil || later.runs < threads.runs+20 {
		t.Errorf("runs %d, then %d (%v) after 20 sleeps: want at least 20 more", threads.runs, later.runs, err)
	}
	if _, err := threadsStat(-1); err == nil {
		t.Error("threadsStat(-1) succeeded")
	}
	smp := startSampler(os.Getpid())
	if peak := smp.Stop(); peak.rss <= 0 || peak.anon <= 0 || peak.anon > peak.rss {
		t.Errorf("sampler peaks %+v: want 0 < anon <= rss", peak)
	}
}

func TestStatCPUParsesOddCommandNames(t *testing.T) {
	// The command name may hold spaces and parentheses; fields count from
	// the last ')'. utime 250 + stime 50 ticks = 3 s.
	line := []byte("4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 12345 1000000 500 18446744073709551615\n")
	got, err := statCPU(line)
	if err != nil || got != 3*time.Second {
		t.Errorf("statCPU = %v, %v; want 3s", got, err)
	}
	if _, err := statCPU([]byte("4242 (cmd) S 1 2")); err == nil {
		t.Error("a short line parsed")
	}
	if n, err := kiloBytes([]byte("\t  1234 kB\n")); err != nil || n != 1234*1024 {
		t.Errorf("kiloBytes = %d, %v", n, err)
	}
}
