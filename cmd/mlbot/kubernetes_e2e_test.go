package main

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/internal/dockertest"
	"github.com/mlbot/mlbot/internal/kubetest"
	"github.com/mlbot/mlbot/runners/kubernetes"
)

// TestKubernetesRunner drives the kubernetes runner through webhooks
// against a real control plane (etcd, kube-apiserver with RBAC, the
// controller manager, the scheduler), mlbot acting with the Role of
// ops/kubernetes: the Job controller makes the pod, the scheduler binds
// it, and the test's kubelet runs the pod's `mlbot agent`, which reaches
// mlbot serve over HTTP like a pod in a cluster would.
func TestKubernetesRunner(t *testing.T) {
	const (
		namespace  = "mlbot-jobs"
		agentImage = "ghcr.io/mlbot/mlbot:e2e"
		opsDir     = "../../ops/kubernetes"
	)
	c := kubetest.Start(t)
	bin := filepath.Join(t.TempDir(), "mlbot")
	if err := dockertest.BuildStaticMlbot(bin); err != nil {
		t.Fatal(err)
	}
	c.AddNode(t, kubetest.NodeOptions{Name: "cpu-1", CPU: "4", Memory: "8Gi",
		Images: map[string]kubetest.Image{agentImage: {Files: map[string]string{kubernetes.DefaultAgentBinary: bin}}}})
	c.Apply(t, "", filepath.Join(opsDir, "namespace.yaml"))
	for _, f := range []string{"serviceaccount.yaml", "role.yaml", "rolebinding.yaml", "networkpolicy.yaml"} {
		c.Apply(t, namespace, filepath.Join(opsDir, f))
	}
	kubeconfig := c.Kubeconfig(t, kubetest.MlbotUser)
	e := newE2E(t, "gitlab", func(cfg *configs.Server) {
		cfg.Runners = []string{"local", "kubernetes"}
		cfg.K8s = configs.Kubernetes{
			RunnerLimits: configs.RunnerLimits{Images: []string{"debian:*"}, MaxMemory: 1 << 30, MaxCPU: "2"},
			Namespace:    namespace, ServiceAccount: "mlbot-job", AgentImage: agentImage,
			Kubeconfig: kubeconfig, PendingTimeout: time.Minute,
		}
	})
	files := e.model("0.90")
	files[".mlbot.yml"] = strings.Replace(files[".mlbot.yml"], "  timeout: 1m\n",
		"  timeout: 1m\n  runner: kubernetes\n  image: debian:bookworm-slim\n  resources: {cpu: 500m, memory: 256Mi}\n", 1)
	e.mainSHA = e.commit("main", files, "a model for the cluster")
	e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
	st := e.final(e.mainSHA)
	if st.State != "success" {
		t.Fatalf("status %+v; run %s", st, runJSON(t, st))
	}
	if rec := runJSON(t, st); !strings.Contains(rec, "training 0.90") || !strings.Contains(rec, `"accuracy":0.9`) {
		t.Errorf("run record: %s", rec)
	}
	// The Job, its pod and its token's Secret are gone once the run ended.
	id := st.TargetURL[strings.LastIndex(st.TargetURL, "/")+1:]
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		sel := metav1.ListOptions{LabelSelector: kubernetes.LabelRun + "=" + id}
		jobs, err := c.Admin.BatchV1().Jobs(namespace).List(ctx, sel)
		if err != nil {
			t.Fatal(err)
		}
		pods, err := c.Admin.CoreV1().Pods(namespace).List(ctx, sel)
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs.Items)+len(pods.Items) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s left %d Jobs and %d pods", id, len(jobs.Items), len(pods.Items))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
