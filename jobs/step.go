package jobs

import (
	"context"
	"fmt"

	"github.com/mlbot/mlbot/runners"
)

// stepEnd is how a step that ran ended, in the terms the pipeline and a
// deploy report it.
type stepEnd int

const (
	// stepSucceeded: the step exited with status 0.
	stepSucceeded stepEnd = iota
	// stepCanceled: the task's context was cancelled and the step killed.
	stepCanceled
	// stepOOMKilled: a process of the step ran out of memory and was killed.
	stepOOMKilled
	// stepTimedOut: the step's timeout expired and it was killed.
	stepTimedOut
	// stepExited: the step exited with a non-zero status.
	stepExited
	// stepNotStarted: no time was left to start the step.
	stepNotStarted
)

// runJob is the one step path of the pipeline and the deploys: it runs
// job with r and says how its last step ended. A JobResult with an
// InfraError means that step could not be started or waited for.
func runJob(ctx context.Context, r runners.Runner, job runners.Job) (runners.JobResult, runners.StepResult, stepEnd) {
	res := runners.RunJob(ctx, r, job)
	last, _ := res.Last()
	if end := classify(last); end != stepSucceeded {
		return res, last, end
	}
	// Every step succeeded, but a helper process of one may have been
	// killed for exceeding the memory limit: its result is suspect.
	for _, s := range res.Steps {
		if s.OOMKilled {
			return res, s, stepOOMKilled
		}
	}
	return res, last, stepSucceeded
}

// classify maps a step's result to how the step ended; the checks come
// in this order because a killed step also has a non-zero exit status.
func classify(res runners.StepResult) stepEnd {
	switch {
	case res.NotStarted:
		return stepNotStarted
	case res.Canceled:
		return stepCanceled
	case res.OOMKilled:
		return stepOOMKilled
	case res.TimedOut:
		return stepTimedOut
	case res.ExitCode != 0:
		return stepExited
	}
	return stepSucceeded
}

// canceledError is the error of a step that was cancelled with ctx.
func canceledError(ctx context.Context, name string) error {
	return fmt.Errorf("%s cancelled: %w", name, context.Cause(ctx))
}
