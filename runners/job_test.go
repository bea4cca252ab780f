package runners_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/mlbot/mlbot/runners"
)

// scriptRunner answers each step with the result scripted for its name,
// and records the specs it was given.
type scriptRunner struct {
	results map[string]runners.Result
	errs    map[string]error
	// sleep is how long each step takes.
	sleep time.Duration
	specs []runners.Spec
}

func (r *scriptRunner) Run(_ context.Context, spec runners.Spec) (runners.Result, error) {
	r.specs = append(r.specs, spec)
	time.Sleep(r.sleep)
	return r.results[spec.Name], r.errs[spec.Name]
}

func TestJobSpec(t *testing.T) {
	var out bytes.Buffer
	job := runners.Job{
		Steps:     []runners.Step{{Name: "train", Command: "python train.py"}, {Name: "evaluate", Command: "python eval.py"}},
		Dir:       "/w/checkout",
		Workspace: "/w",
		Env:       []string{"CI=true"},
		Timeout:   time.Hour,
		Network:   true,
		Writable:  []string{"/srv/models"},
		Metrics:   []string{"metrics.json"},
		Image:     "python:3.12",
		Resources: runners.Resources{CPU: "2", Memory: "4Gi", GPUs: 1},
		Output:    &out,
	}
	got := job.Spec(1, time.Minute)
	want := runners.Spec{Name: "evaluate", Command: "python eval.py", Dir: "/w/checkout", Workspace: "/w", Network: true,
		Writable: []string{"/srv/models"}, Env: []string{"CI=true"}, Timeout: time.Minute, Output: &out}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Spec(1) = %+v\nwant %+v", got, want)
	}
}

func TestRunJob(t *testing.T) {
	broken := errors.New("fork: resource temporarily unavailable")
	steps := []runners.Step{{Name: "train", Command: "make train"}, {Name: "evaluate", Command: "make eval"}}
	for _, tc := range []struct {
		name    string
		results map[string]runners.Result
		errs    map[string]error
		timeout time.Duration
		sleep   time.Duration
		// ran lists the steps the runner was asked to run; want the
		// results that come back, durations aside.
		ran    []string
		want   []runners.StepResult
		infra  error
		logged string
	}{
		{
			name:   "all steps succeed",
			ran:    []string{"train", "evaluate"},
			want:   []runners.StepResult{{Name: "train"}, {Name: "evaluate"}},
			logged: "$ make train\n$ make eval\n",
		},
		{
			name:    "a failing step ends the job",
			results: map[string]runners.Result{"train": {ExitCode: 3}},
			ran:     []string{"train"},
			want:    []runners.StepResult{{Name: "train", ExitCode: 3}},
			logged:  "$ make train\n",
		},
		{
			name:    "a killed step with status 0 ends the job",
			results: map[string]runners.Result{"train": {OOMKilled: true}},
			ran:     []string{"train"},
			want:    []runners.StepResult{{Name: "train", OOMKilled: true}},
		},
		{
			name:    "a timed-out last step",
			results: map[string]runners.Result{"evaluate": {ExitCode: -1, TimedOut: true}},
			ran:     []string{"train", "evaluate"},
			want:    []runners.StepResult{{Name: "train"}, {Name: "evaluate", ExitCode: -1, TimedOut: true}},
		},
		{
			name:    "cancelled",
			results: map[string]runners.Result{"train": {ExitCode: -1, Canceled: true}},
			ran:     []string{"train"},
			want:    []runners.StepResult{{Name: "train", ExitCode: -1, Canceled: true}},
		},
		{
			name:  "the runner cannot run a step",
			errs:  map[string]error{"evaluate": broken},
			ran:   []string{"train", "evaluate"},
			want:  []runners.StepResult{{Name: "train"}, {Name: "evaluate"}},
			infra: broken,
		},
		{
			name:    "no time left for the second step",
			timeout: 20 * time.Millisecond,
			sleep:   40 * time.Millisecond,
			ran:     []string{"train"},
			want:    []runners.StepResult{{Name: "train"}, {Name: "evaluate", NotStarted: true}},
			logged:  "$ make train\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &scriptRunner{results: tc.results, errs: tc.errs, sleep: tc.sleep}
			var out bytes.Buffer
			res := runners.RunJob(context.Background(), r, runners.Job{Steps: steps, Dir: "/w", Timeout: tc.timeout, Output: &out, Log: "/logs/1.log"})
			var ran []string
			for _, s := range r.specs {
				ran = append(ran, s.Name)
				if s.Dir != "/w" || s.Output != &out {
					t.Errorf("step %s: spec %+v does not carry the job's directory and output", s.Name, s)
				}
				if tc.timeout > 0 && (s.Timeout <= 0 || s.Timeout > tc.timeout) {
					t.Errorf("step %s: timeout %s, want what is left of %s", s.Name, s.Timeout, tc.timeout)
				}
				if tc.timeout == 0 && s.Timeout != 0 {
					t.Errorf("step %s: timeout %s for an unbounded job", s.Name, s.Timeout)
				}
			}
			if !reflect.DeepEqual(ran, tc.ran) {
				t.Errorf("ran %v, want %v", ran, tc.ran)
			}
			for i := range res.Steps {
				res.Steps[i].Duration = 0
			}
			if !reflect.DeepEqual(res.Steps, tc.want) {
				t.Errorf("Steps = %+v\nwant %+v", res.Steps, tc.want)
			}
			if res.InfraError != tc.infra {
				t.Errorf("InfraError = %v, want %v", res.InfraError, tc.infra)
			}
			if res.Log != "/logs/1.log" {
				t.Errorf("Log = %q", res.Log)
			}
			if tc.logged != "" && out.String() != tc.logged {
				t.Errorf("output %q, want %q", out.String(), tc.logged)
			}
			last, ok := res.Last()
			if !ok || last.Name != tc.want[len(tc.want)-1].Name {
				t.Errorf("Last() = %+v, %v", last, ok)
			}
		})
	}
}

