package configs

import (
	"reflect"
	"testing"
)

// sweepBase declares parameters and metrics; sweep: blocks append to it so
// that their line numbers start at 12.
const sweepBase = base + `params:
  lr: 0.5
  epochs: 40
  optimizer: adam
metrics:
  loss: {goal: minimize}
  accuracy: {goal: maximize}
`

func TestSweepBlock(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  Sweep
	}{
		{"defaults", "sweep:\n  space:\n    lr: 0.05,0.1\n", Sweep{
			Space:  []SweepDim{{Param: "lr", Expr: "0.05,0.1", Line: 14, Col: 9}},
			Metric: "loss", Goal: "minimize", MaxTrials: 16, Parallel: 2, Eta: 3,
		}},
		{"everything", "sweep:\n  space:\n    lr: loguniform(0.001, 1)\n    optimizer: [adam, sgd]\n  metric: accuracy\n  max_trials: 27\n  parallel: 4\n  seed: 7\n  method: halving\n  resource: epochs\n  eta: 2\n", Sweep{
			Space:  []SweepDim{{Param: "lr", Expr: "loguniform(0.001, 1)", Line: 14, Col: 9}, {Param: "optimizer", Expr: "adam,sgd", Line: 15, Col: 16}},
			Metric: "accuracy", Goal: "maximize", MaxTrials: 27, Parallel: 4, Seed: 7, Method: "halving", Resource: "epochs", Eta: 2,
		}},
		{"goal overrides the metric's, parallel within max_trials", "sweep:\n  space: {lr: 0.1}\n  goal: maximize\n  max_trials: 1\n  parallel: 3\n", Sweep{
			Space:  []SweepDim{{Param: "lr", Expr: "0.1", Line: 13, Col: 15}},
			Metric: "loss", Goal: "maximize", MaxTrials: 1, Parallel: 1, Eta: 3,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseRepoConfig(RepoConfigFile, []byte(sweepBase+tt.input))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*c.Sweep, tt.want) {
				t.Errorf("Sweep = %+v\nwant %+v", *c.Sweep, tt.want)
			}
		})
	}
	c, err := ParseRepoConfig(RepoConfigFile, []byte(sweepBase))
	if err != nil || c.Sweep != nil || c.Permissions.Sweep != "write" {
		t.Errorf("without sweep: Sweep = %+v, Permissions.Sweep %q, err %v; want nil, write", c.Sweep, c.Permissions.Sweep, err)
	}
}

func TestSweepBlockErrors(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []wantErr
	}{
		{"undeclared parameter", "sweep:\n  space:\n    lrate: 0.1,0.2\n", []wantErr{{14, 12, `sweep.space: "lrate" is not a parameter declared under params: (expected one of: lr, epochs, optimizer)`}}},
		{"duplicate parameter", "sweep:\n  space:\n    lr: 0.1\n    lr: 0.2\n", []wantErr{{15, 5, `duplicate key "lr" in sweep.space (first set at line 14)`}}},
		{"empty values", "sweep:\n  space:\n    lr:\n", []wantErr{{14, 5, "sweep.space.lr: values are required"}}},
		{"empty list", "sweep:\n  space:\n    lr: []\n", []wantErr{{14, 9, "sweep.space.lr: the list is empty"}}},
		{"mapping values", "sweep:\n  space:\n    lr: {a: 1}\n", []wantErr{{14, 9, "sweep.space.lr: values expected"}}},
		{"unknown key", "sweep:\n  space: {lr: 0.1}\n  trials: 3\n", []wantErr{{14, 3, `unknown key "trials" in sweep`}}},
		{"max_trials over the cap", "sweep:\n  space: {lr: 0.1}\n  max_trials: 65\n", []wantErr{{14, 15, "sweep.max_trials: must be between 1 and 64, got 65"}}},
		{"parallel zero", "sweep:\n  space: {lr: 0.1}\n  parallel: 0\n", []wantErr{{14, 13, "sweep.parallel: must be between 1 and 64, got 0"}}},
		{"eta one", "sweep:\n  space: {lr: 0.1}\n  eta: 1\n", []wantErr{{14, 8, "sweep.eta: must be between 2 and 64, got 1"}}},
		{"unknown method", "sweep:\n  space: {lr: 0.1}\n  method: gird\n", []wantErr{{14, 11, `sweep.method: unknown method "gird" (did you mean "grid"?)`}}},
		{"unknown metric", "sweep:\n  space: {lr: 0.1}\n  metric: acuracy\n", []wantErr{{12, 1, `sweep.metric: "acuracy" is not a metric under metrics: (did you mean "accuracy"?)`}}},
		{"bad goal", "sweep:\n  space: {lr: 0.1}\n  goal: max\n", []wantErr{{14, 9, `sweep.goal: goal must be maximize or minimize, got "max"`}}},
		{"halving without resource", "sweep:\n  space: {lr: 0.1}\n  method: halving\n", []wantErr{{12, 1, "sweep: method halving needs resource:"}}},
		{"resource without halving", "sweep:\n  space: {lr: 0.1}\n  resource: epochs\n", []wantErr{{12, 1, "sweep.resource: only method halving uses a resource"}}},
		{"resource not a number", "sweep:\n  space: {lr: 0.1}\n  method: halving\n  resource: optimizer\n", []wantErr{{12, 1, "sweep.resource: parameter optimizer is a string; the resource must be a number"}}},
		{"resource undeclared", "sweep:\n  space: {lr: 0.1}\n  method: halving\n  resource: epoch\n", []wantErr{{12, 1, `sweep.resource: "epoch" is not a parameter declared under params: (did you mean "epochs"?)`}}},
		{"resource in the space", "sweep:\n  space: {epochs: [10, 20]}\n  method: halving\n  resource: epochs\n", []wantErr{{12, 1, "sweep.resource: epochs is in the search space"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRepoConfig(RepoConfigFile, []byte(sweepBase+tt.input))
			checkErrors(t, err, tt.want)
		})
	}
	// A sweep over metrics without a goal must name one.
	_, err := ParseRepoConfig(RepoConfigFile, []byte(base+"params: {lr: 1}\nmetrics:\n  acc:\nsweep:\n  space: {lr: 1}\n"))
	checkErrors(t, err, []wantErr{{8, 1, "sweep: set metric"}})
	_, err = ParseRepoConfig(RepoConfigFile, []byte(base+"params: {lr: 1}\nmetrics:\n  acc:\nsweep:\n  space: {lr: 1}\n  metric: acc\n"))
	checkErrors(t, err, []wantErr{{8, 1, "sweep: set goal (maximize or minimize): metrics.acc has none"}})
}
