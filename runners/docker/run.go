package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/mlbot/mlbot/runners"
)

// Run runs spec as a job of one step in a container of Options.Image,
// under an id of its own. Only spec.Dir travels into the container, and
// nothing the step writes comes back but its log: callers that need
// files use RunJob with the job's patterns.
func (r *Runner) Run(ctx context.Context, spec runners.Spec) (runners.Result, error) {
	if r.opts.Image == "" {
		return runners.Result{ExitCode: -1}, errors.New("docker: Run needs Options.Image: a Spec names no image")
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return runners.Result{ExitCode: -1}, fmt.Errorf("docker: run id: %w", err)
	}
	job := runners.Job{ID: "step-" + hex.EncodeToString(b[:]), Steps: []runners.Step{{Name: spec.Name, Command: spec.Command}},
		Dir: spec.Dir, Workspace: spec.Workspace, Env: spec.Env, Timeout: spec.Timeout, Network: spec.Network,
		Image: r.opts.Image, Output: spec.Output}
	res := r.RunJob(ctx, job)
	last, _ := res.Last()
	out := runners.Result{ExitCode: last.ExitCode, Duration: last.Duration, TimedOut: last.TimedOut || last.NotStarted,
		Canceled: last.Canceled, OOMKilled: last.OOMKilled}
	return out, res.InfraError
}
