package docker

import (
	"context"
	"errors"
	"fmt"
)

// Sweep removes the containers mlbot made for runs that are no longer
// live (live reports whether a run id is), with their run directories:
// what a worker that died left behind. Containers of runs this Runner
// is watching are kept whatever live says. The composition root calls
// it when it starts and from time to time.
func (r *Runner) Sweep(ctx context.Context, live func(id string) bool) error {
	list, err := r.list(ctx, "")
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range list {
		id := c.Labels[LabelRun]
		if id != "" && (r.active.Running(id) || live(id)) {
			continue
		}
		r.log.Info("sweeping a container of a run that is no longer live", "run", id, "container", shortID(c.ID), "state", c.State)
		if err := r.remove(ctx, c.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		if id == "" {
			continue
		}
		if err := r.removeRunDir(id); err != nil {
			errs = append(errs, err)
		}
		if r.opts.Hub != nil {
			// The session would expire by itself; closing it revokes the
			// token now.
			if err := r.opts.Hub.Close(ctx, id); err != nil {
				errs = append(errs, fmt.Errorf("docker: close the agent session of run %s: %w", id, err))
			}
		}
	}
	return errors.Join(errs...)
}
