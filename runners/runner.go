// Package runners runs a command of a pipeline in a workspace. Each way of
// running (a local process, a Docker container, a Kubernetes Job) is one
// subpackage implementing Runner; runners/git checks out the workspace.
//
// The contract between mlbot and its runners is a Job in and a JobResult
// out (job.go): RunJob drives a Runner one Spec a step. A Set (set.go)
// holds the runners of a process by the names .mlbot.yml uses.
package runners

import (
	"context"
	"io"
	"time"
)

// Spec is one command to run.
type Spec struct {
	// Name labels the step in logs ("train", "evaluate").
	Name string
	// Command is a shell command line, run with /bin/sh -c.
	Command string
	// Dir is the working directory (the checkout).
	Dir string
	// Workspace is the directory a sandboxed step may see and write, Dir
	// or a directory holding it; empty means Dir.
	Workspace string
	// Network gives the step the host's network. A sandboxed step without
	// it has only a loopback interface of its own; untrusted code never
	// gets it.
	Network bool
	// Writable lists more host directories a sandboxed step may write, at
	// their own paths (the operator's deploy targets).
	Writable []string
	// Env is the child's entire environment ("K=V"); nothing is inherited.
	Env []string
	// Timeout bounds the run; zero means only ctx bounds it.
	Timeout time.Duration
	// Output receives stdout and stderr interleaved.
	Output io.Writer
}

// Result is how a command ended.
type Result struct {
	ExitCode int
	Duration time.Duration
	// TimedOut is true when Spec.Timeout expired and the process group was killed.
	TimedOut bool
	// Canceled is true when ctx was cancelled and the process group was killed.
	Canceled bool
	// OOMKilled is true when the kernel killed a process of the step for
	// exceeding the step's memory limit.
	OOMKilled bool
}

// Runner runs commands. Run returns an error only when the command could
// not be started or waited for; a non-zero exit is a Result.
type Runner interface {
	Run(ctx context.Context, spec Spec) (Result, error)
}
