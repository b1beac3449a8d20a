package cgroup

import (
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"testing"
)

// tree writes files (path → content) under a temporary root.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestReadV1(t *testing.T) {
	root := tree(t, map[string]string{
		"cpu/cpu.cfs_quota_us":                   "-1\n",
		"cpu/cpu.cfs_period_us":                  "100000\n",
		"cpu/bench/cpu.cfs_quota_us":             "10000\n",
		"cpu/bench/cpu.cfs_period_us":            "100000\n",
		"memory/memory.limit_in_bytes":           "9223372036854771712\n",
		"memory/box/memory.limit_in_bytes":       "1073741824\n",
		"memory/box/bench/memory.limit_in_bytes": "536870912\n",
		"memory/other/memory.limit_in_bytes":     "1024\n",
		"unified/cgroup.controllers":             "hugetlb\n",
	})
	got := read(root, []byte("4:memory:/box/bench\n1:cpu:/bench\n0::/\n"))
	if got.CPUs != 0.1 || got.Memory != 512<<20 {
		t.Errorf("limits = %+v, want 0.1 CPU and 512 MiB (the tightest of the cgroup and its ancestors)", got)
	}
	if got := read(root, []byte("1:cpu:/\n4:memory:/\n")); got != (Limits{}) {
		t.Errorf("root cgroups without limits: %+v, want none", got)
	}
}

func TestReadV2(t *testing.T) {
	root := tree(t, map[string]string{
		"cgroup.controllers":    "cpu memory\n",
		"app/cpu.max":           "max 100000\n",
		"app/memory.max":        "max\n",
		"app/svc/cpu.max":       "25000 100000\n",
		"app/svc/memory.max":    "268435456\n",
		"app/svc/inner/cpu.max": "max 100000\n",
	})
	got := read(root, []byte("0::/app/svc/inner\n"))
	if got.CPUs != 0.25 || got.Memory != 256<<20 {
		t.Errorf("limits = %+v, want 0.25 CPU and 256 MiB from the parent", got)
	}
	// A cgroup namespace shows the process's own cgroup as the root.
	if got := read(root, []byte("0::/not/here\n")); got != (Limits{}) {
		t.Errorf("unknown path, unlimited root: %+v, want none", got)
	}
}

func TestTune(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	mem := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		runtime.GOMAXPROCS(procs)
		debug.SetMemoryLimit(mem)
	})
	none := func(string) string { return "" }
	if runtime.NumCPU() > 1 {
		runtime.GOMAXPROCS(2)
		got := Tune(Limits{CPUs: 0.1, Memory: 512 << 20}, none)
		if got.GOMAXPROCS != 1 || runtime.GOMAXPROCS(0) != 1 {
			t.Errorf("under 0.1 CPU: GOMAXPROCS %d (tuned %+v), want 1", runtime.GOMAXPROCS(0), got)
		}
		if want := int64(float64(got.Limits.Memory) * softMemoryShare); got.MemLimit != want || debug.SetMemoryLimit(-1) != want {
			t.Errorf("soft memory limit %d, want 80 %% of 512 MiB", got.MemLimit)
		}
		runtime.GOMAXPROCS(2)
		if got := Tune(Limits{CPUs: 2}, none); got.GOMAXPROCS != 0 || runtime.GOMAXPROCS(0) != 2 {
			t.Errorf("under 2 CPUs: tuned %+v, want GOMAXPROCS left alone", got)
		}
	}
	debug.SetMemoryLimit(mem)
	runtime.GOMAXPROCS(2)
	set := func(k string) string {
		return map[string]string{"GOMAXPROCS": "2", "GOMEMLIMIT": "1GiB"}[k]
	}
	if got := Tune(Limits{CPUs: 0.1, Memory: 512 << 20}, set); got.GOMAXPROCS != 0 || got.MemLimit != 0 {
		t.Errorf("with GOMAXPROCS and GOMEMLIMIT set: tuned %+v, want nothing changed", got)
	}
}
