//go:build unix

package jobs

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/runners"
)

// A checkout decides what its .mlbot.yml and metrics files are: a link to
// a file of the worker, or a FIFO that would block the worker, must end
// the run with a clear reason and run nothing it should not.
func TestExecutorReadsTheCheckoutSafely(t *testing.T) {
	const config = "version: 1\npipeline:\n  train: sh train.sh\n  metrics: [metrics.json]\n"
	tests := []struct {
		name        string
		prepare     func(t *testing.T, dir, outside string)
		wantOutcome report.Outcome
		wantDetail  string
		wantSteps   int
	}{
		{name: ".mlbot.yml linked to a file outside the checkout", prepare: func(t *testing.T, dir, outside string) {
			os.WriteFile(filepath.Join(outside, "stolen.yml"), []byte(config), 0o644)
			mustPrepare(t, os.Symlink(filepath.Join(outside, "stolen.yml"), filepath.Join(dir, ".mlbot.yml")))
		}, wantOutcome: report.OutcomeConfigError, wantDetail: ".mlbot.yml: ", wantSteps: 0},
		{name: ".mlbot.yml is a FIFO", prepare: func(t *testing.T, dir, _ string) {
			mustPrepare(t, syscall.Mkfifo(filepath.Join(dir, ".mlbot.yml"), 0o644))
		}, wantOutcome: report.OutcomeConfigError, wantDetail: ".mlbot.yml: not a regular file (a named pipe (FIFO))", wantSteps: 0},
		{name: "metrics file is a FIFO", prepare: func(t *testing.T, dir, _ string) {
			os.WriteFile(filepath.Join(dir, ".mlbot.yml"), []byte(config), 0o644)
			mustPrepare(t, syscall.Mkfifo(filepath.Join(dir, "metrics.json"), 0o644))
		}, wantOutcome: report.OutcomeStepFailed, wantDetail: `reading metrics: metrics file "metrics.json": not a regular file (a named pipe (FIFO))`, wantSteps: 1},
		{name: "metrics file linked to /etc/passwd", prepare: func(t *testing.T, dir, _ string) {
			os.WriteFile(filepath.Join(dir, ".mlbot.yml"), []byte(config), 0o644)
			mustPrepare(t, os.Symlink("/etc/passwd", filepath.Join(dir, "metrics.json")))
		}, wantOutcome: report.OutcomeStepFailed, wantDetail: `reading metrics: metrics file "metrics.json": `, wantSteps: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, outside := t.TempDir(), t.TempDir()
			tt.prepare(t, dir, outside)
			runner := &fakeRunner{}
			e := &Executor{Runners: runners.Set{runners.Local: runner}, LogDir: t.TempDir()}
			run := &Run{ID: "r1", Kind: KindPullRequest, SHA: strings.Repeat("a", 40)}
			done := make(chan error, 1)
			go func() {
				_, err := e.Run(context.Background(), dir, run)
				done <- err
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run blocked reading the checkout")
			}
			if run.Outcome != tt.wantOutcome || !strings.HasPrefix(run.Detail, tt.wantDetail) {
				t.Errorf("outcome %q, detail %q; want %q, %q…", run.Outcome, run.Detail, tt.wantOutcome, tt.wantDetail)
			}
			if len(runner.specs) != tt.wantSteps {
				t.Errorf("%d steps ran, want %d", len(runner.specs), tt.wantSteps)
			}
		})
	}
}

func mustPrepare(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Skip(err)
	}
}

// TestExecutorKeepsSecretsOutOfMetrics is a trusted run given a secret
// whose training names metrics after it: the metric names, which the
// comment, the status, the check run and the run page show, must carry
// "***" where the secret was, as its log does.
func TestExecutorKeepsSecretsOutOfMetrics(t *testing.T) {
	const secret = "hf_s3cr3t_value_0123456789"
	dir := t.TempDir()
	config := "version: 1\npipeline:\n  train: sh train.sh\n  metrics: [metrics.json]\nsecrets: [HF_TOKEN]\n"
	metrics := `{"accuracy": 0.9, "leak_` + secret + `": 1, "nested": {"` + secret + `": 2}}`
	os.WriteFile(filepath.Join(dir, ".mlbot.yml"), []byte(config), 0o644)
	os.WriteFile(filepath.Join(dir, "metrics.json"), []byte(metrics), 0o644)
	e := &Executor{Runners: runners.Set{runners.Local: &fakeRunner{}}, LogDir: t.TempDir(),
		Secrets: []string{secret}, SecretEnv: map[string]string{"HF_TOKEN": secret}}
	run := &Run{ID: "r1", Kind: KindPullRequest, SHA: strings.Repeat("a", 40), Trusted: true}
	if _, err := e.Run(context.Background(), dir, run); err != nil {
		t.Fatalf("Run: %v", err)
	}
	for name := range run.Metrics {
		if strings.Contains(name, secret) {
			t.Errorf("metric %q carries the secret", name)
		}
	}
	if run.Outcome != "" || len(run.Metrics) != 3 || run.Metrics["accuracy"] != 0.9 || run.Metrics["leak_***"] != 1 || run.Metrics["nested.***"] != 2 {
		t.Errorf("outcome %q, metrics %v; want accuracy, leak_*** and nested.***", run.Outcome, run.Metrics)
	}
}
