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
			return nil, fmt.Errorf("another Herald is running on data directory %s (data_dir): stop it, or give this one its own data_dir", dir)
		}
		return nil, fmt.Errorf("data_dir %s: lock %s: %w", dir, path, err)
	}
	return func() { f.Close() }, nil
}
