package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/mlbot/mlbot/runners"
	"github.com/mlbot/mlbot/runners/agentapi"
)

// outcome is how watching a Job ended.
type outcome struct {
	// state is what the agent reported; done says it posted its end.
	state agentapi.State
	done  bool
	// job is the Job watched last.
	job *batchv1.Job
	// evicted is the kubelet's message when the pod was evicted.
	evicted string
	// oom is the container's memory limit when it was OOMKilled.
	oom string
	// canceled and timedOut say why the runner ended the Job; detached
	// that it left it running (runners.ErrDetach).
	canceled, timedOut, detached bool
	// infra is a failure of the cluster or of the agent.
	infra error
}

// noPodGrace is how long a resumed Job may have no pod before the runner
// looks for the Job controller's word on why.
const noPodGrace = 3 * time.Second

// hubFailures is how many Hub reads in a row may fail before the run is
// given up (the Hub's Redis gone for that many poll intervals).
const hubFailures = 30

// watch follows Job j's pod and the agent's reports until the agent ends,
// the pod fails, ctx ends or the job's time runs out.
func (rn *run) watch(ctx context.Context, j *batchv1.Job) outcome {
	r := rn.r
	wctx, stop := context.WithCancel(context.Background())
	defer stop()
	factory := informers.NewSharedInformerFactoryWithOptions(r.cs, 0,
		informers.WithNamespace(j.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = labels.Set{LabelRun: j.Labels[LabelRun]}.String()
		}))
	pods, jobs := factory.Core().V1().Pods(), factory.Batch().V1().Jobs()
	wake := make(chan struct{}, 1)
	poke := func(any) {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	handler := cache.ResourceEventHandlerFuncs{AddFunc: poke, UpdateFunc: func(_, o any) { poke(o) }, DeleteFunc: poke}
	for _, inf := range []cache.SharedIndexInformer{pods.Informer(), jobs.Informer()} {
		if _, err := inf.AddEventHandler(handler); err != nil {
			return outcome{infra: err}
		}
	}
	factory.Start(wctx.Done())
	defer factory.Shutdown()
	defer stop()
	if !cache.WaitForCacheSync(ctx.Done(), pods.Informer().HasSynced, jobs.Informer().HasSynced) {
		return rn.ctxEnded(ctx, j, agentapi.State{})
	}

	w := &watcher{rn: rn, j: j, created: time.Now()}
	tick := time.NewTicker(r.opts.PollInterval)
	defer tick.Stop()
	failures := 0
	for {
		st, err := rn.follower.Poll(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return rn.ctxEnded(ctx, j, w.state)
		case err != nil:
			failures++
			rn.r.log.Warn("read the agent's reports", "run", rn.job.ID, "err", err)
			if failures >= hubFailures {
				return rn.end(ctx, j, outcome{state: w.state, infra: fmt.Errorf("kubernetes: read the agent's reports: %w", err)})
			}
		default:
			failures = 0
			w.state = st
			if st.Done {
				return outcome{state: st, done: true}
			}
		}
		// Only end deletes the Job: anyone else doing so (a sweep, an
		// operator) ends the run.
		cur, err := jobs.Lister().Jobs(j.Namespace).Get(j.Name)
		if err != nil || cur.UID != j.UID || cur.DeletionTimestamp != nil {
			return rn.end(ctx, j, outcome{state: w.state, infra: fmt.Errorf("kubernetes: Job %s/%s was deleted by someone else", j.Namespace, j.Name)})
		}
		sel := labels.Set{batchv1.ControllerUidLabel: string(j.UID)}.AsSelector()
		ps, _ := pods.Lister().Pods(j.Namespace).List(sel)
		if o, ok := w.judge(ctx, cur, newest(ps)); ok {
			if o.done {
				return o
			}
			return rn.end(ctx, j, o)
		}
		select {
		case <-ctx.Done():
			return rn.ctxEnded(ctx, j, w.state)
		case <-wake:
		case <-tick.C:
		}
	}
}

// ctxEnded is the outcome of a watch whose ctx ended: the Job is left
// running when runners.ErrDetach was the cause, deleted otherwise.
func (rn *run) ctxEnded(ctx context.Context, j *batchv1.Job, st agentapi.State) outcome {
	if errors.Is(context.Cause(ctx), runners.ErrDetach) {
		return outcome{state: st, detached: true}
	}
	return rn.end(ctx, j, outcome{state: st, canceled: true})
}

