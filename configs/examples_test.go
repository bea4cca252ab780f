package configs

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestExampleGates(t *testing.T) {
	c, err := ParseRepoConfig(RepoConfigFile, []byte(base+`  examples: eval/examples.jsonl
metrics:
  accuracy: {goal: maximize, max_drop: 0.005, significance: 0.05}
  loss: {goal: minimize, non_inferiority: 0.01}
  f1: {goal: maximize, max_drop: 0, significance: 0.01, non_inferiority: 0}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Pipeline.Examples != "eval/examples.jsonl" {
		t.Errorf("examples = %q", c.Pipeline.Examples)
	}
	acc, loss, f1 := c.Metrics["accuracy"], c.Metrics["loss"], c.Metrics["f1"]
	if acc.Significance == nil || *acc.Significance != 0.05 || acc.NonInferiority != nil {
		t.Errorf("accuracy = %+v", acc)
	}
	if loss.NonInferiority == nil || *loss.NonInferiority != 0.01 || loss.Significance != nil {
		t.Errorf("loss = %+v", loss)
	}
	if f1.NonInferiority == nil || *f1.NonInferiority != 0 || *f1.Significance != 0.01 {
		t.Errorf("f1 = %+v", f1)
	}
	// The gates change what a run decides, so they change the digest.
	plain, err := ParseRepoConfig(RepoConfigFile, []byte(base+"  examples: eval/examples.jsonl\nmetrics:\n  accuracy: {goal: maximize, max_drop: 0.005}\n"))
	if err != nil {
		t.Fatal(err)
	}
	gated, _ := ParseRepoConfig(RepoConfigFile, []byte(base+"  examples: eval/examples.jsonl\nmetrics:\n  accuracy: {goal: maximize, max_drop: 0.005, significance: 0.05}\n"))
	if plain.Digest() == gated.Digest() {
		t.Error("adding significance left the digest unchanged")
	}

	tests := []struct {
		name, input string
		want        []wantErr
	}{
		{"examples outside the checkout", base + "  examples: ../x.jsonl\n", []wantErr{{5, 13, `pipeline.examples: "../x.jsonl" must stay inside the checkout`}}},
		{"examples absolute", base + "  examples: /etc/passwd\n", []wantErr{{5, 13, "must be relative to the checkout"}}},
		{"examples a list", base + "  examples: [a.jsonl]\n", []wantErr{{5, 13, "pipeline.examples"}}},
		{"significance zero", base + "metrics:\n  acc: {goal: maximize, max_drop: 0, significance: 0}\n", []wantErr{{6, 52, "metrics.acc.significance: a significance level between 0 and 1"}}},
		{"significance one", base + "metrics:\n  acc: {goal: maximize, max_drop: 0, significance: 1}\n", []wantErr{{6, 52, "between 0 and 1"}}},
		{"significance a word", base + "metrics:\n  acc: {goal: maximize, max_drop: 0, significance: high}\n", []wantErr{{6, 52, "metrics.acc.significance"}}},
		{"significance without max_drop", base + "metrics:\n  acc: {goal: maximize, significance: 0.05}\n", []wantErr{{6, 25, "metrics.acc.significance: needs max_drop"}}},
		{"significance without goal", base + "metrics:\n  acc: {max_drop: 0, significance: 0.05}\n", []wantErr{
			{6, 19, "metrics.acc.max_drop: needs a goal"},
			{6, 22, "metrics.acc.significance: needs a goal"},
		}},
		{"non_inferiority negative", base + "metrics:\n  acc: {goal: maximize, non_inferiority: -0.01}\n", []wantErr{{6, 42, "metrics.acc.non_inferiority: a margin in the metric's units, not negative"}}},
		{"non_inferiority without goal", base + "metrics:\n  acc: {non_inferiority: 0.01}\n", []wantErr{{6, 9, "metrics.acc.non_inferiority: needs a goal"}}},
		{"misspelt", base + "metrics:\n  acc: {goal: maximize, significanse: 0.05}\n", []wantErr{{6, 25, `unknown key "significanse" in metrics.acc (did you mean "significance"?)`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRepoConfig(RepoConfigFile, []byte(tt.input))
			var errs ConfigErrors
			if !errors.As(err, &errs) {
				t.Fatalf("error %v, want ConfigErrors", err)
			}
			if len(errs) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(tt.want), err)
			}
			for i, w := range tt.want {
				e := errs[i]
				if e.Line != w.line || e.Col != w.col || !strings.Contains(e.Msg, w.msg) {
					t.Errorf("error %d = %q, want %d:%d: ...%s...", i, e.Error(), w.line, w.col, w.msg)
				}
			}
		})
	}
}

// TestExampleGatesKeepDigests checks that a configuration without the
// new keys keeps the digest it had before they existed: the digest is
// part of a pipeline's dedupe key.
func TestExampleGatesKeepDigests(t *testing.T) {
	c, err := ParseRepoConfig(RepoConfigFile, []byte(base+"metrics:\n  accuracy: {goal: maximize, max_drop: 0.005}\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(c)
	for _, key := range []string{"Examples", "Significance", "NonInferiority"} {
		if strings.Contains(string(b), key) {
			t.Errorf("the canonical form of a file without %s names it: %s", key, b)
		}
	}
}
