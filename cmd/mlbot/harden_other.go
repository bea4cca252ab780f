//go:build !linux

package main

// hardenProcess does nothing where prctl does not exist.
func hardenProcess() error { return nil }