// end finishes a watch that did not see the agent's end: it copies what
// is left of the log, deletes the Job when the runner ends it (cancel,
// timeout) and reports what the agent had said so far.
func (rn *run) end(ctx context.Context, j *batchv1.Job, o outcome) outcome {
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if st, err := rn.follower.Poll(pctx); err == nil {
		o.state = st
		if st.Done && o.evicted == "" && o.oom == "" && !o.canceled && !o.timedOut {
			return outcome{state: st, done: true}
		}
	}
	if o.canceled || o.timedOut {
		rn.r.deleteJob(j, true)
	}
	return o
}

// watcher is the state of one watch.
type watcher struct {
	rn           *run
	j            *batchv1.Job
	state        agentapi.State
	created      time.Time
	pendingSince time.Time // when the scheduler first found no node
	notified     string
	runningSince time.Time
	agentEnded   time.Time // when the pod ended without the agent's Done
}

// judge decides from the Job and its newest pod whether the watch is
// over, and how.
func (w *watcher) judge(ctx context.Context, j *batchv1.Job, pod *corev1.Pod) (outcome, bool) {
	rn := w.rn
	opts := rn.r.opts
	now := time.Now()
	for _, c := range j.Status.Conditions {
		if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue && c.Reason == batchv1.JobReasonDeadlineExceeded {
			return outcome{state: w.state, timedOut: true}, true
		}
	}
	if !w.runningSince.IsZero() && rn.job.Timeout > 0 &&
		now.Sub(w.runningSince) > rn.job.Timeout+2*opts.Grace+30*time.Second {
		// The agent's own timeout should have ended the steps by now.
		return outcome{state: w.state, timedOut: true}, true
	}
	if pod == nil {
		if now.Sub(w.created) > noPodGrace {
			if msg := rn.r.refusal(ctx, j); msg != "" {
				return outcome{state: w.state, infra: fmt.Errorf("kubernetes: the Job's pod was refused: %s", msg)}, true
			}
		}
		if now.Sub(w.created) > opts.PendingTimeout {
			return outcome{state: w.state, infra: fmt.Errorf("kubernetes: no pod was created for Job %s within %v", j.Name, opts.PendingTimeout)}, true
		}
		return outcome{}, false
	}
	if o, ok := w.waiting(pod); ok {
		return o, true
	}
	switch pod.Status.Phase {
	case corev1.PodPending:
		return w.pending(pod, now)
	case corev1.PodRunning:
		if w.runningSince.IsZero() {
			w.runningSince = now
		}
	case corev1.PodFailed:
		return w.failed(pod), true
	case corev1.PodSucceeded:
		// The agent exited 0 without its end being read yet: give the
		// Hub a moment (its end may be in flight), then call it a
		// failure of the agent.
		if w.agentEnded.IsZero() {
			w.agentEnded = now
		}
		if now.Sub(w.agentEnded) > 5*time.Second {
			return outcome{state: w.state, infra: errors.New("kubernetes: the agent exited without reporting its end")}, true
		}
	}
	return outcome{}, false
}

// pending handles a pod not running yet: while the scheduler finds no
// node for it, its word goes to Job.Notify; after Options.PendingTimeout
// the run fails, with that word or with why the containers wait.
func (w *watcher) pending(pod *corev1.Pod, now time.Time) (outcome, bool) {
	rn := w.rn
	if w.pendingSince.IsZero() {
		w.pendingSince = now
	}
	var msg string
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			msg = c.Message
		}
	}
	if msg != "" {
		what := "waiting for a node"
		if rn.job.Resources.GPUs > 0 {
			what = "waiting for a GPU node"
		}
		if note := what + ": " + msg; note != w.notified {
			w.notified = note
			fmt.Fprintf(rn.out, "mlbot: %s\n", note)
			if rn.job.Notify != nil {
				rn.job.Notify(note)
			}
		}
	}
	timeout := rn.r.opts.PendingTimeout
	if now.Sub(w.pendingSince) <= timeout {
		return outcome{}, false
	}
	if msg != "" {
		return outcome{state: w.state, infra: fmt.Errorf("kubernetes: no node could run the pod within %v: %s", timeout, msg)}, true
	}
	var waits []string
	for _, cs := range append(append([]corev1.ContainerStatus{}, pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...) {
		if wt := cs.State.Waiting; wt != nil {
			waits = append(waits, strings.TrimSpace(fmt.Sprintf("container %s: %s %s", cs.Name, wt.Reason, wt.Message)))
		}
	}
	if len(waits) == 0 {
		waits = append(waits, "no container status yet")
	}
	return outcome{state: w.state, infra: fmt.Errorf("kubernetes: the pod was still pending after %v: %s", timeout, strings.Join(waits, "; "))}, true
}

