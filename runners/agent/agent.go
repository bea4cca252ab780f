// Package agent is `mlbot agent`, the small program that runs a job's
// steps inside a container or pod for the docker and kubernetes runners
// (Prow's entrypoint is its model). It knows only what its environment
// says (agentapi.EnvURL, EnvToken, EnvWorkdir) and talks to mlbot only
// through runners/agentapi: it fetches the job and the source, unpacks the
// source into the workdir, runs each step with /bin/sh -c as the local
// runner does (own process group, exactly the job's environment, the job's
// timeout with SIGTERM then SIGKILL), streams the output to mlbot's log by
// byte offset, reports each step's end, uploads the metric files and
// artifacts after the last step succeeded, and reports its own end.
//
// mlbot may be briefly unreachable (the worker serving the docker
// runner's socket restarts): every call is retried with backoff for
// Options.RetryFor, and the log waits in a fixed buffer meanwhile, the
// steps blocking on their output rather than the agent's memory growing.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/mlbot/mlbot/runners/agentapi"
)

// DefaultRetryFor is how long the agent retries a call while mlbot is
// unreachable: long enough for a worker to restart.
const DefaultRetryFor = 5 * time.Minute

// stopRetryFor bounds the retries of the last reports once the agent has
// been told to stop: the container is about to be killed.
const stopRetryFor = 10 * time.Second

// Options configure an agent.
type Options struct {
	// URL is mlbot's base URL (agentapi.EnvURL).
	URL string
	// Token is the run's bearer token (agentapi.EnvToken).
	Token string
	// Workdir is where the source is unpacked and the steps run
	// (agentapi.EnvWorkdir); empty means agentapi.DefaultWorkdir.
	Workdir string
	// RetryFor is how long a failing call is retried; zero means
	// DefaultRetryFor.
	RetryFor time.Duration
	// Stderr receives the agent's own messages (the container's log);
	// nil discards them. They also go to the run's log.
	Stderr io.Writer

	// push tunes the log pusher (tests and benchmarks).
	push pushOptions
}

// OptionsFromEnv reads the Options from the environment through getenv
// (os.Getenv).
func OptionsFromEnv(getenv func(string) string) (Options, error) {
	o := Options{URL: getenv(agentapi.EnvURL), Token: getenv(agentapi.EnvToken), Workdir: getenv(agentapi.EnvWorkdir)}
	if o.URL == "" || o.Token == "" {
		return o, fmt.Errorf("%s and %s must be set (a runner starts the agent with them)", agentapi.EnvURL, agentapi.EnvToken)
	}
	return o, nil
}

// StepError is Run's error when a step did not succeed: the job's own
// failure, reported to mlbot like a success is.
type StepError struct {
	// Report is the failed step's report.
	Report agentapi.StepReport
}

// Error describes how the step ended.
func (e *StepError) Error() string {
	r := e.Report
	switch {
	case r.NotStarted:
		return fmt.Sprintf("step %q not started: the job's timeout had expired", r.Name)
	case r.TimedOut:
		return fmt.Sprintf("step %q timed out (exit status %d)", r.Name, r.ExitCode)
	}
	return fmt.Sprintf("step %q failed with exit status %d", r.Name, r.ExitCode)
}

// Exit statuses of `mlbot agent` that are not a step's own.
const (
	// ExitTimeout is the status of a job whose timeout expired, as
	// timeout(1) exits.
	ExitTimeout = 124
	// ExitAgentFailed is the status when the agent itself failed (mlbot
	// unreachable, the source refused), as `docker run` exits when the
	// failure is its own rather than the command's.
	ExitAgentFailed = 125
)

// ExitCode is the exit status `mlbot agent` ends with after Run returned
// err: 0 when every step succeeded, the failed step's own status (or
// ExitTimeout), ExitAgentFailed when the agent failed.
func ExitCode(err error) int {
	var se *StepError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &se) && (se.Report.TimedOut || se.Report.NotStarted):
		return ExitTimeout
	case errors.As(err, &se) && se.Report.ExitCode > 0:
		return se.Report.ExitCode
	}
	return ExitAgentFailed
}

// agent is one run of the agent.
type agent struct {
	opts   Options
	client *agentapi.Client
	log    *logPusher
}

// Run runs the job of the run opts.Token stands for, and returns nil when
// every step succeeded, a *StepError when one did not, and any other
// error when the agent itself failed; in every case it has reported its
// end to mlbot if mlbot could be reached.
func Run(ctx context.Context, opts Options) error {
	if opts.Workdir == "" {
		opts.Workdir = agentapi.DefaultWorkdir
	}
	if opts.RetryFor <= 0 {
		opts.RetryFor = DefaultRetryFor
	}
	if opts.Stderr == nil {
		opts.Stderr = io.Discard
	}
	if opts.push.RetryFor <= 0 {
		opts.push.RetryFor = opts.RetryFor
	}
	c, err := agentapi.NewClient(opts.URL, opts.Token)
	if err != nil {
		return err
	}
	a := &agent{opts: opts, client: c}
	reapCtx, stopReaping := context.WithCancel(context.WithoutCancel(ctx))
	defer stopReaping()
	go children.run(reapCtx)
	// The pusher outlives a cancelled ctx, so the last output and the
	// reason of the stop still reach mlbot.
	a.log = newLogPusher(context.WithoutCancel(ctx), c, 0, opts.push)
	stepErr, agentErr := a.run(ctx)
	return a.finish(ctx, stepErr, agentErr)
}

