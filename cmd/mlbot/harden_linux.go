package main

import "syscall"

// hardenProcess makes the process non-dumpable: its /proc/<pid>/environ
// and memory then belong to root, so a training command running as the
// same user cannot read the tokens mlbot was started with.
func hardenProcess() error {
	const prSetDumpable = 4
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetDumpable, 0, 0); errno != 0 {
		return errno
	}
	return nil
}
