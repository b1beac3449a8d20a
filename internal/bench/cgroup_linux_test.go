package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestChildBornInItsCgroup starts a process the way startChild does under
// Limits and checks that it runs in the cgroup from its first instruction,
// with the quota and the limit set. Where no cgroup can be written (not
// root, a read-only /sys/fs/cgroup) it says so and skips: `herald bench
// --cpus` then fails with the same reason.
func TestChildBornInItsCgroup(t *testing.T) {
	g, err := newCgroup(Limits{CPUs: 0.1, Memory: 256 << 20})
	if err != nil {
		t.Skipf("no writable cgroup on this machine: %v", err)
	}
	defer g.remove()
	args := append([]string{"-c", joinCgroupScript, "herald-bench"}, g.procsFiles()...)
	args = append(args, "--", "/bin/cat", "/proc/self/cgroup")
	out, err := exec.Command("/bin/sh", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	name := filepath.Base(g.dirs[0])
	if !strings.Contains(string(out), name) {
		t.Errorf("the child's cgroups:\n%s\nwant %s", out, name)
	}
	read := func(dir, file string) string {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	switch g.version {
	case 2:
		if got := read(g.dirs[0], "cpu.max"); got != "10000 100000" {
			t.Errorf("cpu.max = %q, want 10000 100000", got)
		}
		if got := read(g.memDir, "memory.max"); got != "268435456" {
			t.Errorf("memory.max = %q", got)
		}
	case 1:
		if got := read(g.dirs[0], "cpu.cfs_quota_us"); got != "10000" {
			t.Errorf("cpu.cfs_quota_us = %q, want 10000", got)
		}
		if got := read(g.memDir, "memory.limit_in_bytes"); got != "268435456" {
			t.Errorf("memory.limit_in_bytes = %q", got)
		}
	}
	if _, ok := g.peakMemory(); !ok {
		t.Error("no peak memory from the cgroup")
	}
}
