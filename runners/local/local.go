// Package local runs pipeline commands on the worker itself: each in a
// namespace sandbox (package runners/sandbox), or, where the operator opted
// out of it, as a process group of mlbot's own user.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"syscall"
	"time"

	"github.com/mlbot/mlbot/runners"
	"github.com/mlbot/mlbot/runners/internal/stop"
	"github.com/mlbot/mlbot/runners/sandbox"
)

// DefaultKillGrace is how long a stopped command gets between SIGTERM and
// SIGKILL: enough for a training script to save a checkpoint or flush logs,
// short enough that /cancel feels immediate.
const DefaultKillGrace = 2 * time.Second

// Runner runs each command with /bin/sh in its own process group, so that
// stopping it also stops everything it started.
type Runner struct {
	// KillGrace is the wait between SIGTERM and SIGKILL; zero or less means
	// DefaultKillGrace. It also bounds how long Run waits for output from
	// processes that outlive the shell but still hold its output pipe.
	KillGrace time.Duration
	// Sandbox, when set, runs every step in a namespace sandbox made as it
	// says; nil runs steps as plain processes (for `mlbot run` on one's
	// own working copy, and for hosts whose operator opted out).
	Sandbox *sandbox.Options
}

var _ runners.Runner = (*Runner)(nil)

// New returns a Runner with the default kill grace that runs steps as
// plain process groups.
func New() *Runner { return &Runner{KillGrace: DefaultKillGrace} }

// NewSandboxed returns a Runner that runs every step in a sandbox.
func NewSandboxed(opts sandbox.Options) *Runner {
	if opts.KillGrace <= 0 {
		opts.KillGrace = DefaultKillGrace
	}
	return &Runner{KillGrace: opts.KillGrace, Sandbox: &opts}
}

// runSandboxed runs spec in a fresh sandbox. Its home and temporary
// directory are the sandbox's private /tmp.
func (r *Runner) runSandboxed(ctx context.Context, spec runners.Spec) (runners.Result, error) {
	ws := spec.Workspace
	if ws == "" {
		ws = spec.Dir
	}
	env := append([]string{}, spec.Env...)
	env = append(env, "HOME=/tmp", "TMPDIR=/tmp")
	res, err := sandbox.Run(ctx, *r.Sandbox, sandbox.Step{Command: spec.Command, Workspace: ws, Writable: spec.Writable, Dir: spec.Dir,
		Env: env, Network: spec.Network, Output: spec.Output, Timeout: spec.Timeout})
	if err != nil {
		return runners.Result{ExitCode: -1}, fmt.Errorf("%s: %w", stepName(spec), err)
	}
	return runners.Result{ExitCode: res.ExitCode, Duration: res.Duration, TimedOut: res.TimedOut,
		Canceled: res.Canceled, OOMKilled: res.OOMKilled}, nil
}

// Run runs spec.Command with /bin/sh -c in spec.Dir with exactly spec.Env.
// When spec.Timeout expires or ctx is cancelled, the whole process group
// gets SIGTERM, then SIGKILL after KillGrace. Whatever is left of the
// group when the shell exits is killed too: a step owns its processes, and
// a forgotten `server &` must not outlive the run and hold the GPU. A
// non-zero exit is reported in the Result; a shell killed by a signal
// reports 128+signal, as shells do.
func (r *Runner) Run(ctx context.Context, spec runners.Spec) (runners.Result, error) {
	if err := ctx.Err(); err != nil {
		return runners.Result{ExitCode: -1, Canceled: true}, nil
	}
	if r.Sandbox != nil {
		return r.runSandboxed(ctx, spec)
	}
	grace := r.KillGrace
	if grace <= 0 {
		grace = DefaultKillGrace
	}
	out := spec.Output
	if out == nil {
		out = io.Discard
	}
	cmd := exec.Command("/bin/sh", "-c", spec.Command)
	cmd.Dir = spec.Dir
	// A nil Env would make exec inherit the worker's environment, tokens
	// included.
	cmd.Env = append([]string{}, spec.Env...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A grandchild that left the group (setsid) and keeps the pipe open
	// would otherwise keep Wait reading forever.
	cmd.WaitDelay = grace

	start := time.Now()
	if err := cmd.Start(); err != nil {
		return runners.Result{ExitCode: -1}, fmt.Errorf("start %s: %w", stepName(spec), err)
	}
	pgid := cmd.Process.Pid // Setpgid makes the shell its group's leader

	exited := make(chan struct{})
	stopped := stop.Watch(ctx, spec.Timeout, grace, exited,
		func() { _ = syscall.Kill(-pgid, syscall.SIGTERM) },
		func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })

	err := cmd.Wait()
	close(exited)
	// Leftovers of the group: background jobs of a shell that exited, or
	// children that ignored SIGTERM after the shell died of it.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	res := runners.Result{Duration: time.Since(start)}
	switch <-stopped {
	case stop.TimedOut:
		res.TimedOut = true
	case stop.Canceled:
		res.Canceled = true
	}

	var exitErr *exec.ExitError
	switch {
	case err == nil, errors.Is(err, exec.ErrWaitDelay):
		// ErrWaitDelay: the shell succeeded but something kept its output
		// open; the step's own result is what counts.
		res.ExitCode = 0
	case errors.As(err, &exitErr):
		res.ExitCode = exitCode(exitErr)
	default:
		return res, fmt.Errorf("wait for %s: %w", stepName(spec), err)
	}
	return res, nil
}

// exitCode maps a signal death to 128+signal, the number a shell would
// show, so "137" reads as SIGKILL (e.g. the OOM killer) in reports.
func exitCode(e *exec.ExitError) int {
	if ws, ok := e.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return e.ExitCode()
}

func stepName(spec runners.Spec) string {
	if spec.Name != "" {
		return fmt.Sprintf("step %q", spec.Name)
	}
	return "command"
}