// waitReasons are the reasons a container waits with that no waiting cures.
var waitReasons = map[string]string{
	"ErrImagePull":               "image pull failed",
	"ImagePullBackOff":           "image pull failed",
	"InvalidImageName":           "image pull failed",
	"ErrImageNeverPull":          "image pull failed",
	"CreateContainerConfigError": "the container could not be configured",
	"CreateContainerError":       "the container could not be created",
}

// waiting fails the run at once when a container of pod waits for
// something that will not come (an image that does not pull).
func (w *watcher) waiting(pod *corev1.Pod) (outcome, bool) {
	for _, cs := range append(append([]corev1.ContainerStatus{}, pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...) {
		wt := cs.State.Waiting
		if wt == nil {
			continue
		}
		if what, ok := waitReasons[wt.Reason]; ok {
			return outcome{state: w.state,
				infra: fmt.Errorf("kubernetes: %s: %s: %s (container %s, image %s)", what, wt.Reason, wt.Message, cs.Name, cs.Image)}, true
		}
	}
	return outcome{}, false
}

// failed says why a pod failed before the agent reported its end.
func (w *watcher) failed(pod *corev1.Pod) outcome {
	if pod.Status.Reason == "Evicted" {
		msg := pod.Status.Message
		if msg == "" {
			msg = "evicted"
		}
		return outcome{state: w.state, evicted: msg}
	}
	for _, cs := range pod.Status.InitContainerStatuses {
		if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
			return outcome{state: w.state, infra: fmt.Errorf("kubernetes: init container %s (copying mlbot from %s) failed: exit status %d (%s) %s",
				cs.Name, cs.Image, t.ExitCode, t.Reason, t.Message)}
		}
	}
	for _, cs := range pod.Status.ContainerStatuses {
		t := cs.State.Terminated
		if cs.Name != ContainerName || t == nil {
			continue
		}
		if t.Reason == "OOMKilled" {
			limit := "none set"
			for _, c := range pod.Spec.Containers {
				if c.Name == ContainerName {
					limit = memoryLimit(c.Resources)
				}
			}
			return outcome{state: w.state, oom: limit}
		}
		return outcome{state: w.state, infra: fmt.Errorf("kubernetes: the pod failed before the agent reported its end: container %s exited with status %d (%s) %s",
			cs.Name, t.ExitCode, t.Reason, strings.TrimSpace(t.Message))}
	}
	msg := strings.TrimSpace(pod.Status.Reason + " " + pod.Status.Message)
	if msg == "" {
		msg = "no reason given"
	}
	return outcome{state: w.state, infra: fmt.Errorf("kubernetes: the pod failed before the agent reported its end: %s", msg)}
}

// refusal is the Job controller's message when it could not create the
// Job's pod (the API server or an admission plugin refused it), "" when
// it has said nothing of the kind.
func (r *Runner) refusal(ctx context.Context, j *batchv1.Job) string {
	evs, err := r.cs.CoreV1().Events(j.Namespace).List(ctx, metav1.ListOptions{
		FieldSelector: fields.Set{"involvedObject.uid": string(j.UID), "reason": "FailedCreate"}.String()})
	if err != nil {
		if !apierrors.IsForbidden(err) {
			r.log.Warn("list the Job's events", "job", j.Name, "err", err)
		}
		return ""
	}
	var last *corev1.Event
	for i := range evs.Items {
		if last == nil || evs.Items[i].LastTimestamp.After(last.LastTimestamp.Time) {
			last = &evs.Items[i]
		}
	}
	if last == nil {
		return ""
	}
	return last.Message
}

// newest is the pod created last, nil when there is none.
func newest(pods []*corev1.Pod) *corev1.Pod {
	var n *corev1.Pod
	for _, p := range pods {
		if n == nil || n.CreationTimestamp.Before(&p.CreationTimestamp) {
			n = p
		}
	}
	return n
}
