package bench

import (
	"fmt"
	"strconv"
	"strings"
)

// Limits puts every child the harness starts (Herald, the bare relay, the
// ingest) under a CPU quota and a memory limit, each in a cgroup of its own
// that it is born into; the harness, the fake Discord and the NATS server of
// an ingest-only run stay outside, as the sink and the clients of a real
// small box are elsewhere. The zero value limits nothing.
type Limits struct {
	// CPUs is the CPU quota in CPUs: 0.1 is 10 ms of CPU time per 100 ms.
	CPUs float64
	// Memory is the memory limit in bytes.
	Memory int64
}

// IsZero reports whether l limits nothing.
func (l Limits) IsZero() bool { return l.CPUs == 0 && l.Memory == 0 }

// String formats l for a report: "0.1 CPU, 512 MiB"; "" when zero.
func (l Limits) String() string {
	var parts []string
	if l.CPUs > 0 {
		parts = append(parts, strconv.FormatFloat(l.CPUs, 'g', -1, 64)+" CPU")
	}
	if l.Memory > 0 {
		parts = append(parts, formatBytes(l.Memory))
	}
	return strings.Join(parts, ", ")
}

// validate checks l.
func (l Limits) validate() error {
	switch {
	case l.CPUs < 0:
		return fmt.Errorf("cpus must not be negative")
	case l.CPUs > 0 && l.CPUs < 0.01:
		return fmt.Errorf("cpus %g is below 0.01 (1 ms per 100 ms)", l.CPUs)
	case l.Memory < 0:
		return fmt.Errorf("memory must not be negative")
	case l.Memory > 0 && l.Memory < 16<<20:
		return fmt.Errorf("memory %s is below 16 MiB: Herald cannot start in it", formatBytes(l.Memory))
	}
	return nil
}

// ParseMemory reads a memory size: a number of bytes, or a number with a
// unit, binary (KiB, MiB, GiB) or decimal (KB, MB, GB; K, M, G are the
// binary ones, as docker and cgroups read them). "" and "0" mean none.
func ParseMemory(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return 0, nil
	}
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.TrimSpace(s[i:])
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("memory %q: want a size such as 512MiB", s)
	}
	mult, ok := map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
		"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
		"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
	}[strings.ToLower(unit)]
	if !ok {
		return 0, fmt.Errorf("memory %q: unknown unit %q (use KiB, MiB, GiB, KB, MB or GB)", s, unit)
	}
	return int64(n * mult), nil
}

// formatBytes is n in the largest binary unit that keeps it whole or near.
func formatBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + " GiB"
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', -1, 64) + " MiB"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', -1, 64) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " B"
}
