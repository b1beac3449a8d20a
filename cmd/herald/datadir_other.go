//go:build !unix

package main

// lockDataDir does nothing where flock is not available.
func lockDataDir(string) (func(), error) { return func() {}, nil }

// dataDirTaken cannot tell where flock is not available.
func dataDirTaken(string) error { return nil }
