package report

import (
	"strings"
	"testing"
)

func TestDeployMarkdown(t *testing.T) {
	drop := 0.02
	specs := map[string]Spec{"accuracy": {Goal: GoalMaximize, MaxDrop: &drop}, "a|b`@x <!-- mlbot:x -->": {Goal: GoalMaximize, MaxDrop: &drop}}
	diff := Compute(map[string]float64{"accuracy": 0.9, "a|b`@x <!-- mlbot:x -->": 1},
		map[string]float64{"accuracy": 0.85, "a|b`@x <!-- mlbot:x -->": 0.5}, specs, []string{"accuracy"})
	gate := &DeployGate{Running: 1, RunningSHA: "abcdef0123456789", Diff: diff}
	tests := []struct {
		name      string
		got       string
		want      []string
		forbidden []string
	}{
		{"refused against the running version", RenderRefusal(Refusal{Env: "production", Version: 7, SHA: "0123456789abcdef", Why: "merge of #3", Gate: gate, LogURL: "http://mlbot/deploys/x"}),
			[]string{"Model v7 not deployed to `production`", "worse than model v1 (`abcdef0`)", "drop 0.05 > max_drop 0.02", "| v1 (production now) | v7 |", "[Deploy record](http://mlbot/deploys/x)"},
			[]string{"<!-- mlbot:x", "--force"}},
		{"refused with a force hint", RenderRefusal(Refusal{Env: "staging", Version: 7, Gate: gate, ForceHint: "/deploy staging --force"}),
			[]string{"`/deploy staging --force`"}, nil},
		{"untrusted", RenderRefusal(Refusal{Env: "staging", Version: 4, Untrusted: true, ForceHint: "/deploy staging --force"}),
			[]string{"untrusted run", "Merge the pull request"}, []string{"--force"}},
		{"forced past a failing check", RenderForced(Forced{Env: "staging", By: "maria", Gate: gate}),
			[]string{"**Forced** by @maria", "model v1", "drop 0.05 > max_drop 0.02"}, nil},
		{"forced deploy outcome", RenderDeploy(Deploy{State: "succeeded", Env: "staging", Version: 7, Why: "`/deploy` by @maria", Forced: "maria", Against: 3}),
			[]string{"to `staging`: succeeded (forced)", "check against model v3 was skipped"}, nil},
		{"refused outcome", RenderDeploy(Deploy{State: "refused", Env: "production", Version: 7, Detail: "worse than model v1: a|b <x>"}),
			[]string{"⛔", "refused", `a\|b \<x\>`}, nil},
		{"merge not deployed", RenderMergeNotDeployed(MergeNotDeployed{SHA: "0123456789", Branch: "main", Outcome: OutcomeGateFailed, BaseSHA: "abcdef0123", Diff: diff, Envs: []string{"production"}}),
			[]string{"Not deployed", "Compared with `abcdef0`", "drop 0.05 > max_drop 0.02"}, []string{"<!-- mlbot:x"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, w := range tc.want {
				if !strings.Contains(tc.got, w) {
					t.Errorf("lacks %q:\n%s", w, tc.got)
				}
			}
			for _, f := range tc.forbidden {
				if strings.Contains(tc.got, f) {
					t.Errorf("contains %q:\n%s", f, tc.got)
				}
			}
		})
	}
	if got := GateText(diff); !strings.HasPrefix(got, "accuracy: drop 0.05 > max_drop 0.02; ") || strings.Contains(got, "\n") {
		t.Errorf("GateText = %q", got)
	}
}
