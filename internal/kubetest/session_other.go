//go:build !linux

package kubetest

import "syscall"

// supported is true where the cluster can run: kubetest finds and kills a
// component's processes through /proc, which only Linux has.
const supported = false

func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }

func sessionRSS(sid int) int64 { return 0 }

func killSession(sid int) { _ = syscall.Kill(-sid, syscall.SIGKILL) }
