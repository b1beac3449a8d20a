//go:build !linux

package bench

import "errors"

type cgroup struct{}

func newCgroup(Limits) (*cgroup, error) {
	return nil, errors.New("cannot put the child under a CPU quota and memory limit: cgroups need Linux")
}

func (*cgroup) procsFiles() []string      { return nil }
func (*cgroup) peakMemory() (int64, bool) { return 0, false }
func (*cgroup) remove()                   {}
func (*cgroup) String() string            { return "" }