func TestJobResultLastEmpty(t *testing.T) {
	if _, ok := (runners.JobResult{}).Last(); ok {
		t.Fatal("Last() of a job that started no step reported one")
	}
}

func TestStepResultSucceeded(t *testing.T) {
	for _, tc := range []struct {
		res  runners.StepResult
		want bool
	}{
		{runners.StepResult{Name: "train"}, true},
		{runners.StepResult{ExitCode: 1}, false},
		{runners.StepResult{OOMKilled: true}, false},
		{runners.StepResult{TimedOut: true, ExitCode: -1}, false},
		{runners.StepResult{Canceled: true, ExitCode: -1}, false},
		{runners.StepResult{NotStarted: true}, false},
	} {
		if got := tc.res.Succeeded(); got != tc.want {
			t.Errorf("%+v.Succeeded() = %v, want %v", tc.res, got, tc.want)
		}
	}
}

// TestJobCheckForContainer checks what a runner of containers refuses
// and the result it gives a job it cannot run.
func TestJobCheckForContainer(t *testing.T) {
	ok := runners.Job{ID: "r1", Image: "python:3.12", Steps: []runners.Step{{Name: "train", Command: "true"}}}
	for _, tc := range []struct {
		job  func(j runners.Job) runners.Job
		want string
	}{
		{func(j runners.Job) runners.Job { return j }, ""},
		{func(j runners.Job) runners.Job { j.ID = ""; return j }, "docker: the job has no id"},
		{func(j runners.Job) runners.Job { j.Steps = nil; return j }, "docker: the job has no steps"},
		{func(j runners.Job) runners.Job { j.Image = ""; return j }, "docker: the job names no image (pipeline.image in .mlbot.yml)"},
	} {
		err := tc.job(ok).CheckForContainer("docker")
		if got := fmt.Sprint(err); (tc.want == "" && err != nil) || (tc.want != "" && got != tc.want) {
			t.Errorf("CheckForContainer = %v, want %q", err, tc.want)
		}
	}
	boom := errors.New("no engine")
	res := ok.InfraResult(boom)
	if !errors.Is(res.InfraError, boom) || len(res.Steps) != 1 || res.Steps[0].Name != "train" || res.Steps[0].ExitCode != -1 || res.Steps[0].Succeeded() {
		t.Errorf("InfraResult = %+v, want the first step unfinished with the error", res)
	}
	if res := (runners.Job{}).InfraResult(boom); len(res.Steps) != 0 || res.InfraError != boom {
		t.Errorf("InfraResult of a job with no steps = %+v", res)
	}
}
