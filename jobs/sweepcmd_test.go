package jobs

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/jobs/store"
	"github.com/mlbot/mlbot/jobs/sweep"
)

// sweepConfig is a .mlbot.yml with a learning rate and epochs, and the
// sweep settings given.
func sweepConfig(t *testing.T, sweepBlock string) *configs.RepoConfig {
	t.Helper()
	cfg, err := configs.ParseRepoConfig(".mlbot.yml", []byte(`version: 1
pipeline:
  train: sh train.sh
  metrics: [m.json]
params:
  lr: 0.1
  epochs: 8
metrics:
  accuracy: {goal: maximize, min: 0.8}
sweep:
`+sweepBlock))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

var sweepRepo = bot.Repo{Forge: "github", FullName: "acme/model", CloneURL: "https://github.com/acme/model.git", DefaultBranch: "main"}

// startTestSweep records a sweep of spec on pull request 7 and advances
// it once, as /sweep does.
func startTestSweep(t *testing.T, w *Worker, spec sweep.Spec) *store.Sweep {
	t.Helper()
	ctx := context.Background()
	pr := &bot.PullRequest{Number: 7, HeadSHA: "1111111111111111111111111111111111111111", HeadRef: "feature", BaseRef: "main"}
	sw, err := newSweep(store.NewID(), sweepRepo, pr, true, spec, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.store.SaveSweep(ctx, sw); err != nil {
		t.Fatal(err)
	}
	if err := w.store.SetPRSweep(ctx, sweepRepo, 7, sw.ID); err != nil {
		t.Fatal(err)
	}
	if err := w.advanceSweep(ctx, sw.ID); err != nil {
		t.Fatal(err)
	}
	return reload(t, w, sw.ID)
}

func reload(t *testing.T, w *Worker, id string) *store.Sweep {
	t.Helper()
	sw, err := w.store.GetSweep(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return sw
}

// active counts the sweep's trials dispatched and not finished.
func active(t *testing.T, w *Worker, sw *store.Sweep) (dispatched, unfinished int) {
	t.Helper()
	for _, tr := range sw.Trials {
		if tr.RunID == "" {
			continue
		}
		dispatched++
		run, err := w.store.GetRun(context.Background(), tr.RunID)
		if err != nil {
			t.Fatal(err)
		}
		if run.State != RunFinished {
			unfinished++
		}
	}
	return dispatched, unfinished
}

// finishTrials finishes the sweep's unfinished dispatched trials as a
// worker would, with the accuracy score gives each (a negative score
// fails the trial), and advances the sweep after each, as its report does.
func finishTrials(t *testing.T, w *Worker, id string, score func(params map[string]string) float64) {
	t.Helper()
	ctx := context.Background()
	sw := reload(t, w, id)
	for _, tr := range sw.Trials {
		if tr.RunID == "" {
			continue
		}
		run, err := w.store.GetRun(ctx, tr.RunID)
		if err != nil {
			t.Fatal(err)
		}
		if run.State == RunFinished {
			continue
		}
		if !maps.Equal(run.Params, tr.Params) || run.Sweep != id || run.Trial != tr.Index || run.Rung != tr.Rung {
			t.Fatalf("run %s of trial %d/%d: params %v sweep %q trial %d rung %d", run.ID, tr.Index, tr.Rung, run.Params, run.Sweep, run.Trial, run.Rung)
		}
		run.State, run.Train = RunFinished, time.Second
		if s := score(tr.Params); s < 0 {
			run.Outcome, run.Detail = report.OutcomeStepFailed, "train exited 3"
		} else {
			run.Outcome, run.Metrics = report.OutcomePassed, map[string]float64{"accuracy": s}
			if s < 0.8 {
				run.Outcome = report.OutcomeGateFailed
			}
			run.Specs, run.Order = map[string]report.Spec{"accuracy": {Goal: "maximize", Min: ptr(0.8)}}, []string{"accuracy"}
		}
		if err := w.store.SaveRun(ctx, run); err != nil {
			t.Fatal(err)
		}
		if err := w.advanceSweep(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
}

func ptr(f float64) *float64 { return &f }

// TestSweepDispatch drives sweeps through the dispatcher against a real
// Redis: at most parallel trials are ever queued or running, each trial
// is a distinct run on the pipeline queue, halving plans a rung only once
// the one before it finished, and the sweep comment and mlbot/sweep
// status end with the table.
func TestSweepDispatch(t *testing.T) {
	byLR := func(p map[string]string) float64 {
		switch p["lr"] {
		case "0.1":
			return 0.90
		case "0.2":
			return 0.95
		case "0.3":
			return 0.70 // fails the min gate
		case "0.4":
			return -1 // crashes
		}
		return 0.85
	}
	tests := []struct {
		name       string
		block      string
		args       string
		score      func(map[string]string) float64
		wantRuns   int      // trials run in all
		wantRows   []string // the lr column, best first
		wantStatus bot.State
		want       []string // in the comment
	}{
		{name: "grid, two at once", block: "  parallel: 2\n", args: "lr=0.1,0.2,0.3,0.4,0.5", score: byLR, wantRuns: 5,
			wantRows: []string{"0.2", "0.1", "0.5", "0.3", "0.4"}, wantStatus: bot.StateSuccess,
			want: []string{"5/5 done", "| **2** 🏆 | `0.2` | **0.9500** |", "💥 failed: step failed: train exited 3", "❌ accuracy", "4/5 trials done, 0 pruned, 1 failed"}},
		{name: "one at a time", block: "  parallel: 1\n", args: "lr=0.1,0.2,0.5", score: byLR, wantRuns: 3,
			wantRows: []string{"0.2", "0.1", "0.5"}, wantStatus: bot.StateSuccess, want: []string{"3/3 done"}},
		{name: "no trial passes", block: "  parallel: 3\n", args: "lr=0.3,0.4", score: byLR, wantRuns: 2,
			wantRows: []string{"0.3", "0.4"}, wantStatus: bot.StateFailure, want: []string{"2/2 done"}},
		{name: "successive halving", block: "  parallel: 2\n  method: halving\n  resource: epochs\n  eta: 2\n", args: "lr=0.1,0.2,0.5,0.6",
			score: func(p map[string]string) float64 {
				// More epochs help; lr 0.2 is best at every budget.
				s := byLR(p)
				if p["epochs"] == "8" {
					s += 0.01
				}
				return s
			},
			wantRuns: 4 + 2 + 1, wantRows: []string{"0.2", "0.1", "0.5", "0.6"}, wantStatus: bot.StateSuccess,
			want: []string{"7/7 done", "| **2** 🏆 | `0.2` | `8` | **0.9600** |", "✂️ pruned at rung 2", "✂️ pruned at rung 1", "successive halving over epochs (eta 2)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeForge{}
			w := newRouteWorker(t, f, nil)
			spec, err := sweep.NewSpec(sweepConfig(t, tt.block), tt.args)
			if err != nil {
				t.Fatal(err)
			}
			sw := startTestSweep(t, w, spec)
			runIDs := map[string]bool{}
			for rounds := 0; sw.State == store.SweepRunning; rounds++ {
				if rounds > 20 {
					t.Fatal("the sweep does not finish")
				}
				_, unfinished := active(t, w, sw)
				if unfinished == 0 || unfinished > spec.Parallel {
					t.Fatalf("%d trials queued or running; want 1..%d", unfinished, spec.Parallel)
				}
				// Every dispatched trial is queued on the pipeline queue.
				if n := len(pendingPipelines(t, w.opts.Redis)); n < len(runIDs)+unfinished {
					t.Fatalf("%d pipeline tasks queued, want at least %d", n, len(runIDs)+unfinished)
				}
				for _, tr := range sw.Trials {
					if tr.RunID != "" {
						runIDs[tr.RunID] = true
					}
				}
				finishTrials(t, w, sw.ID, tt.score)
				sw = reload(t, w, sw.ID)
			}
			if sw.State != store.SweepFinished || len(runIDs) != tt.wantRuns || len(sw.Trials) != tt.wantRuns {
				t.Fatalf("state %s, %d distinct runs, %d trials; want finished, %d", sw.State, len(runIDs), len(sw.Trials), tt.wantRuns)
			}
			cs := f.comments[7]
			if len(cs) != 1 || !strings.HasPrefix(cs[0].Body, report.SweepMarker) {
				t.Fatalf("comments %+v, want one sweep comment", cs)
			}
			var rows []string
			for _, line := range strings.Split(cs[0].Body, "\n") {
				if cells := strings.Split(line, " | "); len(cells) > 2 && strings.HasPrefix(cells[1], "`") && !strings.HasPrefix(line, "| # |") {
					rows = append(rows, strings.Trim(cells[1], "`"))
				}
			}
			if !slices.Equal(rows, tt.wantRows) {
				t.Errorf("rows %v, want %v:\n%s", rows, tt.wantRows, cs[0].Body)
			}
			for _, want := range tt.want {
				if !strings.Contains(cs[0].Body, want) {
					t.Errorf("comment lacks %q:\n%s", want, cs[0].Body)
				}
			}
			var last bot.Status
			for _, s := range f.statuses {
				if s.Status.Context == SweepStatusContext {
					last = s.Status
				}
				if s.Status.Context == StatusContext {
					t.Errorf("a trial set %s: %+v", StatusContext, s.Status)
				}
			}
			if last.State != tt.wantStatus {
				t.Errorf("last %s status %+v, want %s", SweepStatusContext, last, tt.wantStatus)
			}
		})
	}
}

// TestSweepCancel: cancelling a sweep stops its queued trials (their
// tasks leave the queue and their runs finish cancelled), starts none of
// the rest, and the comment says cancelled; a push of the same head
// cancels nothing.
func TestSweepCancel(t *testing.T) {
	ctx := context.Background()
	f := &fakeForge{}
	w := newRouteWorker(t, f, nil)
	spec, err := sweep.NewSpec(sweepConfig(t, "  parallel: 2\n"), "lr=0.1,0.2,0.3,0.4")
	if err != nil {
		t.Fatal(err)
	}
	sw := startTestSweep(t, w, spec)
	if err := w.cancelSweep(ctx, sweepRepo, 7, "superseded by 2222222", sw.SHA); err != nil {
		t.Fatal(err)
	}
	if reload(t, w, sw.ID).State != store.SweepRunning {
		t.Fatal("a push of the sweep's own head cancelled it")
	}
	if err := w.cancelSweep(ctx, sweepRepo, 7, "superseded by 2222222", "2222222222222222222222222222222222222222"); err != nil {
		t.Fatal(err)
	}
	sw = reload(t, w, sw.ID)
	if sw.State != store.SweepCancelled {
		t.Fatalf("state %s", sw.State)
	}
	dispatched := 0
	for _, tr := range sw.Trials {
		if tr.RunID == "" {
			continue
		}
		dispatched++
		run, err := w.store.GetRun(ctx, tr.RunID)
		if err != nil {
			t.Fatal(err)
		}
		if run.State != RunFinished || run.Outcome != report.OutcomeCanceled {
			t.Errorf("trial %d: %s %s, want finished cancelled", tr.Index, run.State, run.Outcome)
		}
		if _, err := w.inspector.GetTaskInfo("default", pipelineTaskID(run.ID)); err == nil {
			t.Errorf("trial %d's task is still queued", tr.Index)
		}
	}
	if dispatched != 2 {
		t.Errorf("%d trials dispatched, want 2", dispatched)
	}
	// The cancelled runs' reports advance the sweep: nothing new starts.
	for _, tr := range sw.Trials {
		if tr.RunID != "" {
			if err := w.handleReport(ctx, asynq.NewTask(TypeReport, []byte(`{"run_id":"`+tr.RunID+`"}`))); err != nil {
				t.Fatal(err)
			}
		}
	}
	if d, _ := active(t, w, reload(t, w, sw.ID)); d != 2 {
		t.Errorf("%d trials dispatched after the cancel, want still 2", d)
	}
	body := f.comments[7][0].Body
	if !strings.Contains(body, "cancelled") || !strings.Contains(body, "superseded by 2222222") || strings.Count(body, "🚫 cancelled") != 4 {
		t.Errorf("comment:\n%s", body)
	}
}

// TestTrialRunKeys: trials of one commit with different parameters are
// distinct runs; without parameters the key is the plain run key.
func TestTrialRunKeys(t *testing.T) {
	base := runKey(sweepRepo, KindPullRequest, "abc", 7, "sweep:x:0:0")
	a := paramsKey(base, map[string]string{"lr": "0.1"})
	b := paramsKey(base, map[string]string{"lr": "0.2"})
	c := paramsKey(base, map[string]string{"lr": "0.1", "epochs": "2"})
	if a == b || a == c || b == c || a == base {
		t.Errorf("keys collide: %s %s %s %s", base, a, b, c)
	}
	if paramsKey(base, nil) != base {
		t.Error("a run without parameters changed key")
	}
	if paramsKey(base, map[string]string{"a": "b\x00c"}) == paramsKey(base, map[string]string{"a": "b", "c": ""}) {
		t.Error("a value's bytes shift into a name")
	}
}
