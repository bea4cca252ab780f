package kubetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// maxGrace bounds how long a deleted pod's processes get after SIGTERM.
const maxGrace = 10 * time.Second

// podRun is a pod the Kubelet runs.
type podRun struct {
	k     *Kubelet
	pod   *corev1.Pod // as first seen
	fault Fault
	dir   string // the pod's directory on the host: volumes, logs

	ctx    context.Context // ends when the pod is deleted or the kubelet stops
	cancel context.CancelFunc

	mu      sync.Mutex
	deleted bool // the pod was deleted (not the kubelet stopped)
}

func newPodRun(k *Kubelet, pod *corev1.Pod) *podRun {
	ctx, cancel := context.WithCancel(k.ctx)
	return &podRun{k: k, pod: pod, ctx: ctx, cancel: cancel,
		dir: filepath.Join(k.c.Dir, "pods", pod.Namespace+"_"+pod.Name+"_"+string(pod.UID))}
}

// stop ends the pod's processes: deleted says the pod was deleted through
// the API (rather than the kubelet stopping), so the pod is to be removed.
func (r *podRun) stop(deleted bool) {
	r.mu.Lock()
	r.deleted = r.deleted || deleted
	r.mu.Unlock()
	r.cancel()
}

func (r *podRun) wasDeleted() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.deleted
}

// run is the pod's life on the node.
func (r *podRun) run() {
	defer r.k.wg.Done()
	defer r.cancel()
	if r.ctx.Err() == nil {
		if err := r.live(); err != nil && r.k.ctx.Err() == nil && !apierrors.IsNotFound(err) {
			fmt.Fprintf(os.Stderr, "kubetest: kubelet %s: pod %s/%s: %v\n", r.k.Node, r.pod.Namespace, r.pod.Name, err)
		}
	}
	<-r.ctx.Done()
	if r.wasDeleted() && r.k.ctx.Err() == nil {
		r.remove()
	}
}

// live runs the pod until its containers end or it is deleted.
func (r *podRun) live() error {
	start := metav1.Now()
	waiting := "ContainerCreating"
	if len(r.pod.Spec.InitContainers) > 0 {
		waiting = "PodInitializing"
	}
	if err := r.status(func(s *corev1.PodStatus) {
		s.Phase = corev1.PodPending
		s.HostIP, s.HostIPs = "127.0.0.1", []corev1.HostIP{{IP: "127.0.0.1"}}
		s.PodIP, s.PodIPs = "127.0.0.1", []corev1.PodIP{{IP: "127.0.0.1"}}
		s.StartTime = &start
		setCondition(s, corev1.PodInitialized, corev1.ConditionFalse, "ContainersNotInitialized", "")
		setCondition(s, corev1.PodReady, corev1.ConditionFalse, "ContainersNotReady", "")
		setCondition(s, corev1.ContainersReady, corev1.ConditionFalse, "ContainersNotReady", "")
		s.InitContainerStatuses = statuses(r.pod.Spec.InitContainers, corev1.ContainerState{
			Waiting: &corev1.ContainerStateWaiting{Reason: "PodInitializing"}})
		s.ContainerStatuses = statuses(r.pod.Spec.Containers, corev1.ContainerState{
			Waiting: &corev1.ContainerStateWaiting{Reason: waiting}})
	}); err != nil {
		return err
	}
	if r.fault.Kind == ImagePull {
		return r.failPull()
	}
	vols, err := r.volumes()
	if err != nil {
		return r.fail("CreateContainerConfigError", err)
	}

	for i, c := range r.pod.Spec.InitContainers {
		rc, err := r.startContainer(c, vols)
		if err != nil {
			return r.fail("CreateContainerConfigError", err)
		}
		<-rc.done
		term := rc.terminated()
		if err := r.status(func(s *corev1.PodStatus) {
			s.InitContainerStatuses[i].State = corev1.ContainerState{Terminated: term}
		}); err != nil {
			return err
		}
		if r.ctx.Err() != nil {
			return r.ended(corev1.PodFailed)
		}
		if term.ExitCode != 0 {
			return r.ended(corev1.PodFailed)
		}
	}

	running := make([]*runningContainer, len(r.pod.Spec.Containers))
	for i, c := range r.pod.Spec.Containers {
		rc, err := r.startContainer(c, vols)
		if err != nil {
			for _, p := range running[:i] {
				p.kill()
			}
			return r.fail("CreateContainerConfigError", err)
		}
		running[i] = rc
	}
	if err := r.status(func(s *corev1.PodStatus) {
		s.Phase = corev1.PodRunning
		setCondition(s, corev1.PodInitialized, corev1.ConditionTrue, "", "")
		setCondition(s, corev1.PodReady, corev1.ConditionTrue, "", "")
		setCondition(s, corev1.ContainersReady, corev1.ConditionTrue, "", "")
		for i, rc := range running {
			s.ContainerStatuses[i].State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: rc.started}}
			s.ContainerStatuses[i].Ready = true
			s.ContainerStatuses[i].Started = new(true)
			s.ContainerStatuses[i].ContainerID = rc.id
		}
	}); err != nil {
		for _, rc := range running {
			rc.kill()
		}
		return err
	}

	if r.fault.Kind == Evicted {
		return r.evict(running)
	}
	phase := corev1.PodSucceeded
	for _, rc := range running {
		<-rc.done
		if rc.exitCode != 0 {
			phase = corev1.PodFailed
		}
	}
	if r.k.ctx.Err() != nil {
		return nil // the kubelet stopped: no one to tell
	}
	if err := r.status(func(s *corev1.PodStatus) {
		for i, rc := range running {
			s.ContainerStatuses[i].State = corev1.ContainerState{Terminated: rc.terminated()}
			s.ContainerStatuses[i].Ready = false
			s.ContainerStatuses[i].Started = new(false)
		}
	}); err != nil {
		return err
	}
	return r.ended(phase)
}

