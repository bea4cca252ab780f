package runners

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Step is one named command of a job.
type Step struct {
	// Name labels the step in logs and results ("train", "deploy").
	Name string
	// Command is a shell command line, run with /bin/sh -c.
	Command string
}

// Resources is what a job asks of the machine it runs on, for the
// runners that make a container or pod (docker, kubernetes); the local
// runner ignores it and applies the operator's sandbox limits. Empty
// fields ask for the runner's defaults.
type Resources struct {
	// CPU is a CPU quantity in the Kubernetes notation ("2", "500m").
	CPU string
	// Memory is a memory quantity in the Kubernetes notation ("4Gi").
	Memory string
	// GPUs is the number of GPUs the job needs.
	GPUs int
	// ShmSize is the size of /dev/shm in the Kubernetes notation ("1Gi").
	ShmSize string
	// NodeSelector and Tolerations place a Kubernetes pod (ignored elsewhere).
	NodeSelector map[string]string
	// Tolerations are Kubernetes tolerations, each "key=value:effect",
	// "key:effect" or "key" (operator Exists).
	Tolerations []string
}

// Job is what a runner is asked to run: steps in order in one workspace,
// each starting only when the one before it succeeded.
type Job struct {
	// ID names the job uniquely (the run's id, or a deploy's): the runners
	// that leave the worker label their containers with it and find them
	// again by it after a worker restart.
	ID string
	// Steps run in order; the job stops at the first that does not succeed.
	Steps []Step
	// Dir is the working directory of every step (the checkout).
	Dir string
	// Workspace is the directory a sandboxed step may see and write, Dir
	// or a directory holding it; empty means Dir.
	Workspace string
	// Env is each step's entire environment ("K=V"); nothing is inherited.
	Env []string
	// Timeout bounds all the steps together; zero means only ctx bounds
	// them. A step that finds no time left is not started.
	Timeout time.Duration
	// Network gives the steps the host's network (see Spec.Network).
	Network bool
	// Writable lists more host directories a sandboxed step may write.
	Writable []string
	// Metrics are the patterns of the metric files the job writes, for the
	// runners that must collect them from elsewhere than Dir; the local
	// runner leaves them in Dir, where the caller reads them.
	Metrics []string
	// Artifacts are the patterns of the artifact files the job writes,
	// collected like Metrics.
	Artifacts []string
	// Examples names the per-example results file the job writes ("" for
	// none), collected like Artifacts: streamed, within its own limit.
	Examples string
	// Resources is what the job asks of its machine (see Resources).
	Resources Resources
	// Image is the container image of the runners that use one; the local
	// runner ignores it.
	Image string
	// Output receives each command line and the steps' stdout and stderr.
	Output io.Writer
	// Log names where Output ends up (a log file's path); it comes back in
	// JobResult.Log.
	Log string
	// Notify, when set, receives a short word for the people waiting while
	// the job waits on something other than itself ("waiting for a GPU
	// node"), for the commit status. Runners call it rarely, never per line.
	Notify func(msg string)
}

// Spec is the Spec of step i of the job, bounded by timeout.
func (j Job) Spec(i int, timeout time.Duration) Spec {
	return Spec{Name: j.Steps[i].Name, Command: j.Steps[i].Command, Dir: j.Dir, Workspace: j.Workspace,
		Network: j.Network, Writable: j.Writable, Env: j.Env, Timeout: timeout, Output: j.Output}
}

// StepResult is how one step of a job ended.
type StepResult struct {
	// Name is the step's name.
	Name string
	// ExitCode is the step's exit status.
	ExitCode int
	// Duration is how long the step ran.
	Duration time.Duration
	// NotStarted is true when the job's timeout had expired before the
	// step could start.
	NotStarted bool
	// TimedOut is true when the job's timeout expired during the step and
	// its process group was killed.
	TimedOut bool
	// Canceled is true when ctx was cancelled and the step was killed.
	Canceled bool
	// OOMKilled is true when a process of the step exceeded the step's
	// memory limit and was killed.
	OOMKilled bool
}

// Succeeded reports whether the step ran to its end with status 0 and
// nothing of it was killed.
func (r StepResult) Succeeded() bool {
	return !r.NotStarted && !r.TimedOut && !r.Canceled && !r.OOMKilled && r.ExitCode == 0
}

// JobResult is how a job ended.
type JobResult struct {
	// Steps holds a result for each step that was started or found no
	// time left, in order; the last is the one that ended the job early,
	// if one did.
	Steps []StepResult
	// InfraError is set when the runner could not start or wait for the
	// last step of Steps: a failure of the infrastructure, not of the
	// step, which has no outcome of its own.
	InfraError error
	// Log is Job.Log: where the job's output is.
	Log string
}

// Last returns the result of the last step started, and false when no
// step was.
func (r JobResult) Last() (StepResult, bool) {
	if len(r.Steps) == 0 {
		return StepResult{}, false
	}
	return r.Steps[len(r.Steps)-1], true
}

// CheckForContainer refuses a job that a runner of containers (docker,
// kubernetes) cannot run: one with no id, no steps or no image. runner
// names the runner at the start of the error ("docker: the job has no
// id").
func (j Job) CheckForContainer(runner string) error {
	switch {
	case j.ID == "":
		return errors.New(runner + ": the job has no id")
	case len(j.Steps) == 0:
		return errors.New(runner + ": the job has no steps")
	case j.Image == "":
		return errors.New(runner + ": the job names no image (pipeline.image in .mlbot.yml)")
	}
	return nil
}

// InfraResult is the result of j when it could not run because of err:
// its first step, which has no outcome of its own.
func (j Job) InfraResult(err error) JobResult {
	res := JobResult{Log: j.Log, InfraError: err}
	if len(j.Steps) > 0 {
		res.Steps = []StepResult{{Name: j.Steps[0].Name, ExitCode: -1}}
	}
	return res
}

// JobRunner is a Runner that runs a whole job at once, in one container
// or pod, instead of one Spec a step; RunJob hands it the job.
type JobRunner interface {
	Runner
	// RunJob runs job's steps in order, like the package's RunJob.
	RunJob(ctx context.Context, job Job) JobResult
}

// RunJob runs job's steps with r, one Spec a step (or all at once when r
// is a JobRunner): it writes each
// command line to job.Output, gives each step what is left of
// job.Timeout, and stops at the first step that does not succeed or that
// r cannot run.
func RunJob(ctx context.Context, r Runner, job Job) JobResult {
	if jr, ok := r.(JobRunner); ok {
		return jr.RunJob(ctx, job)
	}
	out := JobResult{Log: job.Log}
	var deadline time.Time
	if job.Timeout > 0 {
		deadline = time.Now().Add(job.Timeout)
	}
	for i, s := range job.Steps {
		var left time.Duration
		if !deadline.IsZero() {
			if left = time.Until(deadline); left <= 0 {
				out.Steps = append(out.Steps, StepResult{Name: s.Name, NotStarted: true})
				return out
			}
		}
		fmt.Fprintf(job.Output, "$ %s\n", s.Command)
		res, err := r.Run(ctx, job.Spec(i, left))
		out.Steps = append(out.Steps, StepResult{Name: s.Name, ExitCode: res.ExitCode, Duration: res.Duration,
			TimedOut: res.TimedOut, Canceled: res.Canceled, OOMKilled: res.OOMKilled})
		if err != nil {
			out.InfraError = err
			return out
		}
		if !out.Steps[len(out.Steps)-1].Succeeded() {
			return out
		}
	}
	return out
}
