//go:build !linux

package promtest

import "os/exec"

func setProcAttr(cmd *exec.Cmd) {}
