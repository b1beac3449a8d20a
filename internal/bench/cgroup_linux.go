package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// cgroupRoot is where the cgroup file systems are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// cpuPeriod is the CPU quota's period: the quota is CPUs × this per period.
const cpuPeriod = 100 * time.Millisecond

// cgroupSeq numbers the harness's cgroups.
var cgroupSeq atomic.Int64

// cgroup is one cgroup (v2), or one cgroup per controller (v1), made for one
// child and removed after it.
type cgroup struct {
	version int
	// dirs are the cgroup's directories: one for v2, cpu's and memory's for v1.
	dirs []string
	// memDir is the directory with the memory controller's files.
	memDir string
}

// newCgroup makes a cgroup with l's limits: under cgroup v2 when its
// hierarchy has the cpu and memory controllers (the whole tree, or the
// unified part of a hybrid one), else under cgroup v1's cpu and memory
// hierarchies. It fails, saying what it tried, when neither can be
// written (not root, a read-only /sys/fs/cgroup, another OS).
func newCgroup(l Limits) (*cgroup, error) {
	name := fmt.Sprintf("herald-bench-%d-%d", os.Getpid(), cgroupSeq.Add(1))
	var errs []error
	for _, base := range []string{cgroupRoot, filepath.Join(cgroupRoot, "unified")} {
		g, err := newCgroupV2(base, name, l)
		if err == nil {
			return g, nil
		}
		errs = append(errs, err)
	}
	g, err := newCgroupV1(name, l)
	if err == nil {
		return g, nil
	}
	errs = append(errs, err)
	return nil, fmt.Errorf("cannot put the child under a CPU quota and memory limit: no writable cgroup (%w)", errors.Join(errs...))
}

// newCgroupV2 makes the cgroup base/name in a cgroup v2 hierarchy.
func newCgroupV2(base, name string, l Limits) (*cgroup, error) {
	controllers, err := os.ReadFile(filepath.Join(base, "cgroup.controllers"))
	if err != nil {
		return nil, fmt.Errorf("cgroup v2 at %s: %w", base, err)
	}
	have := strings.Fields(string(controllers))
	for _, c := range []string{"cpu", "memory"} {
		if !slices.Contains(have, c) {
			return nil, fmt.Errorf("cgroup v2 at %s: no %s controller", base, c)
		}
	}
	// Let children of base use both controllers (root may always).
	_ = os.WriteFile(filepath.Join(base, "cgroup.subtree_control"), []byte("+cpu +memory"), 0)
	dir := filepath.Join(base, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cgroup v2: %w", err)
	}
	g := &cgroup{version: 2, dirs: []string{dir}, memDir: dir}
	if l.CPUs > 0 {
		quota := int64(l.CPUs * float64(cpuPeriod.Microseconds()))
		if err := writeFile(dir, "cpu.max", fmt.Sprintf("%d %d", quota, cpuPeriod.Microseconds())); err != nil {
			g.remove()
			return nil, err
		}
	}
	if l.Memory > 0 {
		if err := writeFile(dir, "memory.max", strconv.FormatInt(l.Memory, 10)); err != nil {
			g.remove()
			return nil, err
		}
		_ = writeFile(dir, "memory.swap.max", "0")
	}
	return g, nil
}

// newCgroupV1 makes the cgroup name in cgroup v1's cpu and memory
// hierarchies.
func newCgroupV1(name string, l Limits) (*cgroup, error) {
	g := &cgroup{version: 1}
	for _, c := range []string{"cpu", "memory"} {
		dir := filepath.Join(cgroupRoot, c, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			g.remove()
			return nil, fmt.Errorf("cgroup v1: %w", err)
		}
		g.dirs = append(g.dirs, dir)
		if c == "memory" {
			g.memDir = dir
		}
	}
	set := func(dir, file, value string) error {
		if err := writeFile(dir, file, value); err != nil {
			g.remove()
			return err
		}
		return nil
	}
	if l.CPUs > 0 {
		if err := set(g.dirs[0], "cpu.cfs_period_us", strconv.FormatInt(cpuPeriod.Microseconds(), 10)); err != nil {
			return nil, err
		}
		if err := set(g.dirs[0], "cpu.cfs_quota_us", strconv.FormatInt(int64(l.CPUs*float64(cpuPeriod.Microseconds())), 10)); err != nil {
			return nil, err
		}
	}
	if l.Memory > 0 {
		if err := set(g.memDir, "memory.limit_in_bytes", strconv.FormatInt(l.Memory, 10)); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// procsFiles are the files a process writes its pid to to join g.
func (g *cgroup) procsFiles() []string {
	out := make([]string, len(g.dirs))
	for i, d := range g.dirs {
		out[i] = filepath.Join(d, "cgroup.procs")
	}
	return out
}

// peakMemory is the most memory the cgroup's processes used, as the kernel
// counts it against the limit (page cache included); ok is false when the
// kernel does not say.
func (g *cgroup) peakMemory() (int64, bool) {
	file := "memory.max_usage_in_bytes"
	if g.version == 2 {
		file = "memory.peak"
	}
	b, err := os.ReadFile(filepath.Join(g.memDir, file))
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n, err == nil
}

// remove removes g's directories once its processes have exited; a cgroup
// still busy a second later is left behind.
func (g *cgroup) remove() {
	for _, d := range g.dirs {
		for i := 0; i < 20; i++ {
			if err := os.Remove(d); err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func (g *cgroup) String() string { return "cgroup v" + strconv.Itoa(g.version) }

func writeFile(dir, file, value string) error {
	if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0); err != nil {
		return fmt.Errorf("cgroup: set %s: %w", file, err)
	}
	return nil
}
