package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/mlbot/mlbot/bot"
)

// newServer serves sim on loopback for the test's length.
func newServer(t *testing.T, sim *Simulator) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return srv
}

// TestListOpenPullRequests lists a repository's open pull requests across
// pages, with what admission needs: head, author, association and
// fork-ness; closed ones are left out.
func TestListOpenPullRequests(t *testing.T) {
	c, sim, _ := newTestClient(t)
	ctx := context.Background()
	sim.SetBranch("acme/model", "main", "b000000000000000000000000000000000000000")
	for n := 1; n <= 130; n++ {
		spec := PullRequestSpec{Number: n, HeadRef: "f" + strconv.Itoa(n), HeadSHA: fmt.Sprintf("%040d", n), Author: "alice", AuthorAssociation: "MEMBER"}
		if n == 7 {
			spec.HeadRepo, spec.Author, spec.AuthorAssociation = "mallory/model", "mallory", "NONE"
		}
		sim.OpenPullRequest("acme/model", spec)
	}
	sim.ClosePullRequest("acme/model", 3)
	prs, err := c.ListOpenPullRequests(ctx, testRepo)
	if err != nil {
		t.Fatal(err)
	}
	if len(prs) != 129 {
		t.Fatalf("listed %d pull requests, want 129 (130 opened, one closed)", len(prs))
	}
	if n := len(sim.Rec.Find(http.MethodGet, "/repos/acme/model/pulls")); n != 2 {
		t.Errorf("%d listing calls, want 2 pages of 100", n)
	}
	byNumber := map[int]bot.PullRequest{}
	for _, pr := range prs {
		byNumber[pr.Number] = pr
	}
	if _, ok := byNumber[3]; ok {
		t.Error("the closed pull request was listed")
	}
	own, fork := byNumber[1], byNumber[7]
	if own.HeadSHA != fmt.Sprintf("%040d", 1) || own.HeadRef != "f1" || own.Author != "alice" || own.AuthorAssociation != "MEMBER" ||
		own.Fork || own.BaseRef != "main" || own.BaseSHA != "b000000000000000000000000000000000000000" || own.Updated.IsZero() {
		t.Errorf("own pull request = %+v", own)
	}
	if !fork.Fork || fork.Author != "mallory" || fork.HeadRepo.FullName != "mallory/model" || fork.AuthorAssociation != "NONE" {
		t.Errorf("fork pull request = %+v, want a fork by mallory", fork)
	}
}

// TestConditionalListingIsFree shows that listing again what did not
// change is answered 304 and costs nothing against the rate limit, while
// the caller still gets the listing; a change is read afresh.
func TestConditionalListingIsFree(t *testing.T) {
	c, sim, _ := newTestClient(t)
	ctx := context.Background()
	sim.SetBranch("acme/model", "main", "a000000000000000000000000000000000000000")
	sim.OpenPullRequest("acme/model", PullRequestSpec{Number: 1, HeadRef: "f", HeadSHA: "c100000000000000000000000000000000000000", Author: "alice"})
	if _, err := c.ListOpenPullRequests(ctx, testRepo); err != nil {
		t.Fatal(err)
	}
	if _, err := c.BranchHead(ctx, testRepo, "main"); err != nil {
		t.Fatal(err)
	}
	before := rateRemaining(t, sim)
	for range 3 {
		prs, err := c.ListOpenPullRequests(ctx, testRepo)
		if err != nil || len(prs) != 1 || prs[0].HeadSHA != "c100000000000000000000000000000000000000" {
			t.Fatalf("cached listing = %+v, %v", prs, err)
		}
		head, err := c.BranchHead(ctx, testRepo, "main")
		if err != nil || head != "a000000000000000000000000000000000000000" {
			t.Fatalf("cached branch head = %q, %v", head, err)
		}
	}
	if got := sim.NotModified(); got != 6 {
		t.Errorf("%d answers were 304, want 6", got)
	}
	if after := rateRemaining(t, sim); after != before {
		t.Errorf("rate limit remaining went from %d to %d over 304s; they must not count", before, after)
	}
	// A push to the pull request changes the listing: read in full.
	sim.OpenPullRequest("acme/model", PullRequestSpec{Number: 1, HeadRef: "f", HeadSHA: "c200000000000000000000000000000000000000", Author: "alice"})
	prs, err := c.ListOpenPullRequests(ctx, testRepo)
	if err != nil || len(prs) != 1 || prs[0].HeadSHA != "c200000000000000000000000000000000000000" {
		t.Fatalf("listing after a push = %+v, %v", prs, err)
	}
	if after := rateRemaining(t, sim); after != before-1 {
		t.Errorf("rate limit remaining %d after a changed listing, want %d", after, before-1)
	}
}

// rateRemaining is the simulator's rate limit left now.
func rateRemaining(t *testing.T, sim *Simulator) int {
	t.Helper()
	sim.mu.Lock()
	defer sim.mu.Unlock()
	return sim.rate.remaining
}

