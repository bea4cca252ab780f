package kubetest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// opsDir holds the manifests operators apply.
const opsDir = "../../ops/kubernetes"

// TestCluster runs the control plane once and checks each part a test of
// a runner relies on: RBAC from the operators' manifests, the Job
// controller making pods, the scheduler's word on a pod that fits no
// node, and the kubelet running pods and failing them on demand.
func TestCluster(t *testing.T) {
	c := Start(t)
	ctx := context.Background()
	k := c.AddNode(t, NodeOptions{Name: "cpu-node", Memory: "8Gi"})
	c.Apply(t, "", filepath.Join(opsDir, "namespace.yaml"))
	const ns = "mlbot-jobs"
	for _, f := range []string{"role.yaml", "rolebinding.yaml", "serviceaccount.yaml", "networkpolicy.yaml"} {
		c.Apply(t, ns, filepath.Join(opsDir, f))
	}
	mlbot := c.Client(t, MlbotUser)

	t.Run("rbac", func(t *testing.T) {
		// The Role lets mlbot create Jobs and Secrets, watch pods…
		if _, err := mlbot.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err != nil {
			t.Errorf("list pods as mlbot: %v", err)
		}
		// …but never read a Secret, create a pod itself or act elsewhere.
		for name, call := range map[string]func() error{
			"list secrets": func() error {
				_, err := mlbot.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
				return err
			},
			"create pod": func() error {
				_, err := mlbot.CoreV1().Pods(ns).Create(ctx, sleeper("p", "true"), metav1.CreateOptions{})
				return err
			},
			"list jobs in default": func() error {
				_, err := mlbot.BatchV1().Jobs("default").List(ctx, metav1.ListOptions{})
				return err
			},
		} {
			if err := call(); !apierrors.IsForbidden(err) {
				t.Errorf("%s as mlbot: err = %v, want Forbidden", name, err)
			}
		}
	})

	t.Run("job runs on the kubelet with env from a secret", func(t *testing.T) {
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "tok"}, StringData: map[string]string{"token": "s3cret"}}
		if _, err := mlbot.CoreV1().Secrets(ns).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "out")
		pod := sleeper("", `echo "$TOKEN $GREETING $(POD) $0" > `+out)
		pod.Spec.Containers[0].Env = []corev1.EnvVar{
			{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "tok"}, Key: "token"}}},
			{Name: "POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "GREETING", Value: "hello from $(POD)"},
		}
		pod.Spec.Containers[0].Args = append(pod.Spec.Containers[0].Args, "/work/x")
		job := jobOf("envjob", pod)
		if _, err := mlbot.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create job as mlbot: %v", err)
		}
		p := waitPod(t, mlbot, ns, "job-name=envjob", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatalf("the pod's command wrote nothing: %v", err)
		}
		work := filepath.Join(c.Dir, "pods", ns+"_"+p.Name+"_"+string(p.UID), "volumes", "work")
		want := "s3cret hello from " + p.Name + " " + p.Name + " " + work + "/x\n"
		if string(b) != want {
			t.Errorf("the pod wrote %q, want %q", b, want)
		}
		if p.Spec.NodeName != k.Node {
			t.Errorf("pod on node %q, want %q", p.Spec.NodeName, k.Node)
		}
		waitJob(t, mlbot, ns, "envjob", batchv1.JobComplete)
	})

	t.Run("a pod over its memory limit is OOMKilled", func(t *testing.T) {
		pod := sleeper("", "head -c 1000000000 /dev/zero | tail; sleep 30")
		pod.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("32Mi")}
		if _, err := mlbot.BatchV1().Jobs(ns).Create(ctx, jobOf("oomjob", pod), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		p := waitPod(t, mlbot, ns, "job-name=oomjob", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
		term := p.Status.ContainerStatuses[0].State.Terminated
		if term == nil || term.Reason != "OOMKilled" || term.ExitCode != 137 {
			t.Errorf("container state %+v, want terminated OOMKilled 137", p.Status.ContainerStatuses[0].State)
		}
		waitJob(t, mlbot, ns, "oomjob", batchv1.JobFailed)
	})

	t.Run("faults", func(t *testing.T) {
		k.Inject(t, "job-name=evictjob", Fault{Kind: Evicted})
		k.Inject(t, "job-name=pulljob", Fault{Kind: ImagePull})
		for _, name := range []string{"evictjob", "pulljob"} {
			if _, err := mlbot.BatchV1().Jobs(ns).Create(ctx, jobOf(name, sleeper("", "sleep 60")), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		p := waitPod(t, mlbot, ns, "job-name=evictjob", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
		if p.Status.Reason != "Evicted" || !strings.Contains(p.Status.Message, "low on resource") {
			t.Errorf("evicted pod: reason %q message %q", p.Status.Reason, p.Status.Message)
		}
		p = waitPod(t, mlbot, ns, "job-name=pulljob", func(p *corev1.Pod) bool {
			w := p.Status.ContainerStatuses
			return len(w) == 1 && w[0].State.Waiting != nil && w[0].State.Waiting.Reason == "ImagePullBackOff"
		})
		if p.Status.Phase != corev1.PodPending {
			t.Errorf("pod whose image does not pull is %s, want Pending", p.Status.Phase)
		}
	})

	t.Run("the scheduler says why a GPU pod fits no node", func(t *testing.T) {
		pod := sleeper("", "true")
		pod.Spec.Containers[0].Resources.Limits = corev1.ResourceList{GPUResource: resource.MustParse("1")}
		if _, err := mlbot.BatchV1().Jobs(ns).Create(ctx, jobOf("gpujob", pod), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var msg string
		waitPod(t, mlbot, ns, "job-name=gpujob", func(p *corev1.Pod) bool {
			for _, cond := range p.Status.Conditions {
				if cond.Type == corev1.PodScheduled && cond.Reason == corev1.PodReasonUnschedulable {
					msg = cond.Message
					return true
				}
			}
			return false
		})
		if !strings.Contains(msg, "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.") {
			t.Errorf("scheduler message %q", msg)
		}
	})

	t.Run("deleting a job deletes its running pod", func(t *testing.T) {
		if _, err := mlbot.BatchV1().Jobs(ns).Create(ctx, jobOf("deljob", sleeper("", "sleep 600")), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitPod(t, mlbot, ns, "job-name=deljob", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
		fg := metav1.DeletePropagationForeground
		if err := mlbot.BatchV1().Jobs(ns).Delete(ctx, "deljob", metav1.DeleteOptions{PropagationPolicy: &fg}); err != nil {
			t.Fatal(err)
		}
		if err := poll(30*time.Second, func() error {
			_, err := mlbot.BatchV1().Jobs(ns).Get(ctx, "deljob", metav1.GetOptions{})
			if err == nil {
				return errStill
			}
			if !apierrors.IsNotFound(err) {
				return err
			}
			pods, err := mlbot.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "job-name=deljob"})
			if err == nil && len(pods.Items) > 0 {
				return errStill
			}
			return err
		}); err != nil {
			t.Fatalf("job or pod still there: %v", err)
		}
	})
}

var errStill = errors.New("not yet")

// sleeper is a pod running script with sh, with a work volume, as the
// restricted Pod Security profile wants it.
func sleeper(name, script string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: new(int64(1)),
			ServiceAccountName:            "mlbot-job",
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: new(true), RunAsUser: new(int64(1000)),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Volumes: []corev1.Volume{{Name: "work", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			Containers: []corev1.Container{{
				Name: "main", Image: "debian:bookworm-slim",
				Command:      []string{"/bin/sh", "-c", script},
				VolumeMounts: []corev1.VolumeMount{{Name: "work", MountPath: "/work"}},
				SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: new(false),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
			}},
		},
	}
}

// jobOf is a Job of one try running pod.
func jobOf(name string, pod *corev1.Pod) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: batchv1.JobSpec{BackoffLimit: new(int32(0)),
			Template: corev1.PodTemplateSpec{Spec: pod.Spec}},
	}
}

// waitPod waits for a pod matching selector that satisfies ok.
func waitPod(t *testing.T, cs kubernetes.Interface, ns, selector string, ok func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var found *corev1.Pod
	var last []corev1.Pod
	err := poll(60*time.Second, func() error {
		pods, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return err
		}
		last = pods.Items
		for i := range pods.Items {
			if ok(&pods.Items[i]) {
				found = &pods.Items[i]
				return nil
			}
		}
		return errStill
	})
	if err != nil {
		for _, p := range last {
			t.Logf("pod %s: %s %+v", p.Name, p.Status.Phase, p.Status)
		}
		t.Fatalf("no pod %s as wanted: %v", selector, err)
	}
	return found
}

// waitJob waits for the job's condition cond.
func waitJob(t *testing.T, cs kubernetes.Interface, ns, name string, cond batchv1.JobConditionType) {
	t.Helper()
	if err := poll(60*time.Second, func() error {
		j, err := cs.BatchV1().Jobs(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range j.Status.Conditions {
			if c.Type == cond && c.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return errStill
	}); err != nil {
		t.Fatalf("job %s not %s: %v", name, cond, err)
	}
}
