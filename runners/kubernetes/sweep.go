package kubernetes

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Sweep deletes the Jobs (and through the garbage collector their pods
// and Secrets) that mlbot made for runs that are no longer live (live
// reports whether a run id is), and closes those runs' agent sessions:
// what a worker that died left behind. Jobs of runs this Runner is
// watching are kept whatever live says. The composition root calls it
// when it starts and from time to time.
func (r *Runner) Sweep(ctx context.Context, live func(id string) bool) error {
	list, err := r.cs.BatchV1().Jobs(r.opts.Namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelRun})
	if err != nil {
		return fmt.Errorf("kubernetes: sweep: list Jobs: %w", err)
	}
	var errs []error
	closed := map[string]bool{}
	fg := metav1.DeletePropagationForeground
	for _, j := range list.Items {
		id := j.Annotations[AnnotationRun]
		if id == "" || j.DeletionTimestamp != nil || r.active.Running(id) || live(id) {
			continue
		}
		r.log.Info("sweeping the Job of a run that is no longer live", "run", id, "job", j.Name)
		err := r.cs.BatchV1().Jobs(j.Namespace).Delete(ctx, j.Name, metav1.DeleteOptions{
			PropagationPolicy: &fg, Preconditions: &metav1.Preconditions{UID: &j.UID}})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("kubernetes: sweep: delete Job %s: %w", j.Name, err))
			continue
		}
		if closed[id] {
			continue
		}
		closed[id] = true
		// The session would expire by itself; closing it revokes the
		// token now.
		if err := r.hub.Close(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("kubernetes: sweep: close the agent session of run %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}
