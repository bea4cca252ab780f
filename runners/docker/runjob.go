package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/mlbot/mlbot/runners"
	"github.com/mlbot/mlbot/runners/agentapi"
)

// cleanupTimeout bounds each call to the engine and the hub after the
// job's context ended (stop, remove, close).
const cleanupTimeout = time.Minute

// RunJob runs job's steps in one container, as the package comment
// says, and returns how they ended. The job's id names the run at the
// hub and labels the container: when the hub says the run is already
// open (a worker restarted while it ran), RunJob re-attaches to the
// run's container instead of starting another, and copies its log to
// job.Output from the start. When ctx ends, or job.Timeout passes
// without the agent stopping the step itself, the container is stopped
// (SIGTERM, KillGrace, SIGKILL) and removed, and the step says Canceled
// or TimedOut; a ctx cancelled with runners.ErrDetach as its cause leaves the
// container running for a later RunJob. The metric files and artifacts
// are collected into job.Dir when the last step succeeded.
func (r *Runner) RunJob(ctx context.Context, job runners.Job) runners.JobResult {
	if job.Output == nil {
		job.Output = io.Discard
	}
	if err := job.CheckForContainer("docker"); err != nil {
		return job.InfraResult(err)
	}
	if !r.active.Begin(job.ID) {
		return job.InfraResult(fmt.Errorf("docker: run %s is already running in this process", job.ID))
	}
	defer r.active.End(job.ID)
	if err := ctx.Err(); err != nil {
		return notStarted(ctx, job, err)
	}
	log := r.log.With("run", job.ID)
	// Bad resources and a missing image are the job's errors: find them
	// before anything is opened.
	if _, err := r.createOptions(job, "", ""); err != nil {
		return job.InfraResult(fmt.Errorf("docker: resources: %w", err))
	}
	if err := r.checkImage(ctx, job.Image); err != nil {
		return notStarted(ctx, job, err)
	}
	hub := r.opts.Hub
	sess, err := hub.Open(ctx, job.ID, r.agentJob(job), job.Dir, sessionFor(job))
	if err != nil {
		return notStarted(ctx, job, fmt.Errorf("docker: open the agent session: %w", err))
	}
	bg := context.WithoutCancel(ctx)
	sock, err := r.serveSocket(job.ID)
	if err != nil {
		r.closeSession(bg, job.ID, log)
		return job.InfraResult(fmt.Errorf("docker: %w", err))
	}
	defer sock.Close()

	follower := agentapi.NewFollower(hub, job.ID, job.Output)
	cid, st, err := r.container(ctx, job, sess, log)
	if err != nil {
		r.cleanup(bg, job.ID, cid, log)
		return notStarted(ctx, job, err)
	}
	var x exit
	if cid == "" {
		// The agent had ended and its container is gone: the worker
		// before this one died between removing it and closing the run.
		if now, err := follower.Poll(bg); err != nil {
			log.Warn("reading the log of an ended run", "err", err)
		} else {
			st = now
		}
		x = exit{state: st}
	} else {
		x = r.watch(ctx, job, cid, follower, log)
		if x.detached {
			log.Info("detached from the container; it keeps running", "container", shortID(cid))
			return runners.JobResult{Log: job.Log, InfraError: fmt.Errorf("run %s, container %s: %w", job.ID, shortID(cid), runners.ErrDetach)}
		}
	}
	res := jobResult(job, x)
	if last, ok := res.Last(); ok && last.Succeeded() && res.InfraError == nil && len(res.Steps) == len(job.Steps) {
		// The steps succeeded: their files are collected even if ctx has
		// just ended (a local copy, bounded by the job's limits).
		if err := hub.Collect(bg, job.ID, job.Dir); err != nil {
			res.InfraError = fmt.Errorf("docker: collect the job's files: %w", err)
		}
	}
	r.cleanup(bg, job.ID, cid, log)
	return res
}

// notStarted is the result of a job whose container was not started
// because of err: a step Canceled when ctx ended (err is then ctx's), an
// runners.ErrDetach when that was ctx's cause (the next RunJob starts the job
// afresh), an infrastructure failure otherwise.
func notStarted(ctx context.Context, job runners.Job, err error) runners.JobResult {
	res := job.InfraResult(err)
	switch {
	case ctx.Err() == nil:
	case errors.Is(context.Cause(ctx), runners.ErrDetach):
		res.InfraError = fmt.Errorf("run %s: %w", job.ID, context.Cause(ctx))
	default:
		res.InfraError, res.Steps[0].Canceled = nil, true
	}
	return res
}

// agentJob is the job as the agent fetches it.
func (r *Runner) agentJob(job runners.Job) agentapi.Job {
	return agentapi.Job{RunID: job.ID, Steps: job.Steps, Env: job.Env, Timeout: agentapi.Duration(job.Timeout),
		Grace: agentapi.Duration(r.opts.KillGrace), Metrics: job.Metrics, Artifacts: job.Artifacts,
		Examples: job.Examples, MaxArtifactBytes: r.opts.MaxArtifactBytes}
}

