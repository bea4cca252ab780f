package web

import (
	"context"
	"fmt"
	"html"
	"strings"
	"testing"
	"time"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/jobs/store"
)

// examplesOf parses n per-example results whose first wrong answers are
// wrong (accuracy 0), the rest right.
func examplesOf(t *testing.T, n, wrong int) *report.Examples {
	t.Helper()
	var b strings.Builder
	for i := range n {
		acc := 1
		if i < wrong {
			acc = 0
		}
		fmt.Fprintf(&b, "{\"id\": %d, \"accuracy\": %d}\n", i, acc)
	}
	e, err := report.ParseExamples(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestRunPageSignificance shows a run compared on per-example results:
// the page carries the same confidence interval, p-value and method note
// as the comment, computed by the same code.
func TestRunPageSignificance(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	srv := runPageServer(t, s)

	repo := bot.Repo{Forge: "github", FullName: "acme/model", DefaultBranch: "main"}
	drop, level := 0.005, 0.05
	specs := map[string]report.Spec{"accuracy": {Goal: report.GoalMaximize, MaxDrop: &drop, Significance: &level}}
	base := &store.Run{ID: store.NewID(), Kind: store.KindBaseline, Repo: repo, SHA: "b0b0b0", Branch: "main",
		State: store.RunFinished, Outcome: report.OutcomePassed, Metrics: map[string]float64{"accuracy": 0.99},
		Created: time.Now().UTC(), Finished: time.Now().UTC()}
	head := &store.Run{ID: store.NewID(), Kind: store.KindPullRequest, Repo: repo, SHA: "abcabc",
		PR: &bot.PullRequest{Number: 3, HeadSHA: "abcabc"}, BaseRunID: base.ID,
		State: store.RunFinished, Outcome: report.OutcomeGateFailed, Metrics: map[string]float64{"accuracy": 0.94},
		Specs: specs, Order: []string{"accuracy"},
		Significance: report.CompareExamples(examplesOf(t, 400, 4), examplesOf(t, 400, 24), specs),
		Created:      time.Now().UTC(), Finished: time.Now().UTC()}
	for _, r := range []*store.Run{base, head} {
		if err := s.SaveRun(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	want := report.ViewOf(head.Comment(base, ""))
	if len(want.Rows) != 1 || want.Rows[0].CI == "" || want.Rows[0].P == "" || want.Significance == "" {
		t.Fatalf("the view has no significance to show: %+v", want)
	}
	resp, body := getRunPage(t, srv, "/runs/"+head.ID, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET run page = %d: %s", resp.StatusCode, body)
	}
	for _, part := range []string{"95% CI " + want.Rows[0].CI, "p " + want.Rows[0].P, want.Significance} {
		if !strings.Contains(body, html.EscapeString(part)) {
			t.Errorf("the page does not show %q", part)
		}
	}
}
