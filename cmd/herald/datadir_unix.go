//go:build unix

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// dataDirLockFile is the file a process holding data_dir keeps locked.
const dataDirLockFile = "herald.lock"

// lockDataDir takes data_dir for this process: the embedded NATS server's
// store must have one writer. The lock (flock) goes with the process, even
// after kill -9. When another process holds it, the error says so in one
// line instead of leaving the server to report a damaged store.
func lockDataDir(dir string) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir %s: %w", dir, err)
	}
	path := filepath.Join(dir, dataDirLockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data_dir %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errDataDirTaken(dir)
		}
		return nil, fmt.Errorf("data_dir %s: lock %s: %w", dir, path, err)
	}
	return func() { f.Close() }, nil
}

func errDataDirTaken(dir string) error {
	return fmt.Errorf("another Herald is running on data directory %s (data_dir): stop it, or give this one its own data_dir", dir)
}

// dataDirTaken returns the error lockDataDir would return because another
// process holds dir, without creating anything; nil when no other process
// holds it (or it cannot tell). A start that found its port in use tells
// so first: the likelier cause is a Herald already running there.
func dataDirTaken(dir string) error {
	f, err := os.OpenFile(filepath.Join(dir, dataDirLockFile), os.O_RDWR, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); errors.Is(err, syscall.EWOULDBLOCK) {
		return errDataDirTaken(dir)
	}
	// Taken and let go at once (closing f releases it).
	return nil
}