// sessionFor is how long the hub keeps job's session before ending it by
// itself: the job's timeout and an hour, or a day for a job without one.
func sessionFor(job runners.Job) time.Duration {
	if job.Timeout > 0 {
		return job.Timeout + sessionSlack
	}
	return sessionTTL
}

// checkImage says whether the engine has image; the runner does not pull.
func (r *Runner) checkImage(ctx context.Context, image string) error {
	if _, err := r.engine.ImageInspect(ctx, image); err != nil {
		if cerrdefs.IsNotFound(err) {
			return fmt.Errorf("docker: image %q not found on the Docker engine (the runner does not pull: pull or build it there first)", image)
		}
		return fmt.Errorf("docker: inspect image %q: %w", image, err)
	}
	return nil
}

// container returns the id of the run's container, started: the one
// already running when the session was open before (a re-attach), or a
// new one. It returns no id, and the agent's state, when the session was
// open, its agent had ended and its container is gone.
func (r *Runner) container(ctx context.Context, job runners.Job, sess agentapi.Session, log *slog.Logger) (string, agentapi.State, error) {
	hub := r.opts.Hub
	if sess.Attached {
		c, ok, err := r.find(ctx, job.ID)
		if err != nil {
			return "", agentapi.State{}, err
		}
		if ok {
			log.Info("re-attaching to the run's container", "container", shortID(c.ID), "state", c.State)
			if c.State == container.StateCreated {
				if _, err := r.engine.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
					return c.ID, agentapi.State{}, fmt.Errorf("docker: start container %s: %w", shortID(c.ID), err)
				}
			}
			return c.ID, agentapi.State{}, nil
		}
		st, err := hub.State(ctx, job.ID)
		if err != nil {
			return "", st, fmt.Errorf("docker: agent state: %w", err)
		}
		if st.Done {
			return "", st, nil
		}
		// Open before, but no container: the worker that opened the run
		// ended before it started one. Start afresh, with a new token.
		log.Info("the run was open but has no container; starting it afresh")
		if err := hub.Close(ctx, job.ID); err != nil {
			return "", st, fmt.Errorf("docker: close the stale agent session: %w", err)
		}
		if sess, err = hub.Open(ctx, job.ID, r.agentJob(job), job.Dir, sessionFor(job)); err != nil {
			return "", st, fmt.Errorf("docker: open the agent session: %w", err)
		}
		if sess.Attached {
			return "", st, fmt.Errorf("docker: the agent session of run %s was opened again by someone else", job.ID)
		}
	} else if err := r.removeRun(ctx, job.ID); err != nil {
		// A container of a closed session of this id: its token is void.
		return "", agentapi.State{}, err
	}
	return r.create(ctx, job, sess.Token)
}

// create makes and starts the run's container.
func (r *Runner) create(ctx context.Context, job runners.Job, token string) (string, agentapi.State, error) {
	opts, err := r.createOptions(job, token, runDir(r.opts.RunDir, job.ID))
	if err != nil {
		return "", agentapi.State{}, fmt.Errorf("docker: %w", err)
	}
	c, err := r.engine.ContainerCreate(ctx, opts)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return "", agentapi.State{}, fmt.Errorf("docker: image %q not found on the Docker engine: %w", job.Image, err)
		}
		return "", agentapi.State{}, fmt.Errorf("docker: create container: %w", err)
	}
	for _, w := range c.Warnings {
		r.log.Warn("engine warning", "run", job.ID, "warning", w)
	}
	if _, err := r.engine.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
		return c.ID, agentapi.State{}, fmt.Errorf("docker: start container %s: %w", shortID(c.ID), err)
	}
	return c.ID, agentapi.State{}, nil
}

// cleanup ends a run: it closes the agent session, removes the run's
// container (cid, and any other the engine labelled with the run, such
// as one whose creation the engine finished after the runner gave up on
// it) with its volumes, and the run's directory.
func (r *Runner) cleanup(ctx context.Context, id, cid string, log *slog.Logger) {
	r.closeSession(ctx, id, log)
	err := error(nil)
	if cid != "" {
		err = r.remove(ctx, cid)
	}
	if err = errors.Join(err, r.removeRun(ctx, id)); err != nil {
		log.Error("container not removed", "container", shortID(cid), "err", err)
		return
	}
	if err := r.removeRunDir(id); err != nil {
		log.Warn("run directory not removed", "err", err)
	}
}

// closeSession closes id's agent session, logging a failure.
func (r *Runner) closeSession(ctx context.Context, id string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
	defer cancel()
	if err := r.opts.Hub.Close(ctx, id); err != nil {
		log.Warn("agent session not closed", "err", err)
	}
}

// shortID is a container id as docker ps shows it.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
