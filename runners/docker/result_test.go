package docker

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mlbot/mlbot/runners"
	"github.com/mlbot/mlbot/runners/agentapi"
)

func TestJobResult(t *testing.T) {
	job := runners.Job{Log: "run.log", Steps: []runners.Step{{Name: "train"}, {Name: "evaluate"}}}
	ok := func(name string) agentapi.StepReport {
		return agentapi.StepReport{Name: name, Duration: agentapi.Duration(time.Second)}
	}
	failed := func(name string, code int) agentapi.StepReport {
		return agentapi.StepReport{Name: name, ExitCode: code, Duration: agentapi.Duration(time.Second)}
	}
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name  string
		x     exit
		want  []runners.StepResult
		infra string
	}{
		{"both steps succeeded", exit{state: agentapi.State{Done: true, Steps: []agentapi.StepReport{ok("train"), ok("evaluate")}}},
			[]runners.StepResult{{Name: "train", Duration: time.Second}, {Name: "evaluate", Duration: time.Second}}, ""},
		{"a step failed", exit{state: agentapi.State{Done: true, Steps: []agentapi.StepReport{failed("train", 3)}}},
			[]runners.StepResult{{Name: "train", ExitCode: 3, Duration: time.Second}}, ""},
		{"the agent timed the step out", exit{state: agentapi.State{Done: true, Steps: []agentapi.StepReport{{Name: "train", ExitCode: 143, TimedOut: true}}}},
			[]runners.StepResult{{Name: "train", ExitCode: 143, TimedOut: true}}, ""},
		{"the step was OOM-killed, the agent reported its exit", exit{oom: true, state: agentapi.State{Done: true, Steps: []agentapi.StepReport{ok("train"), failed("evaluate", 137)}}},
			[]runners.StepResult{{Name: "train", Duration: time.Second}, {Name: "evaluate", ExitCode: 137, Duration: time.Second, OOMKilled: true}}, ""},
		{"the agent was OOM-killed in the step", exit{oom: true, code: 137, started: start, finished: start.Add(5 * time.Second),
			state: agentapi.State{Steps: []agentapi.StepReport{ok("train")}}},
			[]runners.StepResult{{Name: "train", Duration: time.Second}, {Name: "evaluate", ExitCode: 137, Duration: 4 * time.Second, OOMKilled: true}}, ""},
		{"a helper of train was OOM-killed, the steps went on", exit{oom: true, oomStep: 0, state: agentapi.State{Done: true, Steps: []agentapi.StepReport{ok("train"), ok("evaluate")}}},
			[]runners.StepResult{{Name: "train", Duration: time.Second, OOMKilled: true}, {Name: "evaluate", Duration: time.Second}}, ""},
		{"an OOM kill seen only at the end is the last step's", exit{oom: true, oomStep: -1, state: agentapi.State{Done: true, Steps: []agentapi.StepReport{ok("train"), ok("evaluate")}}},
			[]runners.StepResult{{Name: "train", Duration: time.Second}, {Name: "evaluate", Duration: time.Second, OOMKilled: true}}, ""},
		{"the agent was OOM-killed uploading", exit{oom: true, code: 137, state: agentapi.State{Steps: []agentapi.StepReport{ok("train"), ok("evaluate")}}},
			[]runners.StepResult{{Name: "train", Duration: time.Second}, {Name: "evaluate", Duration: time.Second}}, "memory limit after the last step"},
		{"canceled in the first step", exit{stopped: canceled, code: 143},
			[]runners.StepResult{{Name: "train", ExitCode: 143, Canceled: true}}, ""},
		{"canceled, the agent reported the killed step", exit{stopped: canceled, state: agentapi.State{Done: true, Steps: []agentapi.StepReport{failed("train", 143)}}},
			[]runners.StepResult{{Name: "train", ExitCode: 143, Duration: time.Second, Canceled: true}}, ""},
		{"canceled, the agent said it was stopped", exit{stopped: canceled, state: agentapi.State{Done: true, Error: "step \"train\": the agent was stopped: terminated signal received",
			Steps: []agentapi.StepReport{failed("train", 143)}}},
			[]runners.StepResult{{Name: "train", ExitCode: 143, Duration: time.Second, Canceled: true}}, ""},
		{"canceled while uploading", exit{stopped: canceled, state: agentapi.State{Steps: []agentapi.StepReport{ok("train"), ok("evaluate")}}},
			[]runners.StepResult{{Name: "train", Duration: time.Second}, {Name: "evaluate", Duration: time.Second, Canceled: true}}, ""},
		{"canceled after the agent ended", exit{stopped: canceled, state: agentapi.State{Done: true, Steps: []agentapi.StepReport{ok("train"), ok("evaluate")}}},
			[]runners.StepResult{{Name: "train", Duration: time.Second}, {Name: "evaluate", Duration: time.Second}}, ""},
		{"timed out in the second step", exit{stopped: timedOut, code: 137, state: agentapi.State{Steps: []agentapi.StepReport{ok("train")}}},
			[]runners.StepResult{{Name: "train", Duration: time.Second}, {Name: "evaluate", ExitCode: 137, TimedOut: true}}, ""},
		{"the container died without a word", exit{code: 2, output: "exec format error"},
			[]runners.StepResult{{Name: "train", ExitCode: 2}}, "exited with status 2 before its agent reported the job's end; its last output:\nexec format error"},
		{"the agent failed", exit{state: agentapi.State{Done: true, Error: "fetch the source: 401"}},
			[]runners.StepResult{{Name: "train", ExitCode: -1}}, "the agent failed: fetch the source: 401"},
		{"the runner lost the container", exit{err: errors.New("container abc disappeared while it ran"), state: agentapi.State{Steps: []agentapi.StepReport{ok("train")}}},
			[]runners.StepResult{{Name: "train", Duration: time.Second}, {Name: "evaluate"}}, "disappeared"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := jobResult(job, tt.x)
			if res.Log != "run.log" {
				t.Errorf("Log = %q", res.Log)
			}
			if !reflect.DeepEqual(res.Steps, tt.want) {
				t.Errorf("Steps =\n%+v\nwant\n%+v", res.Steps, tt.want)
			}
			switch {
			case tt.infra == "" && res.InfraError != nil:
				t.Errorf("InfraError = %v, want none", res.InfraError)
			case tt.infra != "" && (res.InfraError == nil || !strings.Contains(res.InfraError.Error(), tt.infra)):
				t.Errorf("InfraError = %v, want one saying %q", res.InfraError, tt.infra)
			}
		})
	}
}

func TestNotStarted(t *testing.T) {
	job := runners.Job{ID: "r1", Steps: []runners.Step{{Name: "train"}, {Name: "evaluate"}}}
	engineDown := errors.New("docker: inspect image: connection refused")
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	detached, detach := context.WithCancelCause(context.Background())
	detach(runners.ErrDetach)
	tests := []struct {
		name     string
		ctx      context.Context
		canceled bool
		infra    error
	}{
		{"the engine failed", context.Background(), false, engineDown},
		{"canceled", canceled, true, nil},
		{"detached", detached, false, runners.ErrDetach},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := notStarted(tt.ctx, job, engineDown)
			if len(res.Steps) != 1 || res.Steps[0].Name != "train" || res.Steps[0].Canceled != tt.canceled || res.Steps[0].Succeeded() {
				t.Errorf("steps %+v, want train, not succeeded, Canceled %v", res.Steps, tt.canceled)
			}
			if !errors.Is(res.InfraError, tt.infra) || (tt.infra == nil) != (res.InfraError == nil) {
				t.Errorf("InfraError = %v, want %v", res.InfraError, tt.infra)
			}
		})
	}
}
