//go:build !linux

package bench

import (
	"errors"
	"os/exec"
	"time"
)

var errNoProc = errors.New("process figures need Linux's /proc")

func readProc(int) (procSample, error) { return procSample{}, errNoProc }

func threadsStat(int) (threadFigures, error) { return threadFigures{}, errNoProc }

func selfCPU() time.Duration { return 0 }

func childAttrs(*exec.Cmd) {}