// ended writes the pod's final phase.
func (r *podRun) ended(phase corev1.PodPhase) error {
	return r.status(func(s *corev1.PodStatus) {
		s.Phase = phase
		setCondition(s, corev1.PodReady, corev1.ConditionFalse, "PodCompleted", "")
		setCondition(s, corev1.ContainersReady, corev1.ConditionFalse, "PodCompleted", "")
	})
}

// fail ends a pod whose containers could not start: they wait with reason
// until the pod is deleted, as a kubelet's retries would.
func (r *podRun) fail(reason string, err error) error {
	if serr := r.status(func(s *corev1.PodStatus) {
		for i := range s.ContainerStatuses {
			s.ContainerStatuses[i].State = corev1.ContainerState{
				Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: err.Error()}}
		}
	}); serr != nil {
		return errors.Join(err, serr)
	}
	return nil
}

// failPull reports the pod's images as not pulling: ErrImagePull, then
// ImagePullBackOff, and the pod waits until deleted.
func (r *podRun) failPull() error {
	msg := r.fault.Message
	set := func(reason string) error {
		return r.status(func(s *corev1.PodStatus) {
			for i, c := range r.pod.Spec.Containers {
				m := msg
				if reason == "ImagePullBackOff" {
					m = fmt.Sprintf("Back-off pulling image %q: ErrImagePull: %s", c.Image, msg)
				}
				s.ContainerStatuses[i].State = corev1.ContainerState{
					Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: m}}
			}
			setCondition(s, corev1.PodInitialized, corev1.ConditionTrue, "", "")
		})
	}
	if err := set("ErrImagePull"); err != nil {
		return err
	}
	select {
	case <-r.ctx.Done():
		return nil
	case <-time.After(time.Second):
	}
	return set("ImagePullBackOff")
}

// evict kills the running containers and fails the pod as a kubelet under
// node pressure does.
func (r *podRun) evict(running []*runningContainer) error {
	for _, rc := range running {
		rc.kill()
	}
	return r.status(func(s *corev1.PodStatus) {
		s.Phase = corev1.PodFailed
		s.Reason = "Evicted"
		s.Message = r.fault.Message
		setCondition(s, corev1.DisruptionTarget, corev1.ConditionTrue, "TerminationByKubelet", r.fault.Message)
		setCondition(s, corev1.PodReady, corev1.ConditionFalse, "PodFailed", "")
		setCondition(s, corev1.ContainersReady, corev1.ConditionFalse, "PodFailed", "")
		for i, rc := range running {
			term := rc.terminated()
			s.ContainerStatuses[i].State = corev1.ContainerState{Terminated: term}
			s.ContainerStatuses[i].Ready = false
			s.ContainerStatuses[i].Started = new(false)
		}
	})
}

// remove deletes the pod for good once its processes ended, as a kubelet
// does after a graceful deletion.
func (r *podRun) remove() {
	uid := r.pod.UID
	err := r.k.cs.CoreV1().Pods(r.pod.Namespace).Delete(context.Background(), r.pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: new(int64(0)), Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) && r.k.ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "kubetest: kubelet %s: remove pod %s/%s: %v\n", r.k.Node, r.pod.Namespace, r.pod.Name, err)
	}
}

// status changes the pod's status with mutate and writes it, again on a
// conflict with another writer.
func (r *podRun) status(mutate func(*corev1.PodStatus)) error {
	pods := r.k.cs.CoreV1().Pods(r.pod.Namespace)
	return retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		pod, err := pods.Get(context.Background(), r.pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if pod.UID != r.pod.UID {
			return apierrors.NewNotFound(corev1.Resource("pods"), r.pod.Name)
		}
		mutate(&pod.Status)
		_, err = pods.UpdateStatus(context.Background(), pod, metav1.UpdateOptions{})
		return err
	})
}

// volumes makes a directory for each emptyDir volume of the pod, the only
// kind the kubelet has.
func (r *podRun) volumes() (map[string]string, error) {
	vols := map[string]string{}
	for _, v := range r.pod.Spec.Volumes {
		if v.EmptyDir == nil {
			return nil, fmt.Errorf("volume %q: kubetest's kubelet has only emptyDir volumes", v.Name)
		}
		d := filepath.Join(r.dir, "volumes", v.Name)
		if err := os.MkdirAll(d, 0o777); err != nil {
			return nil, err
		}
		vols[v.Name] = d
	}
	return vols, nil
}

// statuses are the first container statuses of containers, all in state.
func statuses(containers []corev1.Container, state corev1.ContainerState) []corev1.ContainerStatus {
	var out []corev1.ContainerStatus
	for _, c := range containers {
		out = append(out, corev1.ContainerStatus{Name: c.Name, Image: c.Image, State: state, Started: new(false)})
	}
	return out
}

// setCondition sets the pod condition of type t.
func setCondition(s *corev1.PodStatus, t corev1.PodConditionType, status corev1.ConditionStatus, reason, msg string) {
	now := metav1.Now()
	for i := range s.Conditions {
		if s.Conditions[i].Type == t {
			if s.Conditions[i].Status != status {
				s.Conditions[i].LastTransitionTime = now
			}
			s.Conditions[i].Status, s.Conditions[i].Reason, s.Conditions[i].Message = status, reason, msg
			return
		}
	}
	s.Conditions = append(s.Conditions, corev1.PodCondition{Type: t, Status: status, Reason: reason,
		Message: msg, LastTransitionTime: now})
}
