package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultGrace is the wait between SIGTERM and SIGKILL of a job whose
// Grace is zero, as runners/local's DefaultKillGrace.
const DefaultGrace = 2 * time.Second

// stepResult is how one command ended.
type stepResult struct {
	exitCode int
	duration time.Duration
	timedOut bool
	canceled bool
}

// runStep runs command with /bin/sh -c in dir with exactly env, its
// stdout and stderr both going to out, with the semantics of the local
// runner (runners/local): the shell leads a process group of its own;
// when timeout (if positive) expires or ctx ends, the group gets SIGTERM
// and, grace later, SIGKILL; whatever is left of the group when the shell
// exits is killed, so a forgotten background job does not outlive the
// step; a shell killed by a signal reports 128+signal. The output is read
// through a pipe of the agent's own until every writer closed it, or, for
// a process that left the group and keeps it open, until it has been idle
// for grace after the shell exited. An error means the command could not
// be started or waited for.
func runStep(ctx context.Context, command, dir string, env []string, timeout, grace time.Duration, out io.Writer) (stepResult, error) {
	if err := ctx.Err(); err != nil {
		return stepResult{exitCode: -1, canceled: true}, nil
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return stepResult{exitCode: -1}, fmt.Errorf("output pipe: %w", err)
	}
	defer pr.Close()
	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.Dir = dir
	// A nil Env would make exec inherit the agent's environment, its
	// token included.
	cmd.Env = append([]string{}, env...)
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}

	start := time.Now()
	children.start(func() int {
		if err = cmd.Start(); err != nil {
			return 0
		}
		return cmd.Process.Pid
	})
	pw.Close() // the children hold their copies
	if err != nil {
		return stepResult{exitCode: -1}, fmt.Errorf("start: %w", err)
	}
	pgid := cmd.Process.Pid // Setpgid makes the shell its group's leader
	defer children.done(pgid)

	var exited atomic.Bool
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		copyOutput(pr, out, &exited, grace)
	}()

	var timer <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		timer = t.C
	}
	waited := make(chan struct{})
	why := make(chan string, 1)
	go func() {
		reason := ""
		select {
		case <-waited:
		case <-ctx.Done():
			reason = "canceled"
		case <-timer:
			reason = "timeout"
		}
		why <- reason
		if reason == "" {
			return
		}
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		kill := time.NewTimer(grace)
		defer kill.Stop()
		select {
		case <-waited:
		case <-kill.C:
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		}
	}()

	werr := cmd.Wait()
	close(waited)
	// Leftovers of the group: background jobs of a shell that exited, or
	// children that ignored SIGTERM after the shell died of it.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	exited.Store(true)
	_ = pr.SetReadDeadline(time.Now().Add(grace)) // wakes a read waiting with no deadline
	<-copied

	res := stepResult{duration: time.Since(start)}
	switch <-why {
	case "timeout":
		res.timedOut = true
	case "canceled":
		res.canceled = true
	}
	var exitErr *exec.ExitError
	switch {
	case werr == nil:
	case errors.As(werr, &exitErr):
		res.exitCode = exitCode(exitErr)
	default:
		return res, fmt.Errorf("wait: %w", werr)
	}
	return res, nil
}

// copyOutput copies the step's output from r to out. Once exited is set,
// each read may wait at most grace: only a process that escaped the
// group can still hold the pipe open then, and it must not hold the step.
// A slow out (mlbot unreachable) is waited for: output already in the
// pipe is never lost.
func copyOutput(r *os.File, out io.Writer, exited *atomic.Bool, grace time.Duration) {
	buf := make([]byte, 32<<10)
	for {
		if exited.Load() {
			_ = r.SetReadDeadline(time.Now().Add(grace))
		}
		n, err := r.Read(buf)
		if n > 0 {
			_, _ = out.Write(buf[:n])
		}
		if err != nil {
			return
		}
	}
}

// exitCode maps a signal death to 128+signal, the number a shell would
// show, so "137" reads as SIGKILL in reports.
func exitCode(e *exec.ExitError) int {
	if ws, ok := e.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return e.ExitCode()
}
