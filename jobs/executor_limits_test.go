package jobs

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/runners"
)

// jobRecorder is a runners.JobRunner that records the jobs it is given
// and runs none of them.
type jobRecorder struct{ jobs []runners.Job }

func (r *jobRecorder) Run(context.Context, runners.Spec) (runners.Result, error) {
	return runners.Result{}, nil
}

func (r *jobRecorder) RunJob(_ context.Context, job runners.Job) runners.JobResult {
	r.jobs = append(r.jobs, job)
	var res runners.JobResult
	for _, s := range job.Steps {
		res.Steps = append(res.Steps, runners.StepResult{Name: s.Name})
	}
	return res
}

// A run that asks a container runner for more than the operator allows
// fails before anything starts, and the detail (the comment and status)
// quotes the limit; a run within bounds reaches the runner with its id
// and the resources it asked for, the operator's memory limit filled in.
func TestExecutorBoundsContainerRuns(t *testing.T) {
	limits := func(runner string) (configs.RunnerLimits, string, bool) {
		if runner != "docker" {
			return configs.RunnerLimits{}, "", false
		}
		return configs.RunnerLimits{Images: []string{"trainer:*"}, MaxCPU: "4", MaxMemory: 8 << 30, MaxGPUs: 1}, "MLBOT_DOCKER_", true
	}
	const head = "version: 1\npipeline:\n  train: ./train\n  metrics: [m.json]\n  runner: docker\n"
	tests := []struct {
		name, config string
		wantDetail   string
		wantJob      runners.Resources
	}{
		{"too many GPUs", head + "  image: trainer:1\n  resources: {gpus: 4}\n",
			".mlbot.yml: pipeline.resources.gpus 4 is more than the limit of 1 per run (MLBOT_DOCKER_MAX_GPUS)", runners.Resources{}},
		{"image not allowed", head + "  image: miner:latest\n",
			`.mlbot.yml: pipeline.image "miner:latest" is not an image this mlbot runs (MLBOT_DOCKER_IMAGES: trainer:*)`, runners.Resources{}},
		{"within bounds", head + "  image: trainer:1\n  resources: {cpu: 500m, gpus: 1, shm_size: 1Gi}\n",
			"", runners.Resources{CPU: "500m", Memory: "8Gi", GPUs: 1, ShmSize: "1Gi"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, ".mlbot.yml"), []byte(tt.config), 0o644); err != nil {
				t.Fatal(err)
			}
			rec := &jobRecorder{}
			e := &Executor{Runners: runners.Set{runners.Local: &fakeRunner{}, "docker": rec}, LogDir: t.TempDir(), Limits: limits}
			run := &Run{ID: "run-42", Kind: KindPullRequest, SHA: strings.Repeat("a", 40)}
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
			job := rec.jobs[0]
			if job.ID != "run-42" || job.Image != "trainer:1" || job.Resources.CPU != tt.wantJob.CPU ||
				job.Resources.Memory != tt.wantJob.Memory || job.Resources.GPUs != tt.wantJob.GPUs || job.Resources.ShmSize != tt.wantJob.ShmSize {
				t.Errorf("job id %q image %q resources %+v; want run-42, trainer:1, %+v", job.ID, job.Image, job.Resources, tt.wantJob)
			}
		})
	}
}
