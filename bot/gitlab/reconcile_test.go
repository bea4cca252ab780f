package gitlab

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/mlbot/mlbot/bot"
)

// TestListOpenPullRequests lists a project's opened merge requests across
// pages, with what admission needs: head, author (by id) and whether the
// source project is a fork; closed ones are left out.
func TestListOpenPullRequests(t *testing.T) {
	c, sim := newTestClient(t, testToken)
	ctx := context.Background()
	for iid := 1; iid <= 130; iid++ {
		mr := MergeRequestSpec{IID: iid, SourceBranch: fmt.Sprintf("f%d", iid), SHA: fmt.Sprintf("%040d", iid), Author: "alice"}
		if iid == 7 {
			mr.SourceProjectID, mr.Author = 999, "mallory"
		}
		sim.OpenMergeRequest(testProject, mr)
	}
	sim.CloseMergeRequest(testProject, 3)
	for _, repo := range []bot.Repo{{Forge: "gitlab", ID: testID, FullName: testProject}, {Forge: "gitlab", FullName: testProject}} {
		sim.Rec.Reset()
		prs, err := c.ListOpenPullRequests(ctx, repo)
		if err != nil {
			t.Fatal(err)
		}
		if len(prs) != 129 {
			t.Fatalf("listed %d merge requests, want 129 (130 opened, one closed)", len(prs))
		}
		if n := len(sim.Rec.Find(http.MethodGet, "/merge_requests")); n != 2 {
			t.Errorf("%d listing calls, want 2 pages of 100", n)
		}
		for _, c := range sim.Rec.Find(http.MethodGet, "/merge_requests") {
			if q, _ := url.ParseQuery(c.Query); q.Get("state") != "opened" {
				t.Errorf("listing without state=opened: %q", c.Query)
			}
		}
		byIID := map[int]bot.PullRequest{}
		for _, pr := range prs {
			byIID[pr.Number] = pr
		}
		own, fork := byIID[1], byIID[7]
		if own.HeadSHA != fmt.Sprintf("%040d", 1) || own.HeadRef != "f1" || own.Author != "alice" || own.AuthorID != sim.UserID("alice") ||
			own.Fork || own.BaseRef != "main" || own.Updated.IsZero() {
			t.Errorf("own merge request = %+v", own)
		}
		if !fork.Fork || fork.AuthorID != sim.UserID("mallory") || fork.HeadRepo.ID != 999 {
			t.Errorf("fork merge request = %+v, want a fork by mallory", fork)
		}
		if _, ok := byIID[3]; ok {
			t.Error("the closed merge request was listed")
		}
	}
}

// TestBranchHeadAndStatuses reads the default branch's head and the
// statuses set on a commit.
func TestBranchHeadAndStatuses(t *testing.T) {
	c, sim := newTestClient(t, testToken)
	ctx := context.Background()
	repo := bot.Repo{Forge: "gitlab", ID: testID, FullName: testProject}
	if _, err := c.BranchHead(ctx, repo, "main"); !errors.Is(err, bot.ErrNotFound) {
		t.Fatalf("head of a missing branch = %v, want ErrNotFound", err)
	}
	sim.SetBranch(testProject, "main", testSHA)
	if head, err := c.BranchHead(ctx, repo, "main"); err != nil || head != testSHA {
		t.Fatalf("BranchHead = %q, %v", head, err)
	}
	if sts, err := c.CommitStatuses(ctx, repo, testSHA); err != nil || len(sts) != 0 {
		t.Fatalf("statuses of a bare commit = %+v, %v", sts, err)
	}
	for _, st := range []bot.State{bot.StatePending, bot.StateRunning, bot.StateSuccess} {
		if err := c.CreateStatus(ctx, repo, testSHA, bot.Status{Context: "mlbot/train-eval", State: st}); err != nil {
			t.Fatal(err)
		}
	}
	sts, err := c.CommitStatuses(ctx, repo, testSHA)
	if err != nil || len(sts) != 1 || sts[0].Context != "mlbot/train-eval" || sts[0].State != "success" {
		t.Errorf("CommitStatuses = %+v, %v", sts, err)
	}
}

// TestReconcileStopsOnLowRateLimit shows the reconciler's calls stop
// once GitLab's answers say less than RateReserve of the limit is left,
// even in the middle of a listing, while other calls go on.
func TestReconcileStopsOnLowRateLimit(t *testing.T) {
	c, sim := newTestClient(t, testToken)
	ctx := context.Background()
	repo := bot.Repo{Forge: "gitlab", ID: testID, FullName: testProject}
	for iid := 1; iid <= 250; iid++ {
		sim.OpenMergeRequest(testProject, MergeRequestSpec{IID: iid, SourceBranch: "f", SHA: fmt.Sprintf("%040d", iid), Author: "alice"})
	}
	// 201 left of 2000: the first page leaves 200, just at the reserve;
	// the second 199, below it, and the third is not asked for.
	sim.SetRateLimit(201, time.Now().Add(time.Minute))
	if _, err := c.ListOpenPullRequests(ctx, repo); !errors.Is(err, bot.ErrRateBudgetLow) {
		t.Fatalf("listing with a low rate limit = %v, want ErrRateBudgetLow", err)
	}
	if n := len(sim.Rec.Find(http.MethodGet, "/merge_requests")); n != 2 {
		t.Errorf("%d listing calls, want 2", n)
	}
	if _, err := c.BranchHead(ctx, repo, "main"); !errors.Is(err, bot.ErrRateBudgetLow) {
		t.Errorf("BranchHead below the reserve = %v, want ErrRateBudgetLow", err)
	}
	if err := c.CreateStatus(ctx, repo, testSHA, bot.Status{Context: "mlbot/train-eval", State: bot.StatePending}); err != nil {
		t.Fatalf("a status below the reserve: %v", err)
	}
}
