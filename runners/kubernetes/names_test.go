package kubernetes

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

func TestRunLabel(t *testing.T) {
	long := strings.Repeat("a", 100)
	for _, c := range []struct {
		id, want string
	}{
		{"run-1", "run-1"},
		{"01HZX_abc", "01HZX_abc"},
		{"acme/model#42", "acme-model-42-" + digest("acme/model#42")},
		{"-x-", "x-" + digest("-x-")},
		{"///", digest("///")},
		{long, strings.Repeat("a", 54) + "-" + digest(long)},
	} {
		got := RunLabel(c.id)
		if got != c.want {
			t.Errorf("RunLabel(%q) = %q, want %q", c.id, got, c.want)
		}
		if errs := validation.IsValidLabelValue(got); len(errs) > 0 {
			t.Errorf("RunLabel(%q) = %q: %v", c.id, got, errs)
		}
	}
	if RunLabel("a/b") == RunLabel("a:b") {
		t.Error("two ids share a label")
	}
}

func TestJobName(t *testing.T) {
	for _, id := range []string{"run-1", "RUN_Upper", strings.Repeat("x", 128), "---", "a.b/c"} {
		for _, attempt := range []int{1, 2} {
			name := jobName(id, attempt)
			if errs := validation.IsDNS1123Label(name); len(errs) > 0 || len(name) > 57 {
				t.Errorf("jobName(%q, %d) = %q (%d chars): %v", id, attempt, name, len(name), errs)
			}
		}
		if jobName(id, 1) == jobName(id, 2) {
			t.Errorf("jobName(%q): attempts share a name", id)
		}
	}
}

func TestParseTolerations(t *testing.T) {
	got, err := ParseTolerations([]string{"nvidia.com/gpu=present:NoSchedule", "dedicated:NoExecute", "spot", "k=v"})
	if err != nil {
		t.Fatal(err)
	}
	want := []corev1.Toleration{
		{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpEqual, Value: "present", Effect: corev1.TaintEffectNoSchedule},
		{Key: "dedicated", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
		{Key: "spot", Operator: corev1.TolerationOpExists},
		{Key: "k", Operator: corev1.TolerationOpEqual, Value: "v"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("toleration %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"", ":NoSchedule", "k:", "=v:NoSchedule"} {
		if _, err := ParseTolerations([]string{bad}); err == nil {
			t.Errorf("ParseTolerations(%q): no error", bad)
		}
	}
}