// note writes one of the agent's own messages to the run's log and to
// Stderr.
func (a *agent) note(format string, args ...any) {
	msg := fmt.Sprintf("mlbot agent: "+format+"\n", args...)
	fmt.Fprint(a.opts.Stderr, msg)
	_, _ = io.WriteString(a.log, msg)
}

// run fetches the job and the source, runs the steps and uploads the
// files. It returns the failed step's error or the agent's own.
func (a *agent) run(ctx context.Context) (stepErr, agentErr error) {
	var job agentapi.Job
	err := withRetry(ctx, a.opts.RetryFor, func(ctx context.Context) error {
		var err error
		job, err = a.client.GetJob(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("fetch the job: %w", err)
	}
	if err := a.fetchSource(ctx); err != nil {
		return nil, err
	}
	grace := time.Duration(job.Grace)
	if grace <= 0 {
		grace = DefaultGrace
	}
	var deadline time.Time
	if job.Timeout > 0 {
		deadline = time.Now().Add(time.Duration(job.Timeout))
	}
	for i, s := range job.Steps {
		rep := agentapi.StepReport{Index: i, Name: s.Name}
		var left time.Duration
		if !deadline.IsZero() {
			if left = time.Until(deadline); left <= 0 {
				rep.NotStarted = true
				if err := a.report(ctx, rep); err != nil {
					return nil, err
				}
				return &StepError{Report: rep}, nil
			}
		}
		fmt.Fprintf(a.log, "$ %s\n", s.Command)
		res, err := runStep(ctx, s.Command, a.opts.Workdir, job.Env, left, grace, a.log)
		rep.ExitCode, rep.Duration, rep.TimedOut = res.exitCode, agentapi.Duration(res.duration), res.timedOut
		if err != nil {
			return nil, fmt.Errorf("step %q: %w", s.Name, err)
		}
		if res.canceled {
			// The agent was stopped: its container is going away. What
			// the step did is reported; the run is not the step's fault.
			_ = a.report(ctx, rep)
			return nil, fmt.Errorf("step %q: the agent was stopped: %w", s.Name, context.Cause(ctx))
		}
		if err := a.report(ctx, rep); err != nil {
			return nil, err
		}
		if res.timedOut || res.exitCode != 0 {
			return &StepError{Report: rep}, nil
		}
	}
	if err := a.upload(ctx, job); err != nil {
		return nil, err
	}
	return nil, nil
}

// fetchSource fetches the source archive and unpacks it into the workdir.
// A download cut short is fetched again into a fresh directory.
func (a *agent) fetchSource(ctx context.Context) error {
	err := withRetry(ctx, a.opts.RetryFor, func(ctx context.Context) error {
		rc, err := a.client.GetSource(ctx)
		if err != nil {
			return err
		}
		defer rc.Close()
		if err := emptyDir(a.opts.Workdir); err != nil {
			return permanentError{err}
		}
		err = unpack(rc, a.opts.Workdir)
		var refused *refusedError
		if errors.As(err, &refused) {
			return permanentError{err}
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("fetch the source: %w", err)
	}
	return nil
}

// emptyDir makes dir an empty directory: it keeps dir itself, which may
// be a mount point (the docker runner's tmpfs), and removes what is in it,
// such as a download cut short.
func emptyDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// report sends a step's report once the log before it is out, so that a
// runner that sees the step end has its whole output.
func (a *agent) report(ctx context.Context, rep agentapi.StepReport) error {
	_ = a.log.Flush()
	retryFor := a.opts.RetryFor
	if ctx.Err() != nil {
		retryFor = stopRetryFor
	}
	err := withRetry(context.WithoutCancel(ctx), retryFor, func(ctx context.Context) error {
		return a.client.ReportStep(ctx, rep)
	})
	if err != nil {
		return fmt.Errorf("report step %q: %w", rep.Name, err)
	}
	return nil
}

// finish sends the rest of the log and the agent's end, and returns Run's
// error.
func (a *agent) finish(ctx context.Context, stepErr, agentErr error) error {
	if agentErr != nil {
		a.note("%v", agentErr)
	} else if stepErr != nil {
		a.note("%v", stepErr)
	}
	if err := a.log.Close(); err != nil && agentErr == nil {
		agentErr = err
	}
	var done agentapi.Done
	if agentErr != nil {
		done.Error = agentErr.Error()
	}
	retryFor := a.opts.RetryFor
	if ctx.Err() != nil {
		retryFor = stopRetryFor
	}
	err := withRetry(context.WithoutCancel(ctx), retryFor, func(ctx context.Context) error {
		return a.client.ReportDone(ctx, done)
	})
	if err != nil {
		fmt.Fprintf(a.opts.Stderr, "mlbot agent: report the end: %v\n", err)
		return errors.Join(agentErr, stepErr, fmt.Errorf("report the end: %w", err))
	}
	if agentErr != nil {
		return agentErr
	}
	return stepErr
}
