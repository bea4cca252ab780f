//go:build unix

package workspace

import "syscall"

// openFlags opens a workspace file for reading without ever blocking in
// open(2): O_NONBLOCK makes opening a FIFO return at once (the fstat check
// then refuses it), O_NOFOLLOW keeps the kernel from following a symbolic
// link in the last component (os.Root follows those itself, inside the
// directory only), and O_CLOEXEC keeps the descriptor out of child
// processes, which may be untrusted trainings.
const openFlags = syscall.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_NONBLOCK | syscall.O_CLOEXEC
