package kubernetes

import (
	"context"
	"errors"
	"fmt"

	"github.com/mlbot/mlbot/runners"
	"github.com/mlbot/mlbot/runners/agentapi"
)

// result turns how the run ended into the job's result: the steps as the
// agent reported them, with what only the runner and the cluster know
// added (the step in flight when the container was OOMKilled, or when
// the runner ended the Job on cancel or timeout), the files collected
// into job.Dir when the last step succeeded, and the Job deleted.
func (rn *run) result(ctx context.Context, o outcome) runners.JobResult {
	job := rn.job
	if o.detached {
		name := "(none yet)"
		if o.job != nil {
			name = o.job.Name
		}
		rn.log.Info("detached from the run's Job; it keeps running", "job", name)
		return runners.JobResult{Log: job.Log, InfraError: fmt.Errorf("run %s, Job %s: %w", job.ID, name, runners.ErrDetach)}
	}
	if o.job != nil && !o.canceled && !o.timedOut {
		// end deleted it already when the runner ended it.
		defer rn.r.deleteJob(o.job, false)
	}
	res := agentapi.JobResult(o.state, job.Log)
	n := len(res.Steps)
	switch {
	case o.done:
		if o.state.Error != "" {
			res.InfraError = fmt.Errorf("kubernetes: the agent failed: %s", o.state.Error)
			break
		}
		if last, ok := res.Last(); !ok || !last.Succeeded() || n < len(job.Steps) {
			break
		}
		// The steps succeeded: their files are collected even if ctx has
		// just ended.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if err := rn.r.hub.Collect(cctx, job.ID, job.Dir); err != nil {
			res.InfraError = fmt.Errorf("kubernetes: collect the job's files: %w", err)
		}
	case o.oom != "":
		during := "after the last step, while the agent uploaded its files"
		if n < len(job.Steps) {
			during = "in step " + job.Steps[n].Name
		}
		msg := fmt.Sprintf("the pod's container was killed for exceeding its memory limit of %s (OOMKilled) %s", o.oom, during)
		fmt.Fprintf(rn.out, "mlbot: %s\n", msg)
		if n == len(job.Steps) {
			res.InfraError = errors.New("kubernetes: " + msg)
			break
		}
		res.Steps = append(res.Steps, runners.StepResult{Name: job.Steps[n].Name, ExitCode: 137, OOMKilled: true})
	case o.canceled:
		markCurrent(&res, job, func(s *runners.StepResult) { s.Canceled = true })
	case o.timedOut:
		fmt.Fprintf(rn.out, "mlbot: the job did not end within its timeout of %v; its Job was deleted\n", job.Timeout)
		markCurrent(&res, job, func(s *runners.StepResult) { s.TimedOut = true })
	default:
		err := o.infra
		if err == nil {
			err = errors.New("kubernetes: the watch of the Job ended without a reason")
		}
		fmt.Fprintf(rn.out, "mlbot: %v\n", err)
		res.InfraError = err
	}
	if res.InfraError != nil && len(res.Steps) < len(job.Steps) {
		if last, ok := res.Last(); !ok || last.Succeeded() {
			// The step in flight has no outcome of its own.
			res.Steps = append(res.Steps, runners.StepResult{Name: job.Steps[len(res.Steps)].Name, ExitCode: -1})
		}
	}
	return res
}

// markCurrent marks the step the runner ended (cancelled, timed out): the
// first the agent did not report, or, when it reported them all (the
// step it was stopped in among them), the last.
func markCurrent(res *runners.JobResult, job runners.Job, mark func(*runners.StepResult)) {
	if n := len(res.Steps); n < len(job.Steps) && (n == 0 || res.Steps[n-1].Succeeded()) {
		s := runners.StepResult{Name: job.Steps[n].Name}
		mark(&s)
		res.Steps = append(res.Steps, s)
		return
	}
	mark(&res.Steps[len(res.Steps)-1])
}
