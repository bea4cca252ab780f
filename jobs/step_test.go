package jobs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/runners"
)

// The pipeline's job holds the steps .mlbot.yml has, train before
// evaluate, and the patterns of the files the pipeline writes.
func TestPipelineJob(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		want         []runners.Step
	}{
		{"train only", "version: 1\npipeline:\n  train: python train.py\n  metrics: [m.json]\n",
			[]runners.Step{{Name: "train", Command: "python train.py"}}},
		{"train and evaluate", "version: 1\npipeline:\n  train: python train.py\n  evaluate: python eval.py\n  metrics: [m.json]\n",
			[]runners.Step{{Name: "train", Command: "python train.py"}, {Name: "evaluate", Command: "python eval.py"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := configs.ParseRepoConfig(configs.RepoConfigFile, []byte(tc.config))
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			job := pipelineJob(cfg, "/w/c", []string{"CI=true"}, true, &out, "/logs/r1.log")
			if !reflect.DeepEqual(job.Steps, tc.want) {
				t.Errorf("steps %+v, want %+v", job.Steps, tc.want)
			}
			if job.Dir != "/w/c" || !job.Network || job.Output != &out || job.Log != "/logs/r1.log" ||
				!reflect.DeepEqual(job.Env, []string{"CI=true"}) || !reflect.DeepEqual(job.Metrics, []string{"m.json"}) {
				t.Errorf("job %+v does not carry the run's directory, network, output, log, env and metric patterns", job)
			}
		})
	}
}

// The executor runs a pipeline with the runner .mlbot.yml names, found in
// its set, and refuses a runner the set does not hold with the
// configuration error it always gave.
func TestExecutorPicksTheRunnerFromItsSet(t *testing.T) {
	for _, tc := range []struct {
		name, runner string
		wantRan      string
		wantOutcome  report.Outcome
		wantDetail   string
	}{
		{name: "default", wantRan: "local"},
		{name: "local", runner: "local", wantRan: "local"},
		{name: "docker held by the set", runner: "docker", wantRan: "docker"},
		{name: "kubernetes not held", runner: "kubernetes", wantOutcome: report.OutcomeConfigError,
			wantDetail: `.mlbot.yml: runner "kubernetes" is not available in this mlbot; use runner: local`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			config := "version: 1\npipeline:\n  train: sh train.sh\n  metrics: [metrics.json]\n"
			if tc.runner != "" {
				config += "  runner: " + tc.runner + "\n  image: python:3.12\n"
			}
			os.WriteFile(filepath.Join(dir, ".mlbot.yml"), []byte(config), 0o644)
			os.WriteFile(filepath.Join(dir, "metrics.json"), []byte(`{"acc": 0.9}`), 0o644)
			set := runners.Set{"local": &fakeRunner{}, "docker": &fakeRunner{}}
			e := &Executor{Runners: set, LogDir: t.TempDir()}
			run := &Run{ID: "r1", Kind: KindPullRequest, SHA: strings.Repeat("a", 40)}
			if _, err := e.Run(context.Background(), dir, run); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if run.Outcome != tc.wantOutcome || run.Detail != tc.wantDetail {
				t.Errorf("outcome %q, detail %q; want %q, %q", run.Outcome, run.Detail, tc.wantOutcome, tc.wantDetail)
			}
			for name, r := range set {
				n, want := len(r.(*fakeRunner).specs), 0
				if name == tc.wantRan {
					want = 1
				}
				if n != want {
					t.Errorf("runner %s ran %d steps, want %d", name, n, want)
				}
			}
		})
	}
}

// How a step ends decides the run's outcome and detail, the same for
// every runner.
func TestExecutorStepEnds(t *testing.T) {
	broken := errors.New("fork/exec /bin/sh: resource temporarily unavailable")
	for _, tc := range []struct {
		name        string
		result      runners.Result
		err         error
		memory      int64
		wantOutcome report.Outcome
		wantDetail  string
		wantErr     string
	}{
		{name: "succeeded", wantDetail: ""},
		{name: "exited", result: runners.Result{ExitCode: 2}, wantOutcome: report.OutcomeStepFailed,
			wantDetail: "train exited with status 2"},
		{name: "out of memory", result: runners.Result{ExitCode: 137, OOMKilled: true}, memory: 1 << 30,
			wantOutcome: report.OutcomeStepFailed, wantDetail: "train ran out of memory and was killed (exit status 137); the limit per step is 1.0 GiB (MLBOT_SANDBOX_MEMORY)"},
		{name: "a helper out of memory", result: runners.Result{OOMKilled: true}, wantOutcome: report.OutcomeStepFailed,
			wantDetail: "a process of train ran out of memory and was killed"},
		{name: "timed out", result: runners.Result{ExitCode: -1, TimedOut: true}, wantOutcome: report.OutcomeTimedOut,
			wantDetail: "train did not finish within the pipeline timeout of 1h0m0s; its process group was killed"},
		{name: "runner failed", err: broken, wantErr: "train: " + broken.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, ".mlbot.yml"), []byte("version: 1\npipeline:\n  train: sh train.sh\n  metrics: [metrics.json]\n"), 0o644)
			os.WriteFile(filepath.Join(dir, "metrics.json"), []byte(`{"acc": 0.9}`), 0o644)
			r := &fakeRunner{result: tc.result, err: tc.err}
			e := &Executor{Runners: runners.Set{runners.Local: r}, LogDir: t.TempDir(), MemoryLimit: tc.memory}
			run := &Run{ID: "r1", Kind: KindPullRequest, SHA: strings.Repeat("a", 40)}
			_, err := e.Run(context.Background(), dir, run)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr || !errors.Is(err, broken) {
					t.Fatalf("Run error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if run.Outcome != tc.wantOutcome || run.Detail != tc.wantDetail {
				t.Errorf("outcome %q, detail %q; want %q, %q", run.Outcome, run.Detail, tc.wantOutcome, tc.wantDetail)
			}
		})
	}
}

// A task whose deadline has passed starts no step and says so.
func TestExecutorNoTimeLeft(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, ".mlbot.yml"), []byte("version: 1\npipeline:\n  train: sh train.sh\n  metrics: [metrics.json]\n"), 0o644)
	r := &fakeRunner{}
	e := &Executor{Runners: runners.Set{runners.Local: r}, LogDir: t.TempDir()}
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(deadlineSlack/2))
	defer cancel()
	run := &Run{ID: "r1", Kind: KindPullRequest, SHA: strings.Repeat("a", 40)}
	if _, err := e.Run(ctx, dir, run); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if want := "no time was left for train within the pipeline timeout of 1h0m0s"; run.Outcome != report.OutcomeTimedOut || run.Detail != want {
		t.Errorf("outcome %q, detail %q; want timed_out, %q", run.Outcome, run.Detail, want)
	}
	if len(r.specs) != 0 {
		t.Errorf("%d steps ran", len(r.specs))
	}
}
