package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/mlbot/mlbot/runners"
	"github.com/mlbot/mlbot/runners/agentapi"
)

// stopReason records why the runner stopped a container.
type stopReason int

const (
	notStopped stopReason = iota
	canceled
	timedOut
)

// exit is how a run's container ended, as the engine and the hub say.
type exit struct {
	// detached is set when RunJob left the container running (runners.ErrDetach).
	detached bool
	// stopped says why the runner stopped the container, if it did.
	stopped stopReason
	// code is the container's exit status; oom is set when the kernel
	// killed a process of it for exceeding its memory limit.
	code int
	oom  bool
	// started and finished are when the container ran.
	started, finished time.Time
	// state is what the agent reported.
	state agentapi.State
	// err is set when the runner lost the container or the hub.
	err error
	// output is the end of the container's own output (the agent's
	// messages), kept when the agent ended without saying so.
	output string
}

// maxWaitFailures is how many times in a row the wait for a container may
// fail (the engine restarting) before the runner gives up on it.
const maxWaitFailures = 10

// watch waits for container cid to end while the follower copies the
// log to the job's output. It stops the container when ctx ends (unless
// its cause is runners.ErrDetach: then it returns at once) or when the job's
// timeout passed without the agent stopping the step, and returns how
// the container ended.
func (r *Runner) watch(ctx context.Context, job runners.Job, cid string, f *agentapi.Follower, log *slog.Logger) exit {
	bg := context.WithoutCancel(ctx)
	info, err := r.engine.ContainerInspect(bg, cid, client.ContainerInspectOptions{})
	if err != nil {
		return exit{err: fmt.Errorf("docker: inspect container %s: %w", shortID(cid), err)}
	}
	var deadline <-chan time.Time
	if job.Timeout > 0 {
		started := parseTime(info.Container.State.StartedAt)
		if started.IsZero() {
			started = time.Now()
		}
		t := time.NewTimer(time.Until(started.Add(job.Timeout + r.opts.KillGrace + r.timeoutSlack)))
		defer t.Stop()
		deadline = t.C
	}
	waitCtx, cancelWait := context.WithCancel(bg)
	defer cancelWait()
	wait := r.engine.ContainerWait(waitCtx, cid, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	tick := time.NewTicker(r.opts.PollInterval)
	defer tick.Stop()
	done := ctx.Done()
	stopped, failures, polling := notStopped, 0, true
	stopErr := make(chan error, 1)
	stop := func(why stopReason) {
		stopped, done, deadline = why, nil, nil
		log.Info("stopping the container", "container", shortID(cid), "why", map[stopReason]string{canceled: "canceled", timedOut: "timed out"}[why])
		go func() { stopErr <- r.stop(bg, cid) }()
	}
loop:
	for {
		select {
		case <-tick.C:
			_, err := f.Poll(bg)
			if (err == nil) != polling {
				polling = err == nil
				if err != nil {
					log.Warn("reading the agent's log", "err", err)
				} else {
					log.Info("reading the agent's log again")
				}
			}
		case <-done:
			if errors.Is(context.Cause(ctx), runners.ErrDetach) {
				return exit{detached: true}
			}
			stop(canceled)
		case <-deadline:
			stop(timedOut)
		case err := <-stopErr:
			if err != nil {
				log.Error("container not stopped", "err", err)
			}
		case <-wait.Result:
			break loop
		case err := <-wait.Error:
			info, ierr := r.engine.ContainerInspect(bg, cid, client.ContainerInspectOptions{})
			switch {
			case ierr == nil && !info.Container.State.Running:
				break loop
			case cerrdefs.IsNotFound(ierr):
				return exit{stopped: stopped, err: fmt.Errorf("docker: container %s disappeared while it ran", shortID(cid))}
			}
			if failures++; failures >= maxWaitFailures {
				return exit{stopped: stopped, err: fmt.Errorf("docker: wait for container %s: %w", shortID(cid), err)}
			}
			log.Warn("waiting for the container failed; waiting again", "container", shortID(cid), "err", err)
			time.Sleep(time.Second)
			wait = r.engine.ContainerWait(waitCtx, cid, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
		}
	}
	return r.ended(bg, cid, f, stopped)
}

// ended inspects the container that ended and reads the rest of the log
// and the agent's last reports.
func (r *Runner) ended(ctx context.Context, cid string, f *agentapi.Follower, stopped stopReason) exit {
	x := exit{stopped: stopped}
	info, err := r.engine.ContainerInspect(ctx, cid, client.ContainerInspectOptions{})
	if err != nil {
		x.err = fmt.Errorf("docker: inspect container %s: %w", shortID(cid), err)
		return x
	}
	s := info.Container.State
	x.code, x.oom = s.ExitCode, s.OOMKilled
	x.started, x.finished = parseTime(s.StartedAt), parseTime(s.FinishedAt)
	if x.state, err = f.Poll(ctx); err != nil {
		x.err = fmt.Errorf("docker: read the agent's log and reports: %w", err)
		return x
	}
	if !x.state.Done && stopped == notStopped && !x.oom {
		x.output = r.tail(ctx, cid)
	}
	return x
}

// tailLines is how much of a container's own output an error quotes.
const tailLines = "20"

// tail returns the last lines of the container's own output, the
// agent's messages about itself.
func (r *Runner) tail(ctx context.Context, cid string) string {
	rc, err := r.engine.ContainerLogs(ctx, cid, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: tailLines})
	if err != nil {
		return ""
	}
	defer rc.Close()
	var b bytes.Buffer
	if _, err := stdcopy.StdCopy(&b, &b, rc); err != nil && b.Len() == 0 {
		return ""
	}
	return strings.TrimSpace(b.String())
}

// parseTime reads a time the engine reports; zero when there is none.
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() < 2000 {
		return time.Time{}
	}
	return t
}
