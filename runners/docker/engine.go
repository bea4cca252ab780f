package docker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// find returns the container labelled with run id, if there is one.
func (r *Runner) find(ctx context.Context, id string) (container.Summary, bool, error) {
	list, err := r.list(ctx, id)
	if err != nil || len(list) == 0 {
		return container.Summary{}, false, err
	}
	if len(list) > 1 {
		return container.Summary{}, false, fmt.Errorf("docker: %d containers are labelled %s=%s", len(list), LabelRun, id)
	}
	return list[0], true, nil
}

// list returns the containers mlbot made, running or not: those of run
// id, or all when id is empty.
func (r *Runner) list(ctx context.Context, id string) ([]container.Summary, error) {
	f := client.Filters{}.Add("label", LabelManaged+"=true")
	if id != "" {
		f.Add("label", LabelRun+"="+id)
	}
	res, err := r.engine.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("docker: list containers: %w", err)
	}
	return res.Items, nil
}

// removeRun removes every container of run id.
func (r *Runner) removeRun(ctx context.Context, id string) error {
	list, err := r.list(ctx, id)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range list {
		errs = append(errs, r.remove(ctx, c.ID))
	}
	return errors.Join(errs...)
}

// remove removes container cid, stopping it first if it runs, with its
// anonymous volumes; a container already gone is not an error.
func (r *Runner) remove(ctx context.Context, cid string) error {
	ctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
	defer cancel()
	_, err := r.engine.ContainerRemove(ctx, cid, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("docker: remove container %s: %w", shortID(cid), err)
	}
	return nil
}

// stopTimeout is how long the engine waits after SIGTERM before it kills
// a stopped container: the kill grace the agent gives the step, and a
// few seconds for the agent to report it.
func (r *Runner) stopTimeout() time.Duration {
	return r.opts.KillGrace + stopReportTime
}

// stopReportTime is what the agent has after a step's kill grace to
// report the step before the engine kills it.
const stopReportTime = 5 * time.Second

// stop stops container cid: SIGTERM, then SIGKILL after stopTimeout.
func (r *Runner) stop(ctx context.Context, cid string) error {
	secs := int(math.Ceil(r.stopTimeout().Seconds()))
	ctx, cancel := context.WithTimeout(ctx, r.stopTimeout()+cleanupTimeout)
	defer cancel()
	if _, err := r.engine.ContainerStop(ctx, cid, client.ContainerStopOptions{Timeout: &secs}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("docker: stop container %s: %w", shortID(cid), err)
	}
	return nil
}
