package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mlbot/mlbot/runners"
	"github.com/mlbot/mlbot/runners/agentapi"
)

// cleanupTimeout bounds the API and Hub calls made after a run ended
// (deleting its Job, closing its session), whatever the run's context.
const cleanupTimeout = 30 * time.Second

// maxAttempts is how many Jobs a run gets: a second one after an eviction.
const maxAttempts = 2

// RunJob runs job's steps in one pod of a Kubernetes Job, as the package
// comment says, and returns how they ended. When the Hub says the run is
// already open (a worker restarted while it ran), RunJob watches the
// run's Job again instead of making another. When ctx ends the Job is
// deleted and the step says Canceled (a ctx cancelled with runners.ErrDetach as
// its cause leaves the Job running); when the job's timeout passed
// without the agent ending the step, TimedOut. A failure of the cluster
// (an object the API server refused, no node for the pod within
// Options.PendingTimeout, an image that does not pull, a second eviction)
// is JobResult.InfraError with the cluster's own message. The metric
// files and artifacts are collected into job.Dir when the last step
// succeeded.
func (r *Runner) RunJob(ctx context.Context, job runners.Job) runners.JobResult {
	if job.Output == nil {
		job.Output = io.Discard
	}
	if err := job.CheckForContainer("kubernetes"); err != nil {
		return job.InfraResult(err)
	}
	// Everything that can be wrong with the job itself is found before
	// anything is opened or created.
	if _, err := r.jobObject(job, 1); err != nil {
		return job.InfraResult(fmt.Errorf("kubernetes: %w", err))
	}
	if !r.active.Begin(job.ID) {
		return job.InfraResult(fmt.Errorf("kubernetes: run %s is already running in this process", job.ID))
	}
	defer r.active.End(job.ID)
	rn := &run{r: r, job: job, out: job.Output, log: r.log.With("run", job.ID)}
	o := rn.attempts(ctx)
	if !o.detached {
		defer rn.closeSession()
	}
	return rn.result(ctx, o)
}

// run is one RunJob call.
type run struct {
	r        *Runner
	job      runners.Job
	out      io.Writer
	log      *slog.Logger
	opened   bool
	follower *agentapi.Follower
}

// attempts opens the run's session, creates its Job (or finds the one a
// previous worker made) and watches it, once more after an eviction.
func (rn *run) attempts(ctx context.Context) outcome {
	r, job := rn.r, rn.job
	if ctx.Err() != nil {
		return rn.notStarted(ctx)
	}
	sess, err := r.hub.Open(ctx, job.ID, r.agentJob(job), job.Dir, rn.sessionTTL())
	if err != nil {
		if ctx.Err() != nil {
			return rn.notStarted(ctx)
		}
		return outcome{infra: fmt.Errorf("kubernetes: open the agent session: %w", err)}
	}
	rn.opened = true
	rn.follower = agentapi.NewFollower(r.hub, job.ID, rn.out)
	attempt := 1
	var j *batchv1.Job
	if sess.Attached {
		if j, err = r.find(ctx, job.ID); err != nil {
			return outcome{infra: err}
		}
		if j != nil {
			attempt, _ = strconv.Atoi(j.Annotations[AnnotationAttempt])
			rn.log.Info("watching the run's Job again", "job", j.Name, "attempt", attempt)
			fmt.Fprintf(rn.out, "mlbot: watching Job %s/%s again\n", j.Namespace, j.Name)
		} else {
			st, err := rn.follower.Poll(ctx)
			if err != nil {
				return outcome{infra: fmt.Errorf("kubernetes: agent state: %w", err)}
			}
			if st.Done {
				// The agent had ended and its Job is gone: the worker
				// before this one died between deleting it and closing
				// the run.
				return outcome{state: st, done: true}
			}
			// Open before, but no Job: the worker that opened the run
			// ended before it made one. Start afresh, with a new token.
			rn.log.Info("the run was open but has no Job; starting it afresh")
			if sess, err = rn.reopen(ctx); err != nil {
				return outcome{infra: err}
			}
		}
	} else if err := r.deleteRun(ctx, job.ID); err != nil {
		// Jobs of a closed session of this id: their token is void.
		return outcome{infra: err}
	}
	for {
		if j == nil {
			if j, err = r.create(ctx, job, attempt, sess.Token); err != nil {
				if ctx.Err() != nil {
					return rn.notStarted(ctx)
				}
				return outcome{infra: err}
			}
			fmt.Fprintf(rn.out, "mlbot: created Job %s/%s\n", j.Namespace, j.Name)
		}
		o := rn.watch(ctx, j)
		o.job = j
		if o.evicted == "" {
			return o
		}
		fmt.Fprintf(rn.out, "mlbot: the pod of Job %s was evicted: %s\n", j.Name, o.evicted)
		r.deleteJob(j, false)
		if attempt >= maxAttempts {
			o.infra = fmt.Errorf("kubernetes: the pod was evicted again (%d tries): %s", attempt, o.evicted)
			o.evicted = ""
			return o
		}
		attempt++
		fmt.Fprintf(rn.out, "mlbot: running the job again on a new pod\n")
		if sess, err = rn.reopen(ctx); err != nil {
			return outcome{infra: err}
		}
		j = nil
	}
}

// notStarted is the outcome of a run whose Job was not made because ctx
// ended: detached when that was ctx's cause (the next RunJob starts the
// job afresh), cancelled otherwise.
func (rn *run) notStarted(ctx context.Context) outcome {
	if errors.Is(context.Cause(ctx), runners.ErrDetach) {
		return outcome{detached: true}
	}
	return outcome{canceled: true}
}

