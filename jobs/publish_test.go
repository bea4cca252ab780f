package jobs

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/jobs/report"
)

// TestReportRetrySetsStatusOnce is the chaos soak's finding: a report
// whose comment failed (the host answered 502) is retried by asynq, and
// the retry set the final status a second time, so the commit listed its
// result twice. The retry must post the comment and leave the status be.
func TestReportRetrySetsStatusOnce(t *testing.T) {
	ctx := context.Background()
	f := &fakeForge{listErrs: 1}
	w := newRouteWorker(t, f, nil)
	repo := bot.Repo{Forge: "github", FullName: "acme/model", CloneURL: "https://github.com/acme/model.git", DefaultBranch: "main"}
	const sha = "5b21ddb37c81af30a3af7f1426a6f99eace9d5fd"
	run := &Run{ID: "7f5e75153e3b35d7fce0f65af41ce01d", Kind: KindPullRequest, Repo: repo, SHA: sha,
		PR: &bot.PullRequest{Number: 2, HeadSHA: sha, HeadRef: "feature-2"}, State: RunFinished, Outcome: report.OutcomePassed,
		Metrics: map[string]float64{"accuracy": 0.9}, Created: time.Now().Add(-time.Minute), Finished: time.Now()}
	if err := w.store.SaveRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	task := func() *asynq.Task {
		b, _ := json.Marshal(ReportPayload{RunID: run.ID})
		return asynq.NewTask(TypeReport, b)
	}
	if err := w.handleReport(ctx, task()); err == nil {
		t.Fatal("the report succeeded though the host failed to list the comments")
	}
	if err := w.handleReport(ctx, task()); err != nil {
		t.Fatalf("retried report: %v", err)
	}
	finals := 0
	for _, st := range f.recordedStatuses() {
		if st.SHA == sha && st.Status.Context == StatusContext && st.Status.State != bot.StatePending {
			finals++
		}
	}
	if finals != 1 {
		t.Errorf("%d final statuses after a retried report, want 1: %+v", finals, f.recordedStatuses())
	}
	comments, _ := f.ListComments(ctx, repo, 2)
	if len(comments) != 1 || !strings.HasPrefix(comments[0].Body, report.Marker) {
		t.Errorf("comments after the retried report: %+v", comments)
	}

	// A run finished again (the same id, a later finish) is reported again.
	run.Finished = run.Finished.Add(time.Second)
	if err := w.store.SaveRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	if err := w.handleReport(ctx, task()); err != nil {
		t.Fatal(err)
	}
	if n := len(f.recordedStatuses()); n != 2 {
		t.Errorf("%d statuses after the run finished again, want 2", n)
	}
}

// TestRetriedRouteLeavesRunningStatus is the chaos soak's other finding:
// a route task retried after a fault (its "queued" status was set, a
// later call failed) set "queued" again over the run a worker had
// already started, so reviewers saw a running run go back to the queue.
func TestRetriedRouteLeavesRunningStatus(t *testing.T) {
	ctx := context.Background()
	f := &fakeForge{}
	w := newRouteWorker(t, f, nil)
	repo := bot.Repo{Forge: "github", FullName: "acme/model", CloneURL: "https://github.com/acme/model.git", DefaultBranch: "main"}
	const sha = "ec836d10d334c58a5d620cf46231a9439f48f845"
	pr := &bot.PullRequest{Number: 7, HeadSHA: sha, HeadRef: "feature-7"}
	p := PipelinePayload{Kind: KindPullRequest, Repo: repo, SHA: sha, PR: pr, Trusted: true}
	var err error
	if p.RunID, err = w.runID(ctx, repo, KindPullRequest, sha, pr.Number, ""); err != nil {
		t.Fatal(err)
	}
	if err := w.startPipeline(ctx, f, p); err != nil {
		t.Fatal(err)
	}
	if n := len(f.recordedStatuses()); n != 1 {
		t.Fatalf("%d statuses after the first route, want the queued one", n)
	}
	// A worker takes the run up; the route task is retried.
	run, err := w.store.GetRun(ctx, p.RunID)
	if err != nil {
		t.Fatal(err)
	}
	for _, state := range []RunState{RunRunning, RunFinished} {
		run.State = state
		if err := w.store.SaveRun(ctx, run); err != nil {
			t.Fatal(err)
		}
		if err := w.startPipeline(ctx, f, p); err != nil {
			t.Fatal(err)
		}
		if st := f.recordedStatuses(); len(st) != 1 {
			t.Errorf("a retried route over a %s run set %d more statuses: %+v", state, len(st)-1, st[1:])
		}
	}
}
