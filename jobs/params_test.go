package jobs

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/runners"
	"github.com/mlbot/mlbot/runners/local"
)

// paramsConfig declares parameters; its train step (a real shell, through
// the local runner) writes the values it sees as the metrics.
const paramsConfig = `version: 1
params:
  lr: 0.5
  epochs: 40
  optimizer: adam
  augment: false
pipeline:
  train: 'printf "{\"lr\": %s, \"epochs\": %s, \"optimizer_is_sgd\": %s, \"leaked\": %s}" "$MLBOT_PARAM_LR" "$MLBOT_PARAM_EPOCHS" "$( [ "$MLBOT_PARAM_OPTIMIZER" = sgd ] && echo 1 || echo 0 )" "${MLBOT_PARAM_SECRET:-0}" > m.json; printf "%s" "$MLBOT_PARAMS" > params.json'
  metrics: [m.json]
`

// Every step gets the declared parameters, with the run's overrides
// merged over the defaults, as MLBOT_PARAM_<NAME> and MLBOT_PARAMS; a
// variable of that shape in the worker's own environment never reaches it.
func TestExecutorPassesParams(t *testing.T) {
	t.Setenv("MLBOT_PARAM_SECRET", "7") // the worker's, not the repository's
	tests := []struct {
		name       string
		overrides  map[string]string
		wantMetric map[string]float64
		wantJSON   string
	}{
		{"defaults", nil, map[string]float64{"lr": 0.5, "epochs": 40, "optimizer_is_sgd": 0, "leaked": 0},
			`{"lr":0.5,"epochs":40,"optimizer":"adam","augment":false}`},
		{"overrides", map[string]string{"lr": "0.050", "optimizer": "sgd", "augment": "true"}, map[string]float64{"lr": 0.05, "epochs": 40, "optimizer_is_sgd": 1, "leaked": 0},
			`{"lr":0.05,"epochs":40,"optimizer":"sgd","augment":true}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, ".mlbot.yml"), []byte(paramsConfig), 0o644); err != nil {
				t.Fatal(err)
			}
			e := &Executor{Runners: runners.Set{runners.Local: local.New()}, LogDir: t.TempDir()}
			run := &Run{ID: "p1", Kind: KindPullRequest, SHA: strings.Repeat("a", 40), Params: tt.overrides}
			if _, err := e.Run(context.Background(), dir, run); err != nil {
				t.Fatal(err)
			}
			if run.Outcome != "" {
				t.Fatalf("outcome %q: %s\n%s", run.Outcome, run.Detail, run.LogTail)
			}
			for k, want := range tt.wantMetric {
				if got, ok := run.Metrics[k]; !ok || got != want {
					t.Errorf("metric %s = %v (present %v), want %v", k, got, ok, want)
				}
			}
			got, err := os.ReadFile(filepath.Join(dir, "params.json"))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.wantJSON {
				t.Errorf("MLBOT_PARAMS = %s, want %s", got, tt.wantJSON)
			}
			var obj map[string]any
			if err := json.Unmarshal(got, &obj); err != nil {
				t.Errorf("MLBOT_PARAMS is not JSON: %v", err)
			}
		})
	}
}

// A container runner (docker, kubernetes) gets the whole environment in
// runners.Job.Env, which it hands to the agent in the container: the
// parameters are in it. An override the commit does not declare, or of
// the wrong kind, runs nothing.
func TestExecutorParamsReachContainerJobs(t *testing.T) {
	const config = "version: 1\nparams:\n  lr: 0.5\npipeline:\n  train: ./train\n  metrics: [m.json]\n  runner: docker\n"
	tests := []struct {
		name       string
		overrides  map[string]string
		wantEnv    []string
		wantDetail string
	}{
		{"override", map[string]string{"lr": "0.1"}, []string{"MLBOT_PARAM_LR=0.1", `MLBOT_PARAMS={"lr":0.1}`}, ""},
		{"undeclared", map[string]string{"momentum": "0.9"}, nil, `.mlbot.yml: parameter "momentum" is not declared under params: in .mlbot.yml`},
		{"not a number", map[string]string{"lr": "$(reboot)"}, nil, `.mlbot.yml: parameter lr: "$(reboot)" is not a finite number`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, ".mlbot.yml"), []byte(config), 0o644); err != nil {
				t.Fatal(err)
			}
			rec := &jobRecorder{}
			e := &Executor{Runners: runners.Set{runners.Local: &fakeRunner{}, "docker": rec}, LogDir: t.TempDir()}
			run := &Run{ID: "p2", Kind: KindPullRequest, SHA: strings.Repeat("a", 40), Params: tt.overrides}
			if _, err := e.Run(context.Background(), dir, run); err != nil {
				t.Fatal(err)
			}
			if tt.wantDetail != "" {
				if run.Outcome != report.OutcomeConfigError || run.Detail != tt.wantDetail {
					t.Errorf("outcome %q, detail %q; want config_error, %q", run.Outcome, run.Detail, tt.wantDetail)
				}
				if len(rec.jobs) != 0 {
					t.Errorf("the runner got %d jobs, want none", len(rec.jobs))
				}
				return
			}
			if len(rec.jobs) != 1 {
				t.Fatalf("the runner got %d jobs, want 1", len(rec.jobs))
			}
			env := strings.Join(rec.jobs[0].Env, "\n")
			for _, kv := range tt.wantEnv {
				if !strings.Contains("\n"+env+"\n", "\n"+kv+"\n") {
					t.Errorf("job env lacks %s:\n%s", kv, env)
				}
			}
		})
	}
}

// PipelinePayload carries a trial's overrides into its run record.
func TestPipelinePayloadParams(t *testing.T) {
	p := PipelinePayload{RunID: "r", Params: map[string]string{"lr": "0.1"}}
	if got := p.newRun().Params; got["lr"] != "0.1" || len(got) != 1 {
		t.Errorf("newRun().Params = %v", got)
	}
}
