package ops

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/mlbot/mlbot/internal/kubetest"
)

// The manifests an operator applies are judged by a real API server
// (strict field validation, Pod Security admission of the namespaces
// they make): mlbot's own namespace with Redis, serve and the workers,
// and the runner's namespace with its Role, binding, ServiceAccount and
// network policies.
func TestKubernetesManifestsApply(t *testing.T) {
	c := kubetest.Start(t)
	dir := filepath.Join("kubernetes")
	c.Apply(t, "", filepath.Join(dir, "mlbot", "namespace.yaml"), filepath.Join(dir, "namespace.yaml"))
	objs := c.Apply(t, "mlbot", filepath.Join(dir, "mlbot", "serviceaccount.yaml"),
		filepath.Join(dir, "mlbot", "redis.yaml"), filepath.Join(dir, "mlbot", "mlbot.yaml"))
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
	}
	if kinds["Deployment"] != 3 || kinds["Service"] != 3 || kinds["NetworkPolicy"] != 1 || kinds["ConfigMap"] != 1 {
		t.Errorf("mlbot's objects by kind: %v", kinds)
	}
	c.Apply(t, "mlbot-jobs", filepath.Join(dir, "serviceaccount.yaml"), filepath.Join(dir, "role.yaml"),
		filepath.Join(dir, "rolebinding.yaml"), filepath.Join(dir, "networkpolicy.yaml"))
}

// The ServiceMonitor is a custom resource the test's API server does not
// know: it is decoded strictly against the fields of the Prometheus
// Operator's monitoring.coreos.com/v1 type that it uses.
func TestServiceMonitorDecodesStrictly(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("kubernetes", "mlbot", "servicemonitor.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var sm struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name      string `yaml:"name"`
			Namespace string `yaml:"namespace"`
		} `yaml:"metadata"`
		Spec struct {
			JobLabel string `yaml:"jobLabel"`
			Selector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"selector"`
			Endpoints []struct {
				Port     string `yaml:"port"`
				Path     string `yaml:"path"`
				Interval string `yaml:"interval"`
			} `yaml:"endpoints"`
		} `yaml:"spec"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&sm); err != nil {
		t.Fatal(err)
	}
	if sm.APIVersion != "monitoring.coreos.com/v1" || sm.Kind != "ServiceMonitor" || sm.Spec.Selector.MatchLabels["mlbot.metrics"] != "true" ||
		len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Path != "/metrics" || sm.Spec.JobLabel != "app.kubernetes.io/part-of" {
		t.Errorf("ServiceMonitor: %+v", sm)
	}
}
