package kubetest

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// FaultKind is a way a node fails a pod.
type FaultKind int

const (
	// ImagePull is an image the registry does not give: the pod stays
	// Pending, its containers waiting with reason ErrImagePull, then
	// ImagePullBackOff, and nothing of it runs.
	ImagePull FaultKind = iota + 1
	// Evicted is the kubelet evicting the pod under node pressure once its
	// containers run: they are killed, and the pod's phase is Failed with
	// reason Evicted and a DisruptionTarget condition.
	Evicted
)

// Fault is a failure Inject makes a pod meet.
type Fault struct {
	Kind FaultKind
	// Message is the failure's message; a kubelet's usual one when empty.
	Message string
}

// pendingFault is a Fault waiting for the next pod its selector matches.
type pendingFault struct {
	sel   labels.Selector
	fault Fault
}

// Inject makes the next pod of the node whose labels match selector (a
// label selector such as "app=x") meet f; each Inject applies to one pod.
func (k *Kubelet) Inject(t testing.TB, selector string, f Fault) {
	t.Helper()
	sel, err := labels.Parse(selector)
	if err != nil {
		t.Fatalf("kubetest: selector %q: %v", selector, err)
	}
	if f.Message == "" {
		f.Message = defaultMessage(f.Kind)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.faults = append(k.faults, pendingFault{sel: sel, fault: f})
}

// takeFault removes and returns the first fault pending for pod; k.mu is held.
func (k *Kubelet) takeFault(pod *corev1.Pod) Fault {
	for i, f := range k.faults {
		if f.sel.Matches(labels.Set(pod.Labels)) {
			k.faults = append(k.faults[:i], k.faults[i+1:]...)
			return f.fault
		}
	}
	return Fault{}
}

// defaultMessage is what a kubelet says for a fault of kind.
func defaultMessage(kind FaultKind) string {
	switch kind {
	case ImagePull:
		return "rpc error: code = NotFound desc = failed to pull and unpack image: not found"
	case Evicted:
		return "The node was low on resource: memory. Threshold quantity: 100Mi, available: 51200Ki."
	}
	return fmt.Sprintf("fault %d", kind)
}
