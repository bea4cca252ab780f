package main

import (
	"net/http"
	"strings"
	"testing"
)

// examplesModel is a pipeline whose evaluate step writes per-example
// results: 400 examples, the first 360 right (accuracy 0.9), then the
// first `down` of them turned wrong and `up` of the wrong ones turned
// right, as params says ("down up"). Its metrics file is empty: accuracy
// is the mean of the examples' field. gate is the accuracy metric's entry.
func examplesModel(gate, params string) map[string]string {
	return map[string]string{
		".mlbot.yml": `version: 1
pipeline:
  train: cp params model.txt
  evaluate: sh eval.sh
  metrics: [metrics.json]
  examples: eval/examples.jsonl
  timeout: 1m
metrics:
  accuracy: ` + gate + `
`,
		"eval.sh": `mkdir -p eval
read down up < model.txt
awk -v d="$down" -v u="$up" 'BEGIN {
  for (i = 0; i < 400; i++) {
    ok = (i < 360) ? 1 : 0
    if (i < d) ok = 0
    if (i >= 360 && i < 360 + u) ok = 1
    printf "{\"id\": \"ex-%d\", \"accuracy\": %d}\n", i, ok
  }
}' > eval/examples.jsonl
echo '{}' > metrics.json
`,
		"params": params + "\n",
	}
}

// TestSignificance drives the gates that use per-example results through
// real webhooks on both forges: a baseline on main, then a pull request
// whose examples differ from it by a known number of flipped answers.
func TestSignificance(t *testing.T) {
	const sigGate = "{goal: maximize, max_drop: 0.005, significance: 0.05}"
	const niGate = "{goal: maximize, non_inferiority: 0.02}"
	scenarios := []struct {
		name, gate, head string
		want             string   // final status state
		says             []string // in the comment
	}{
		// 20 right answers turned wrong: drop 0.05, McNemar b=20 c=0,
		// p = 2·0.5^20 ≈ 1.9e-6.
		{"a significant drop fails the significance gate", sigGate, "20 0", "failure", []string{
			"drop 0.05 > max_drop 0.005, significant (Holm p < 0.0001 < 0.05)",
			"| 95% CI | p |", "exact McNemar for 0/1 fields", "10,000 resamples", "seed 20260601", "n = 400 examples",
		}},
		// 6 turned wrong, 2 turned right: drop 0.01 is over max_drop, but
		// McNemar b=6 c=2 gives p = 2·37/256 ≈ 0.29.
		{"a drop within the noise passes the significance gate", sigGate, "6 2", "success", []string{
			"not significant: Holm p 0.29", "Verdict: passed",
		}},
		// Mean −0.01, standard error ≈ 0.007: the interval's low end is
		// about −0.024, below −0.02.
		{"a possibly worse model fails non-inferiority", niGate, "6 2", "failure", []string{
			"(non_inferiority)", "not shown non-inferior",
		}},
		// Mean 0, standard error 0.005: the low end is about −0.01.
		{"a model within the margin passes non-inferiority", niGate, "2 2", "success", []string{
			"CI low > −0.02", "Verdict: passed",
		}},
		// The head evaluates other examples: nothing to pair, so the gate
		// falls back to plain max_drop, which 360/399 > 0.9 passes.
		{"different examples fall back to plain max_drop", sigGate, "0 0\n# fewer", "success", []string{
			"No significance:", "fell back to plain max_drop",
		}},
	}
	for _, forge := range forges {
		for _, sc := range scenarios {
			t.Run(forge+"/"+sc.name, func(t *testing.T) {
				e := newE2E(t, forge, nil)
				e.mainSHA = e.commit("main", examplesModel(sc.gate, "0 0"), "model with per-example results")
				e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
				if st := e.final(e.mainSHA); st.State != "success" {
					t.Fatalf("baseline status %+v", st)
				}
				e.settle()
				files := map[string]string{"params": sc.head + "\n"}
				if strings.Contains(sc.head, "fewer") {
					// The last (wrong) example left out: accuracy 360/399.
					files["eval.sh"] = strings.Replace(examplesModel(sc.gate, "")["eval.sh"], "i < 400", "i < 399", 1)
				}
				h := e.commit("feature", files, "change the model")
				e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
				st := e.final(h)
				e.settle()
				cs := e.mlbotComments(1)
				if len(cs) != 1 {
					t.Fatalf("%d mlbot comments, want 1", len(cs))
				}
				body := cs[0].Body
				if st.State != sc.want {
					t.Errorf("status %+v, want %s; comment:\n%s", st, sc.want, body)
				}
				for _, s := range sc.says {
					if !strings.Contains(body, s) {
						t.Errorf("comment lacks %q:\n%s", s, body)
					}
				}
				if a := e.archived(); len(a) > 0 {
					t.Errorf("tasks failed for good: %v", a)
				}
			})
		}
	}
}
