package kubetest

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// GPUResource is the extended resource NVIDIA's device plugin advertises.
const GPUResource corev1.ResourceName = "nvidia.com/gpu"

// NodeOptions describe a Node and what its Kubelet can run.
type NodeOptions struct {
	// Name is the node's name; "node-1" when empty.
	Name string
	// CPU and Memory are the node's capacity; "4" and "16Gi" when empty.
	CPU, Memory string
	// GPUs is the node's nvidia.com/gpu capacity; none when zero.
	GPUs int
	// Labels are added to the node's well-known ones.
	Labels map[string]string
	// Taints are the node's taints.
	Taints []corev1.Taint
	// Images are the container images whose files the kubelet can give a
	// container, by image reference. An image not named here still
	// "pulls": its containers run with the host's programs.
	Images map[string]Image
}

// Image is what a Kubelet knows of a container image: files of it a
// container's command names, each by its path in the image, mapped to a
// file on the host.
type Image struct {
	Files map[string]string
}

// Kubelet is a Node of the cluster and the program that runs the pods the
// scheduler binds to it, standing in for a real kubelet and container
// runtime. It watches the node's pods and, for each, runs its init
// containers and then its containers as local processes (the command as
// the pod gives it, with paths under volume mounts and image files mapped
// to host directories and files, the environment resolved from the pod
// spec, Secrets and ConfigMaps included), writing the pod's status through
// the API as a kubelet does: Pending, Running, then Succeeded or Failed
// with each container's exit code. A container that exceeds its memory
// limit (its processes' resident memory, polled) is killed and reported
// OOMKilled. A deleted pod's processes get SIGTERM, then SIGKILL after the
// pod's grace period (10 seconds at most), and the pod is removed.
// Inject makes a chosen pod fail the ways a node fails (eviction, an image
// that does not pull).
//
// What it does not do: isolate anything (the processes run as the test's
// user on the host, with its network), enforce CPU limits, read-only root
// filesystems or user ids, or run an image's own entrypoint.
type Kubelet struct {
	// Node is the node's name.
	Node string

	c      *Cluster
	cs     kubernetes.Interface
	opts   NodeOptions
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	faults []pendingFault
	pods   map[types.UID]*podRun
}

// AddNode registers a Ready node with opts and starts its Kubelet; both
// go when t ends.
func (c *Cluster) AddNode(t testing.TB, opts NodeOptions) *Kubelet {
	t.Helper()
	if opts.Name == "" {
		opts.Name = "node-1"
	}
	if opts.CPU == "" {
		opts.CPU = "4"
	}
	if opts.Memory == "" {
		opts.Memory = "16Gi"
	}
	ctx, cancel := context.WithCancel(context.Background())
	k := &Kubelet{Node: opts.Name, c: c, cs: c.Admin, opts: opts, ctx: ctx, cancel: cancel,
		pods: map[types.UID]*podRun{}}
	if err := k.register(ctx); err != nil {
		cancel()
		t.Fatalf("kubetest: node %s: %v", opts.Name, err)
	}
	factory := informers.NewSharedInformerFactoryWithOptions(c.Admin, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", opts.Name).String()
		}))
	inf := factory.Core().V1().Pods().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { k.sync(obj) },
		UpdateFunc: func(_, obj any) { k.sync(obj) },
		DeleteFunc: func(obj any) { k.gone(obj) },
	}); err != nil {
		cancel()
		t.Fatalf("kubetest: node %s: %v", opts.Name, err)
	}
	factory.Start(ctx.Done())
	t.Cleanup(func() {
		cancel()
		factory.Shutdown()
		k.mu.Lock()
		for _, r := range k.pods {
			r.stop(false)
		}
		k.mu.Unlock()
		k.wg.Wait()
	})
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatalf("kubetest: node %s: the pod informer did not sync", opts.Name)
	}
	return k
}

// register creates the Node, clears the not-ready taint the API server
// gives a new node (the node lifecycle controller, which would, does not
// run) and writes its status: capacity and a Ready condition.
func (k *Kubelet) register(ctx context.Context) error {
	o := k.opts
	labels := map[string]string{
		"kubernetes.io/hostname": o.Name,
		"kubernetes.io/os":       "linux",
		"kubernetes.io/arch":     "amd64",
	}
	maps.Copy(labels, o.Labels)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: o.Name, Labels: labels}}
	node, err := k.cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	node.Spec.Taints = o.Taints
	if node, err = k.cs.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("taints: %w", err)
	}
	capacity := corev1.ResourceList{}
	for name, q := range map[corev1.ResourceName]string{
		corev1.ResourceCPU: o.CPU, corev1.ResourceMemory: o.Memory,
		corev1.ResourcePods: "110", corev1.ResourceEphemeralStorage: "100Gi",
	} {
		v, err := resource.ParseQuantity(q)
		if err != nil {
			return fmt.Errorf("%s %q: %w", name, q, err)
		}
		capacity[name] = v
	}
	if o.GPUs > 0 {
		capacity[GPUResource] = resource.MustParse(strconv.Itoa(o.GPUs))
	}
	now := metav1.Now()
	node.Status = corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity,
		Phase:       corev1.NodeRunning,
		Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
				Message: "kubelet is posting ready status", LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory",
				LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure",
				LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID",
				LastHeartbeatTime: now, LastTransitionTime: now},
		},
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: "127.0.0.1"},
			{Type: corev1.NodeHostName, Address: o.Name},
		},
		NodeInfo: corev1.NodeSystemInfo{KubeletVersion: Version, OperatingSystem: "linux", Architecture: "amd64",
			ContainerRuntimeVersion: "kubetest://" + Version},
	}
	_, err = k.cs.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	return err
}

// sync reacts to a pod of the node being added or changed.
func (k *Kubelet) sync(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ctx.Err() != nil {
		return
	}
	r := k.pods[pod.UID]
	switch {
	case r != nil && pod.DeletionTimestamp != nil:
		r.stop(true)
	case r == nil && pod.DeletionTimestamp != nil:
		// Deleted before it ran here: only the final removal is left.
		r = newPodRun(k, pod)
		k.pods[pod.UID] = r
		r.stop(true)
		k.wg.Add(1)
		go r.run()
	case r == nil && pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed:
		r = newPodRun(k, pod)
		r.fault = k.takeFault(pod)
		k.pods[pod.UID] = r
		k.wg.Add(1)
		go r.run()
	}
}

// gone reacts to a pod of the node having been removed.
func (k *Kubelet) gone(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if r := k.pods[pod.UID]; r != nil {
		r.stop(true)
	}
}
