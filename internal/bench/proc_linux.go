//go:build linux

package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux the kernel ABI allows (it is fixed for user space).
const clockTicks = 100

// readProc reads pid's resident memory (VmRSS), its private part (RssAnon),
// its high-water mark (VmHWM) and the CPU time it has used (utime + stime).
func readProc(pid int) (procSample, error) {
	var s procSample
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return s, err
	}
	for line := range bytes.Lines(status) {
		switch {
		case bytes.HasPrefix(line, []byte("VmRSS:")):
			s.rss, err = kiloBytes(line[len("VmRSS:"):])
		case bytes.HasPrefix(line, []byte("VmHWM:")):
			s.hwm, err = kiloBytes(line[len("VmHWM:"):])
		case bytes.HasPrefix(line, []byte("RssAnon:")):
			s.anon, err = kiloBytes(line[len("RssAnon:"):])
		}
		if err != nil {
			return s, fmt.Errorf("/proc/%d/status: %w", pid, err)
		}
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return s, err
	}
	s.cpu, err = statCPU(stat)
	if err != nil {
		return s, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return s, nil
}

// kiloBytes parses "   12345 kB" into bytes.
func kiloBytes(field []byte) (int64, error) {
	f := bytes.Fields(field)
	if len(f) != 2 || string(f[1]) != "kB" {
		return 0, errors.New("unexpected memory field")
	}
	n, err := strconv.ParseInt(string(f[0]), 10, 64)
	return n * 1024, err
}

// statCPU reads utime + stime from a /proc/<pid>/stat line. The command name
// (field 2) is in parentheses and may hold spaces, so fields are counted
// after the last ')': state is field 3, utime field 14, stime field 15.
func statCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("no command name")
	}
	f := bytes.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, errors.New("too few fields")
	}
	utime, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	stime, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// threadsStat sums what the scheduler counted for each of pid's live
// threads in /proc/<pid>/task/*/schedstat: the CPU time they used, to the
// nanosecond (utime and stime count in ticks of 10 ms, too coarse for an
// idle process: 0.1 % of a core is 30 ms in 30 s), and how many times they
// were put on a CPU (each a wake-up or a preemption: at low rates, where
// nothing is batched, what a job costs is mostly these). Threads that
// exited are not counted; the Go runtime keeps its threads.
func threadsStat(pid int) (threadFigures, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return threadFigures{}, err
	}
	var sum threadFigures
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/schedstat")
		if errors.Is(err, os.ErrNotExist) {
			continue // the thread is gone
		}
		if err != nil {
			return threadFigures{}, err
		}
		f := bytes.Fields(b)
		if len(f) < 3 {
			return threadFigures{}, fmt.Errorf("%s/%s/schedstat: %d fields, want 3", dir, t.Name(), len(f))
		}
		ns, err1 := strconv.ParseInt(string(f[0]), 10, 64)
		slices, err2 := strconv.ParseInt(string(f[2]), 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return threadFigures{}, fmt.Errorf("%s/%s/schedstat: %w", dir, t.Name(), err)
		}
		sum.cpu += time.Duration(ns)
		sum.runs += slices
	}
	return sum, nil
}

// selfCPU is the CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// childAttrs puts the child in its own process group, so that a Ctrl-C at
// the terminal reaches only the harness (which then stops the child in
// order), and has the kernel kill the child if the harness dies.
func childAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
