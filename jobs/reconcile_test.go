package jobs

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/bot/github"
	"github.com/mlbot/mlbot/runners"
)

// reconcileRepoOn is a repository that delivered a webhook, as the store
// remembers it.
func reconcileRepoOn(srv *httptest.Server, fullName string) bot.Repo {
	return bot.Repo{Forge: "github", FullName: fullName, CloneURL: github.GitURL(srv.URL, fullName), DefaultBranch: "main",
		WebURL: "https://github.com/" + fullName, Host: "github.com"}
}

// newReconcileWorker returns a Worker, never started, on rdb with a real
// GitHub client of the simulator at srv as its forge, serving
// github.com/acme/* only.
func newReconcileWorker(t *testing.T, rdb redis.UniversalClient, srv *httptest.Server) *Worker {
	t.Helper()
	gh, err := github.New(github.Options{BaseURL: srv.URL, Token: "ghp_reconcile"})
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	st, reg := testState(rdb, dataDir)
	w, err := New(Options{
		Redis: rdb, Store: st, Registry: reg,
		Forges:            []ForgeSet{{Webhook: &github.Webhook{}, Forge: gh}},
		Runners:           runners.Set{runners.Local: &fakeRunner{}},
		DataDir:           dataDir,
		RepoAllowed:       func(r string) bool { return strings.HasPrefix(r, "github.com/acme/") },
		ReconcileInterval: time.Hour,
		Logger:            slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	return w
}

// reconciledTasks lists the catch-ups waiting in the events queue.
func reconciledTasks(t *testing.T, rdb redis.UniversalClient) []*asynq.TaskInfo {
	t.Helper()
	in := asynq.NewInspectorFromRedisClient(rdb)
	tasks, err := in.ListPendingTasks(QueueEvents)
	if err != nil && !strings.Contains(err.Error(), "not found") {
		t.Fatal(err)
	}
	var out []*asynq.TaskInfo
	for _, ti := range tasks {
		if ti.Type == TypeReconciled {
			out = append(out, ti)
		}
	}
	return out
}

// TestReconcileOneProcessAtATime runs two workers' passes at once against
// one Redis: one of them lists the host and queues each unknown head
// once; neither lists again within the interval; a repository outside the
// allowlist is never listed, though it delivered a webhook once.
func TestReconcileOneProcessAtATime(t *testing.T) {
	ctx := context.Background()
	rdb := testRedis(t)
	sim := github.NewSimulator()
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	w1, w2 := newReconcileWorker(t, rdb, srv), newReconcileWorker(t, rdb, srv)
	for _, name := range []string{"acme/model", "evil/model"} {
		if err := w1.store.RememberRepo(ctx, reconcileRepoOn(srv, name), time.Now()); err != nil {
			t.Fatal(err)
		}
		sim.SetBranch(name, "main", strings.Repeat("a", 40))
		sim.OpenPullRequest(name, github.PullRequestSpec{Number: 1, HeadRef: "f", HeadSHA: strings.Repeat("b", 40), Author: "alice", AuthorAssociation: "MEMBER"})
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, w := range []*Worker{w1, w2, w1, w2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			w.reconciler.pass(ctx)
		}()
	}
	close(start)
	wg.Wait()
	if n := len(sim.Rec.Find(http.MethodGet, "/repos/acme/model/pulls")); n != 1 {
		t.Errorf("acme/model listed %d times by four passes at once, want 1", n)
	}
	if n := len(sim.Rec.Find(http.MethodGet, "/repos/evil/")); n != 0 {
		t.Errorf("a repository outside the allowlist was asked %d times", n)
	}
	tasks := reconciledTasks(t, rdb)
	if len(tasks) != 2 {
		t.Fatalf("%d catch-ups queued, want 2 (the pull request's head, the default branch's head)", len(tasks))
	}
	// A pass that gets past the lease (as one on another interval would)
	// finds the same heads queued already: nothing is queued twice.
	if res := w2.reconcile(ctx); res.caughtUp != 0 || res.heads != 2 {
		t.Errorf("a second pass = %+v, want 2 heads seen and none caught up again", res)
	}
	if n := len(reconciledTasks(t, rdb)); n != 2 {
		t.Errorf("%d catch-ups queued after a second pass, want 2", n)
	}
}

// TestReconcileSkipsKnownHeads leaves alone a head mlbot has a run of
// (without asking the host about it) and a head showing mlbot's status,
// and catches up only the head that has neither; drafts wait for their
// ready event as with webhooks.
func TestReconcileSkipsKnownHeads(t *testing.T) {
	ctx := context.Background()
	rdb := testRedis(t)
	sim := github.NewSimulator()
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	w := newReconcileWorker(t, rdb, srv)
	repo := reconcileRepoOn(srv, "acme/model")
	if err := w.store.RememberRepo(ctx, repo, time.Now()); err != nil {
		t.Fatal(err)
	}
	withRun, withStatus, unknown, draft := strings.Repeat("1", 40), strings.Repeat("2", 40), strings.Repeat("3", 40), strings.Repeat("4", 40)
	for n, sha := range map[int]string{1: withRun, 2: withStatus, 3: unknown, 4: draft} {
		sim.OpenPullRequest("acme/model", github.PullRequestSpec{Number: n, HeadRef: "f", HeadSHA: sha, Author: "alice", Draft: sha == draft})
	}
	if _, err := w.runID(ctx, repo, KindPullRequest, withRun, 1, ""); err != nil {
		t.Fatal(err)
	}
	gh := w.forges["github"].Forge
	if err := gh.CreateStatus(ctx, repo, withStatus, bot.Status{Context: StatusContext, State: bot.StateSuccess}); err != nil {
		t.Fatal(err)
	}
	// Another tool's status does not make a head known to mlbot.
	if err := gh.CreateStatus(ctx, repo, unknown, bot.Status{Context: "ci/lint", State: bot.StateSuccess}); err != nil {
		t.Fatal(err)
	}
	res := w.reconcile(ctx)
	if res.caughtUp != 1 || res.errors != 0 {
		t.Fatalf("pass = %+v, want one head caught up", res)
	}
	if n := len(sim.Rec.Find(http.MethodGet, "/commits/"+withRun)); n != 0 {
		t.Errorf("the host was asked %d times about a head with a run", n)
	}
	tasks := reconciledTasks(t, rdb)
	if len(tasks) != 1 || !strings.Contains(string(tasks[0].Payload), unknown) {
		t.Fatalf("catch-ups = %d, want one, of %s", len(tasks), unknown[:7])
	}
}