// TestReconcileStopsOnLowRateLimit shows the reconciler's calls stop
// once the host's answers say less than RateReserve of the limit is left,
// even in the middle of a listing, and leave that rest to other calls.
func TestReconcileStopsOnLowRateLimit(t *testing.T) {
	c, sim, _ := newTestClient(t)
	ctx := context.Background()
	for n := 1; n <= 250; n++ {
		sim.OpenPullRequest("acme/model", PullRequestSpec{Number: n, HeadRef: "f", HeadSHA: fmt.Sprintf("%040d", n), Author: "alice"})
	}
	// 501 left of 5000: the first page's call leaves 500, just at the
	// reserve; the second leaves 499, below it, and the third is not made.
	sim.SetRateLimit(501, time.Now().Add(time.Hour))
	_, err := c.ListOpenPullRequests(ctx, testRepo)
	if !errors.Is(err, bot.ErrRateBudgetLow) {
		t.Fatalf("listing with a low rate limit = %v, want ErrRateBudgetLow", err)
	}
	if n := len(sim.Rec.Find(http.MethodGet, "/repos/acme/model/pulls")); n != 2 {
		t.Errorf("%d listing calls, want 2: the third page waits for the reset", n)
	}
	for _, call := range []func() error{
		func() error { _, err := c.BranchHead(ctx, testRepo, "main"); return err },
		func() error {
			_, err := c.CommitStatuses(ctx, testRepo, "c100000000000000000000000000000000000000")
			return err
		},
	} {
		if err := call(); !errors.Is(err, bot.ErrRateBudgetLow) {
			t.Errorf("a reconcile call below the reserve = %v, want ErrRateBudgetLow", err)
		}
	}
	// What webhooks ask still goes through.
	if err := c.CreateStatus(ctx, testRepo, "c100000000000000000000000000000000000000", bot.Status{Context: "mlbot/train-eval", State: bot.StatePending}); err != nil {
		t.Fatalf("a status below the reserve: %v", err)
	}
	// After the reset the reconciler may list again.
	sim.SetRateLimit(5000, time.Now().Add(time.Hour))
	c.cond.mu.Lock()
	for k, r := range c.cond.rates {
		r.Reset.Time = time.Now().Add(-time.Second)
		c.cond.rates[k] = r
	}
	c.cond.mu.Unlock()
	if prs, err := c.ListOpenPullRequests(ctx, testRepo); err != nil || len(prs) != 250 {
		t.Fatalf("listing after the reset = %d, %v", len(prs), err)
	}
}

// TestCommitStatuses reads the contexts set on a commit, with their
// newest state, through the combined status.
func TestCommitStatuses(t *testing.T) {
	c, _, _ := newTestClient(t)
	ctx := context.Background()
	sha := "d000000000000000000000000000000000000000"
	if sts, err := c.CommitStatuses(ctx, testRepo, sha); err != nil || len(sts) != 0 {
		t.Fatalf("statuses of a bare commit = %+v, %v", sts, err)
	}
	for _, st := range []bot.State{bot.StatePending, bot.StateSuccess} {
		if err := c.CreateStatus(ctx, testRepo, sha, bot.Status{Context: "mlbot/train-eval", State: st}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.CreateStatus(ctx, testRepo, sha, bot.Status{Context: "ci/lint", State: bot.StateFailure}); err != nil {
		t.Fatal(err)
	}
	sts, err := c.CommitStatuses(ctx, testRepo, sha)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, st := range sts {
		got[st.Context] = st.State
	}
	if len(got) != 2 || got["mlbot/train-eval"] != "success" || got["ci/lint"] != "failure" {
		t.Errorf("CommitStatuses = %+v", sts)
	}
}

// TestInstallationRepos lists every repository of every installation of
// an App, and the check runs an App shows count as its statuses.
func TestInstallationRepos(t *testing.T) {
	key := testKey(t)
	sim := NewSimulator()
	sim.AddApp(42, &key.PublicKey, 7, "acme/model", "acme/other")
	sim.AddApp(42, &key.PublicKey, 8, "beta/repo")
	sim.AddApp(43, &key.PublicKey, 9, "someone/else")
	srv := newServer(t, sim)
	c := newAppClientOn(t, srv, 42, keyPEM(key))
	ctx := context.Background()
	repos, err := c.InstallationRepos(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range repos {
		names = append(names, r.FullName)
		if r.Forge != "github" || r.DefaultBranch != "main" || r.CloneURL != GitURL(srv.URL, r.FullName) || r.Host != "github.com" {
			t.Errorf("repository %+v", r)
		}
	}
	if fmt.Sprint(names) != "[acme/model acme/other beta/repo]" {
		t.Errorf("InstallationRepos = %v, want the App's two installations' three repositories", names)
	}
	sha := "e000000000000000000000000000000000000000"
	if err := c.CreateStatus(ctx, bot.Repo{Forge: "github", FullName: "beta/repo"}, sha, bot.Status{Context: "mlbot/train-eval", State: bot.StatePending}); err != nil {
		t.Fatal(err)
	}
	sts, err := c.CommitStatuses(ctx, bot.Repo{Forge: "github", FullName: "beta/repo"}, sha)
	if err != nil || len(sts) != 1 || sts[0].Context != "mlbot/train-eval" || sts[0].State != "queued" {
		t.Errorf("CommitStatuses through an App = %+v, %v; want its queued check run", sts, err)
	}
	// A token without an App lists no installations.
	tc, _, _ := newTestClient(t)
	if repos, err := tc.InstallationRepos(ctx); err != nil || repos != nil {
		t.Errorf("InstallationRepos with a token = %v, %v", repos, err)
	}
}
