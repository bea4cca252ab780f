package docker

import (
	"errors"
	"fmt"
	"time"

	"github.com/mlbot/mlbot/runners"
	"github.com/mlbot/mlbot/runners/agentapi"
)

// jobResult is how job ended: the steps as the agent reported them, with
// what only the runner and the engine know added: the step in flight
// when the container died or was stopped, an OOM kill, a stop on cancel
// or timeout, and an agent that ended without saying so or said it failed.
func jobResult(job runners.Job, x exit) runners.JobResult {
	res := agentapi.JobResult(x.state, job.Log)
	n := len(res.Steps)
	// inFlight: the agent ended (or was stopped) in the middle of step n,
	// which it never reported.
	inFlight := !x.state.Done && n < len(job.Steps) && (n == 0 || res.Steps[n-1].Succeeded())
	if inFlight {
		res.Steps = append(res.Steps, runners.StepResult{Name: job.Steps[n].Name, ExitCode: x.code, Duration: inFlightFor(res.Steps, x)})
	}
	var last *runners.StepResult
	if len(res.Steps) > 0 {
		last = &res.Steps[len(res.Steps)-1]
	}
	switch {
	case x.stopped != notStopped && last != nil && (inFlight || !last.Succeeded() || !x.state.Done):
		// The stop interrupted the step (or the agent's upload after it).
		last.Canceled = last.Canceled || x.stopped == canceled
		last.TimedOut = last.TimedOut || x.stopped == timedOut
	case x.oom && last != nil && (inFlight || !last.Succeeded()):
		last.OOMKilled = true
	case x.oom && last != nil && !x.state.Done:
		res.InfraError = errors.New("docker: the agent was killed for exceeding the memory limit after the last step")
	case x.oom && last != nil:
		// Every step went on: the kill hit a helper process of one (a
		// data loader worker), whose result is not to be trusted. The
		// step seen in flight when it came, else the last.
		i := len(res.Steps) - 1
		if x.oomStep >= 0 && x.oomStep < i {
			i = x.oomStep
		}
		res.Steps[i].OOMKilled = true
	}
	switch {
	case x.err != nil:
		res.InfraError = x.err
	case x.state.Error != "" && x.stopped == notStopped:
		// An agent the runner stopped says it was stopped: no failure of its own.
		res.InfraError = fmt.Errorf("docker: the agent failed: %s", x.state.Error)
	case !x.state.Done && x.stopped == notStopped && !x.oom:
		msg := fmt.Sprintf("docker: the container exited with status %d before its agent reported the job's end", x.code)
		if x.output != "" {
			msg += "; its last output:\n" + x.output
		}
		res.InfraError = errors.New(msg)
	}
	if res.InfraError != nil && len(res.Steps) == 0 && len(job.Steps) > 0 {
		// The first step has no outcome of its own.
		res.Steps = append(res.Steps, runners.StepResult{Name: job.Steps[0].Name, ExitCode: -1})
	}
	return res
}

// inFlightFor estimates how long the unreported step ran: the
// container's run time less the steps reported before it.
func inFlightFor(reported []runners.StepResult, x exit) time.Duration {
	if x.started.IsZero() || x.finished.IsZero() {
		return 0
	}
	d := x.finished.Sub(x.started)
	for _, s := range reported {
		d -= s.Duration
	}
	return max(d, 0)
}
