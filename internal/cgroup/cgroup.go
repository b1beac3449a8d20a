// Package cgroup reads the CPU quota and memory limit the process runs
// under (cgroup v2, or v1's cpu and memory hierarchies), and fits the Go
// runtime to them.
//
// Go sets GOMAXPROCS from a CPU quota, but never below 2: under a quota of a
// tenth of a CPU, as on the free-tier box Herald is designed for, two
// threads then spin for work the quota cannot run (`herald bench
// --scenario free-tier --jobs 1000`: 110-114 jobs/s with 2, 154-166 with 1,
// at 870-890 and 610-650 ms of CPU per 1,000 jobs). And the runtime does not
// know the memory limit at all: a burst can grow the heap
// past it, and the kernel kills the process. Tune sets GOMAXPROCS to 1
// under a quota of at most one CPU, and a soft memory limit at 80 % of a
// memory limit, unless GOMAXPROCS or GOMEMLIMIT say otherwise.
package cgroup

import (
	"bufio"
	"bytes"
	"math"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// Limits are what the process's cgroups allow it; a zero field is no limit.
type Limits struct {
	// CPUs is the CPU quota in CPUs (quota / period), the smallest of the
	// process's cgroup and its ancestors'.
	CPUs float64
	// Memory is the memory limit in bytes, the smallest likewise.
	Memory int64
}

// Read returns the limits of the calling process, from /proc/self/cgroup
// and the cgroup file systems under /sys/fs/cgroup. What cannot be read
// counts as no limit.
func Read() Limits {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return Limits{}
	}
	return read("/sys/fs/cgroup", b)
}

// read is Read over a file system rooted at root and the contents of
// /proc/self/cgroup.
func read(root string, procSelfCgroup []byte) Limits {
	var l Limits
	sc := bufio.NewScanner(bytes.NewReader(procSelfCgroup))
	for sc.Scan() {
		// hierarchy-ID:controller-list:cgroup-path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		controllers, p := strings.Split(parts[1], ","), parts[2]
		if parts[1] == "" { // v2: one hierarchy for all
			for _, base := range []string{root, filepath.Join(root, "unified")} {
				if _, err := os.Stat(filepath.Join(base, "cgroup.controllers")); err == nil {
					l = l.min(walk(base, p, readV2))
					break
				}
			}
			continue
		}
		for _, c := range controllers {
			switch c {
			case "cpu":
				for _, dir := range []string{"cpu", "cpu,cpuacct", "cpuacct,cpu"} {
					if _, err := os.Stat(filepath.Join(root, dir)); err == nil {
						l = l.min(walk(filepath.Join(root, dir), p, readV1CPU))
						break
					}
				}
			case "memory":
				l = l.min(walk(filepath.Join(root, "memory"), p, readV1Memory))
			}
		}
	}
	return l
}

// walk applies f to the cgroup directory of p under base and to each of its
// ancestors up to base, and returns the tightest limits found. A path that
// is not there (a cgroup namespace shows the process's cgroup as the root)
// is tried from base itself.
func walk(base, p string, f func(dir string) Limits) Limits {
	var l Limits
	for p = path.Clean("/" + p); ; p = path.Dir(p) {
		dir := filepath.Join(base, filepath.FromSlash(p))
		if _, err := os.Stat(dir); err == nil {
			l = l.min(f(dir))
		}
		if p == "/" {
			return l
		}
	}
}

// readV2 reads cpu.max ("max 100000" or "10000 100000") and memory.max.
func readV2(dir string) Limits {
	var l Limits
	if f := fields(dir, "cpu.max"); len(f) == 2 && f[0] != "max" {
		quota, err1 := strconv.ParseFloat(f[0], 64)
		period, err2 := strconv.ParseFloat(f[1], 64)
		if err1 == nil && err2 == nil && quota > 0 && period > 0 {
			l.CPUs = quota / period
		}
	}
	if f := fields(dir, "memory.max"); len(f) == 1 && f[0] != "max" {
		if n, err := strconv.ParseInt(f[0], 10, 64); err == nil && n > 0 {
			l.Memory = n
		}
	}
	return l
}

// readV1CPU reads cpu.cfs_quota_us (-1: none) and cpu.cfs_period_us.
func readV1CPU(dir string) Limits {
	q, p := fields(dir, "cpu.cfs_quota_us"), fields(dir, "cpu.cfs_period_us")
	if len(q) != 1 || len(p) != 1 {
		return Limits{}
	}
	quota, err1 := strconv.ParseFloat(q[0], 64)
	period, err2 := strconv.ParseFloat(p[0], 64)
	if err1 != nil || err2 != nil || quota <= 0 || period <= 0 {
		return Limits{}
	}
	return Limits{CPUs: quota / period}
}

// readV1Memory reads memory.limit_in_bytes; v1 says "no limit" with a
// number near the largest int64 (rounded down to a page).
func readV1Memory(dir string) Limits {
	f := fields(dir, "memory.limit_in_bytes")
	if len(f) != 1 {
		return Limits{}
	}
	n, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || n <= 0 || n >= math.MaxInt64/2 {
		return Limits{}
	}
	return Limits{Memory: n}
}

func fields(dir, file string) []string {
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return nil
	}
	return strings.Fields(string(b))
}

// min is the tighter of l and o, field by field (zero is no limit).
func (l Limits) min(o Limits) Limits {
	if o.CPUs > 0 && (l.CPUs == 0 || o.CPUs < l.CPUs) {
		l.CPUs = o.CPUs
	}
	if o.Memory > 0 && (l.Memory == 0 || o.Memory < l.Memory) {
		l.Memory = o.Memory
	}
	return l
}

// Tuned says what Tune changed; a zero field was left alone.
type Tuned struct {
	Limits     Limits
	GOMAXPROCS int
	MemLimit   int64
}

// softMemoryShare is the part of a memory limit given to the Go runtime as
// its soft limit: the rest is for what it does not count (thread stacks
// outside the heap, the binary, the kernel's page cache charged to the
// cgroup).
const softMemoryShare = 0.8

// Tune fits the runtime to l (usually Read()): GOMAXPROCS 1 under a CPU
// quota of at most one CPU, unless the GOMAXPROCS variable is set; a soft
// memory limit of 80 % of a memory limit, unless GOMEMLIMIT is set. getenv
// reads the environment.
func Tune(l Limits, getenv func(string) string) Tuned {
	t := Tuned{Limits: l}
	if l.CPUs > 0 && l.CPUs <= 1 && getenv("GOMAXPROCS") == "" && runtime.GOMAXPROCS(0) > 1 {
		runtime.GOMAXPROCS(1)
		t.GOMAXPROCS = 1
	}
	if l.Memory > 0 && getenv("GOMEMLIMIT") == "" {
		t.MemLimit = int64(float64(l.Memory) * softMemoryShare)
		debug.SetMemoryLimit(t.MemLimit)
	}
	return t
}
