package configs

import (
	"errors"
	"math"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
)

// FuzzParseRepoConfig feeds ParseRepoConfig the full example
// (testdata/full.mlbot.yml), the valid and invalid inputs of the table
// tests, and what the fuzzer derives from them. Exactly one of config and
// error comes back; an error is a ConfigErrors of positioned problems in
// file order, each at a line:col inside the file; a config holds only
// what validation promises (version 1, a train command and metrics files,
// known runner, goals and permission levels, order slices matching their
// maps, finite numbers, a digest); and parsing is deterministic.
func FuzzParseRepoConfig(f *testing.F) {
	full, err := os.ReadFile("testdata/full.mlbot.yml")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		string(full),
		base,
		base + "metrics:\n  accuracy: {goal: maximize, max_drop: 0.01}\n  loss: {goal: minimize}\n",
		base + "deploy:\n  staging: {command: ./deploy.sh, on_merge: true, url: https://x.example}\n",
		base + "permissions: {deploy: admin, retrain: read}\nsecrets: [HF_TOKEN]\n",
		"version: 1\npipeline: {train: x\n",
		"version: 1\npipeline:\n\ttrain: x\n",
		base + "  evaluate: *cmd\n",
		base + "---\nversion: 1\n",
		base + "  train: again\n",
		base + "pipline: {}\n",
		"- version: 1\n",
		"",
		"# nothing\n",
		base + "metrics:\n  m0: &m0 {goal: maximize}\n  m1: &m1 {<<: [*m0, *m0]}\n",
		base + "  timeout: 90m\n  runner: docker\n  image: python:3.12\n  resources: {cpu: 500m, memory: 2Gi, gpus: 1}\n",
		"version: 2\npipeline: {train: x, metrics: [m.json], paths: ['src/**']}\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		cfg, err := ParseRepoConfig(".mlbot.yml", []byte(data))
		if (cfg == nil) == (err == nil) {
			t.Fatalf("config %v and error %v: want exactly one", cfg, err)
		}
		again, err2 := ParseRepoConfig(".mlbot.yml", []byte(data))
		if !reflect.DeepEqual(cfg, again) || !reflect.DeepEqual(err, err2) {
			t.Fatalf("second parse differs: %v / %v", err, err2)
		}
		if err != nil {
			checkConfigErrors(t, data, err)
			return
		}
		checkRepoConfig(t, cfg)
	})
}

func checkConfigErrors(t *testing.T, data string, err error) {
	t.Helper()
	var errs ConfigErrors
	if !errors.As(err, &errs) || len(errs) == 0 {
		t.Fatalf("error %v (%T) is not a non-empty ConfigErrors", err, err)
	}
	if len(errs) > maxErrors+1 {
		t.Fatalf("%d errors reported, at most %d", len(errs), maxErrors+1)
	}
	// Lines as YAML counts them: CR LF, LF, bare CR, NEL, LS and PS each
	// end one.
	lines := strings.Count(yamlBreaks.Replace(data), "\n") + 1
	for i, e := range errs {
		if e.File != ".mlbot.yml" || e.Msg == "" {
			t.Fatalf("error %d: %+v", i, e)
		}
		if e.Line < 1 || e.Col < 1 || e.Line > lines {
			t.Fatalf("error %d at %d:%d, outside a %d-line file: %s", i, e.Line, e.Col, lines, e.Msg)
		}
		if !strings.HasPrefix(e.Error(), ".mlbot.yml:") {
			t.Fatalf("error %d reads %q", i, e.Error())
		}
		if i > 0 {
			p := errs[i-1]
			if p.Line > e.Line || (p.Line == e.Line && p.Col > e.Col) {
				t.Fatalf("errors out of file order: %v before %v", p, e)
			}
			if *p == *e {
				t.Fatalf("error reported twice: %v", e)
			}
		}
	}
}

var yamlBreaks = strings.NewReplacer("\r\n", "\n", "\r", "\n", "\u0085", "\n", "\u2028", "\n", "\u2029", "\n")

func checkRepoConfig(t *testing.T, c *RepoConfig) {
	t.Helper()
	p := c.Pipeline
	switch {
	case c.Version != 1:
		t.Fatalf("version %d accepted", c.Version)
	case strings.TrimSpace(p.Train) == "":
		t.Fatal("no train command")
	case len(p.Metrics) == 0:
		t.Fatal("no metrics files")
	case !slices.Contains(runners, p.Runner):
		t.Fatalf("runner %q", p.Runner)
	case !queueRE.MatchString(p.Queue):
		t.Fatalf("queue %q", p.Queue)
	case p.Timeout <= 0:
		t.Fatalf("timeout %v", p.Timeout)
	case p.Resources.CPUMilli < 0 || p.Resources.MemoryBytes < 0 || p.Resources.GPUs < 0 || p.Resources.ShmBytes < 0:
		t.Fatalf("negative resources %+v", p.Resources)
	}
	if !sameKeys(c.Metrics, c.MetricOrder) || !sameKeys(c.Deploy, c.DeployOrder) {
		t.Fatalf("order slices %v %v do not match their maps", c.MetricOrder, c.DeployOrder)
	}
	for name, m := range c.Metrics {
		if m.Goal != "" && !slices.Contains(goals, m.Goal) {
			t.Fatalf("metric %q: goal %q", name, m.Goal)
		}
		if m.MaxDrop != nil && (math.IsNaN(*m.MaxDrop) || math.IsInf(*m.MaxDrop, 0) || m.Goal == "") {
			t.Fatalf("metric %q: max_drop %v with goal %q", name, *m.MaxDrop, m.Goal)
		}
	}
	for name, e := range c.Deploy {
		if !environmentRE.MatchString(name) || e.Name != name || e.Command == "" {
			t.Fatalf("environment %q: %+v", name, e)
		}
	}
	perms := c.Permissions
	for _, level := range []string{perms.Deploy, perms.Rollback, perms.Retrain, perms.Cancel, perms.OkToTest} {
		if !slices.Contains(permLevels, level) {
			t.Fatalf("permission level %q in %+v", level, perms)
		}
	}
	for _, s := range c.Secrets {
		if !envVarRE.MatchString(s) {
			t.Fatalf("secret %q", s)
		}
	}
	if c.Digest() == "" {
		t.Fatal("a parsed config has no digest")
	}
}

// sameKeys reports whether order lists exactly m's keys, each once.
func sameKeys[V any](m map[string]V, order []string) bool {
	if len(m) != len(order) {
		return false
	}
	sorted := slices.Clone(order)
	sort.Strings(sorted)
	for i, k := range sorted {
		if _, ok := m[k]; !ok || (i > 0 && sorted[i-1] == k) {
			return false
		}
	}
	return true
}
