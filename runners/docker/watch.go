package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
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
	// oomStep is the index of the step in flight when the runner saw the
	// engine flag an OOM kill while the container ran, -1 when it did not
	// (the kill may have come too late to be seen before the end).
	oomStep int
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
	// The engine sends an event for an OOM kill of any process of the
	// container, also of a step's helper whose step goes on (it flags the
	// container's state only when it ended): listen, to know which step
	// the kill hit.
	evs := r.engine.Events(waitCtx, client.EventsListOptions{Since: eventsSince(info.Container.State.StartedAt),
		Filters: client.Filters{}.Add("container", cid).Add("event", "oom")})
	oomEvents, oomErrs := evs.Messages, evs.Err
	oomStep, steps := -1, 0
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
		case <-oomEvents:
			if oomStep < 0 {
				// The step in flight: the agent reports a step's end
				// within a poll or two of it.
				if st, err := f.Poll(bg); err == nil {
					steps = len(st.Steps)
				}
				oomStep = steps
				log.Info("a process of the container was killed for exceeding its memory limit", "container", shortID(cid), "step", steps)
			}
		case err := <-oomErrs:
			// Without events the end still tells of an OOM kill, not which step it hit.
			log.Warn("not listening to the engine's OOM events", "err", err)
			oomEvents, oomErrs = nil, nil
		case <-tick.C:
			st, err := f.Poll(bg)
			if err == nil {
				steps = len(st.Steps)
			}
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
	x := r.ended(bg, cid, f, stopped)
	x.oomStep = oomStep
	return x
}

// eventsSince is the engine's "since" of a container that started at
// started (RFC 3339), so that a re-attaching runner hears of an OOM kill
// before it came; empty when unknown.
func eventsSince(started string) string {
	t := parseTime(started)
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.Unix(), 10)
}

// ended inspects the container that ended and reads the rest of the log
// and the agent's last reports.
func (r *Runner) ended(ctx context.Context, cid string, f *agentapi.Follower, stopped stopReason) exit {
	x := exit{stopped: stopped, oomStep: -1}
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