// reopen closes the run's session and opens it again, for a new Job: the
// agent of the old one can no longer report, and the new one starts from
// an empty log.
func (rn *run) reopen(ctx context.Context) (agentapi.Session, error) {
	r, job := rn.r, rn.job
	if err := r.hub.Close(ctx, job.ID); err != nil {
		return agentapi.Session{}, fmt.Errorf("kubernetes: close the agent session: %w", err)
	}
	sess, err := r.hub.Open(ctx, job.ID, r.agentJob(job), job.Dir, rn.sessionTTL())
	if err != nil {
		return sess, fmt.Errorf("kubernetes: open the agent session: %w", err)
	}
	if sess.Attached {
		return sess, fmt.Errorf("kubernetes: the agent session of run %s was opened again by someone else", job.ID)
	}
	rn.follower = agentapi.NewFollower(r.hub, job.ID, rn.out)
	return sess, nil
}

// closeSession closes the run's Hub session, whatever ctx says.
func (rn *run) closeSession() {
	if !rn.opened {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := rn.r.hub.Close(ctx, rn.job.ID); err != nil {
		rn.log.Warn("close the agent session", "err", err)
	}
}

// sessionTTL is how long the run's session may live: the job's timeout
// and every wait around it; a day for a job without a timeout.
func (rn *run) sessionTTL() time.Duration {
	if rn.job.Timeout <= 0 {
		return 24 * time.Hour
	}
	return rn.job.Timeout + rn.r.opts.PendingTimeout + pendingSlack + 2*rn.r.opts.Grace
}

// create makes attempt n's Job of job: suspended, then the Secret with
// the run's token owned by it, then resumed.
func (r *Runner) create(ctx context.Context, job runners.Job, attempt int, token string) (*batchv1.Job, error) {
	obj, err := r.jobObject(job, attempt)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: %w", err)
	}
	jobs := r.cs.BatchV1().Jobs(r.opts.Namespace)
	j, err := jobs.Create(ctx, obj, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("kubernetes: create Job %s/%s: %w", obj.Namespace, obj.Name, err)
	}
	if _, err := r.cs.CoreV1().Secrets(r.opts.Namespace).Create(ctx, r.secretObject(j, token), metav1.CreateOptions{}); err != nil {
		r.deleteJob(j, false)
		return nil, fmt.Errorf("kubernetes: create Secret %s/%s: %w", j.Namespace, j.Name, err)
	}
	resumed, err := jobs.Patch(ctx, j.Name, types.MergePatchType, []byte(`{"spec":{"suspend":false}}`), metav1.PatchOptions{})
	if err != nil {
		r.deleteJob(j, false)
		return nil, fmt.Errorf("kubernetes: resume Job %s/%s: %w", j.Namespace, j.Name, err)
	}
	r.log.Info("created Job", "run", job.ID, "job", j.Name, "attempt", attempt)
	return resumed, nil
}

// jobsOf lists the Jobs of run id.
func (r *Runner) jobsOf(ctx context.Context, id string) ([]batchv1.Job, error) {
	list, err := r.cs.BatchV1().Jobs(r.opts.Namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelRun + "=" + RunLabel(id)})
	if err != nil {
		return nil, fmt.Errorf("kubernetes: list the Jobs of run %s: %w", id, err)
	}
	var out []batchv1.Job
	for _, j := range list.Items {
		if j.Annotations[AnnotationRun] == id {
			out = append(out, j)
		}
	}
	return out, nil
}

// find returns the newest Job of run id not being deleted, nil when there
// is none.
func (r *Runner) find(ctx context.Context, id string) (*batchv1.Job, error) {
	jobs, err := r.jobsOf(ctx, id)
	if err != nil {
		return nil, err
	}
	var found *batchv1.Job
	best := 0
	for i := range jobs {
		j := &jobs[i]
		if j.DeletionTimestamp != nil {
			continue
		}
		if n, _ := strconv.Atoi(j.Annotations[AnnotationAttempt]); n > best {
			found, best = j, n
		}
	}
	return found, nil
}

// deleteRun deletes every Job of run id.
func (r *Runner) deleteRun(ctx context.Context, id string) error {
	jobs, err := r.jobsOf(ctx, id)
	if err != nil {
		return err
	}
	for i := range jobs {
		if jobs[i].DeletionTimestamp == nil {
			r.deleteJob(&jobs[i], false)
		}
	}
	return nil
}

// deleteJob deletes j and, through the garbage collector, its pod and
// Secret (foreground propagation: the Job goes last). With wait it waits
// until the Job is gone, for at most cleanupTimeout.
func (r *Runner) deleteJob(j *batchv1.Job, wait bool) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	jobs := r.cs.BatchV1().Jobs(j.Namespace)
	fg := metav1.DeletePropagationForeground
	err := jobs.Delete(ctx, j.Name, metav1.DeleteOptions{PropagationPolicy: &fg, Preconditions: &metav1.Preconditions{UID: &j.UID}})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return
	}
	if err != nil {
		r.log.Warn("delete Job", "job", j.Name, "err", err)
		return
	}
	if !wait {
		return
	}
	for ctx.Err() == nil {
		cur, err := jobs.Get(ctx, j.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || err == nil && cur.UID != j.UID {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	r.log.Warn("Job still there after deletion", "job", j.Name, "waited", cleanupTimeout)
}
