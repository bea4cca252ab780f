package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/bot/github"
	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/jobs/store"
	"github.com/mlbot/mlbot/runners"
)

// routePublicURL is where the test workers say run pages are served.
const routePublicURL = "https://mlbot.example.com"

// fixtureRepos are the repositories the GitHub fixtures come from, as the
// allowlist spells them.
var fixtureRepos = map[string]bool{
	"github.com/Codertocat/Hello-World":      true,
	"github.com/bradrydzewski/drone-test-go": true,
	"github.com/KaTeX/KaTeX":                 true,
	"github.com/runatlantis/atlantis-tests":  true,
}

func allowFixtureRepos(repo string) bool { return fixtureRepos[repo] }

// newRouteWorker returns a Worker on the jobs test database, emptied, with
// f as its GitHub forge; it is never started, so tasks it queues stay
// pending where the test can inspect them.
func newRouteWorker(t *testing.T, f *fakeForge, allowed func(string) bool) *Worker {
	t.Helper()
	return newRouteWorkerOn(t, testRedis(t), f, allowed)
}

func newRouteWorkerOn(t *testing.T, rdb redis.UniversalClient, f *fakeForge, allowed func(string) bool) *Worker {
	t.Helper()
	dataDir := t.TempDir()
	st, reg := testState(rdb, dataDir)
	w, err := New(Options{
		Redis:       rdb,
		Store:       st,
		Registry:    reg,
		Forges:      []ForgeSet{{Webhook: &github.Webhook{}, Forge: f}},
		Runners:     runners.Set{runners.Local: &fakeRunner{}},
		DataDir:     dataDir,
		PublicURL:   routePublicURL,
		RepoAllowed: allowed,
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	return w
}

// githubFixture reads a real GitHub webhook body from testdata/fixtures.
func githubFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "fixtures", "github", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// editFixture returns body with edit applied to its decoded JSON. It makes
// the payloads GitHub sends but no fixture holds (a draft opened, a new
// head pushed to a pull request).
func editFixture(t *testing.T, body []byte, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// setPR sets field of the payload's pull_request object.
func setPR(field string, v any) func(map[string]any) {
	return func(m map[string]any) { m["pull_request"].(map[string]any)[field] = v }
}

// setHeadSHA sets the payload's pull_request.head.sha.
func setHeadSHA(sha string) func(map[string]any) {
	return func(m map[string]any) {
		m["pull_request"].(map[string]any)["head"].(map[string]any)["sha"] = sha
	}
}

// deliver runs the webhook task of one GitHub delivery through the worker.
func deliver(t *testing.T, w *Worker, id, event string, body []byte) error {
	t.Helper()
	b, err := json.Marshal(bot.Delivery{Forge: "github", ID: id, Type: event, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	return w.handleWebhook(context.Background(), asynq.NewTask(TypeWebhook, b))
}

// pendingPipelines returns the pipeline payloads waiting in queue "default":
// pending in asynq, then waiting in its fair line.
func pendingPipelines(t *testing.T, rdb redis.UniversalClient) []PipelinePayload {
	t.Helper()
	insp := asynq.NewInspectorFromRedisClient(rdb)
	tasks, err := insp.ListPendingTasks("default")
	if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
		t.Fatal(err)
	}
	var out []PipelinePayload
	for _, ti := range tasks {
		if ti.Type != TypePipeline {
			t.Errorf("task %s in queue default has type %q", ti.ID, ti.Type)
			continue
		}
		var p PipelinePayload
		if err := json.Unmarshal(ti.Payload, &p); err != nil {
			t.Fatal(err)
		}
		if ti.ID != "pipeline:"+p.RunID {
			t.Errorf("pipeline task id = %q, want pipeline:%s", ti.ID, p.RunID)
		}
		out = append(out, p)
	}
	// Runs not yet dispatched wait in the fair line (dispatch.go).
	waiting, err := store.New(rdb, store.DefaultPrefix).FairEntries(context.Background(), "default")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range waiting {
		var ft fairTask
		if err := json.Unmarshal(e.Task, &ft); err != nil {
			t.Fatal(err)
		}
		if ft.Type != TypePipeline {
			t.Errorf("run %s in the fair line has type %q", e.RunID, ft.Type)
			continue
		}
		var p PipelinePayload
		if err := json.Unmarshal(ft.Payload, &p); err != nil {
			t.Fatal(err)
		}
		if p.RunID != e.RunID {
			t.Errorf("fair line entry %s holds run %s", e.RunID, p.RunID)
		}
		out = append(out, p)
	}
	return out
}

func TestRouteWebhook(t *testing.T) {
	draftOpened := editFixture(t, githubFixture(t, "pull_request.opened.octokit.json"), setPR("draft", true))

	type want struct {
		kind   RunKind // "" when nothing is queued
		sha    string
		branch string
		pr     int
		// status is the state set on the commit, "" for none.
		status bot.State
		// descContains is part of the status description.
		descContains string
	}
	tests := []struct {
		name    string
		event   string
		body    []byte
		allowed func(string) bool
		want    want
	}{
		{
			name: "push to the default branch", event: "push",
			body: githubFixture(t, "push.branch.go-scm.json"),
			want: want{kind: KindBaseline, sha: "199eddf46df50de8d02e99bf1c5fdb4101338224", branch: "master", status: bot.StatePending, descContains: "queued"},
		},
		{
			name: "default branch created", event: "push",
			body: githubFixture(t, "push.branch-created.octokit.json"),
			want: want{kind: KindBaseline, sha: "6113728f27ae82c7b1a177c8d03f9e96e0adf246", branch: "master", status: bot.StatePending},
		},
		{name: "branch deleted", event: "push", body: githubFixture(t, "push.branch-deleted.go-scm.json")},
		{name: "tag created", event: "push", body: githubFixture(t, "push.tag-created.go-scm.json")},
		{name: "tag deleted", event: "push", body: githubFixture(t, "push.tag-deleted.octokit.json")},
		{name: "push to another branch", event: "push", body: githubFixture(t, "push.branch-created.go-scm.json")},
		{
			name: "pull request opened", event: "pull_request",
			body: githubFixture(t, "pull_request.opened.octokit.json"),
			want: want{kind: KindPullRequest, sha: "ec26c3e57ca3a959ca5aad62de7213c562f8c821", pr: 2, status: bot.StatePending},
		},
		{
			name: "pull request opened with a null body", event: "pull_request",
			body: githubFixture(t, "pull_request.opened.null-body.octokit.json"),
			want: want{kind: KindPullRequest, sha: "ec26c3e57ca3a959ca5aad62de7213c562f8c821", pr: 2, status: bot.StatePending},
		},
		{
			name: "pull request synchronized", event: "pull_request",
			body: githubFixture(t, "pull_request.synchronize.go-scm.json"),
			want: want{kind: KindPullRequest, sha: "8102e371cd01cf668893cb2d04a04d52331b1dc9", pr: 1, status: bot.StatePending},
		},
		{
			name: "pull request reopened", event: "pull_request",
			body: githubFixture(t, "pull_request.reopened.octokit.json"),
			want: want{kind: KindPullRequest, sha: "ec26c3e57ca3a959ca5aad62de7213c562f8c821", pr: 2, status: bot.StatePending},
		},
		{
			name: "pull request ready for review", event: "pull_request",
			body: githubFixture(t, "pull_request.ready_for_review.octokit.json"),
			want: want{kind: KindPullRequest, sha: "ec26c3e57ca3a959ca5aad62de7213c562f8c821", pr: 2, status: bot.StatePending},
		},
		{name: "pull request closed", event: "pull_request", body: githubFixture(t, "pull_request.closed.unmerged.octokit.json")},
		{name: "pull request closed (atlantis)", event: "pull_request", body: githubFixture(t, "pull_request.closed.unmerged.atlantis.json")},
		// No fixture is a draft being opened: this one is the opened fixture
		// with pull_request.draft set, as GitHub sends it for a draft.
		{name: "draft pull request opened", event: "pull_request", body: draftOpened},
		{name: "pull request converted to draft", event: "pull_request", body: githubFixture(t, "pull_request.converted_to_draft.octokit.json")},
		{name: "pull request edited", event: "pull_request", body: githubFixture(t, "pull_request.edited.go-scm.json")},
		{
			name: "fork pull request waits for /ok-to-test", event: "pull_request",
			body: githubFixture(t, "pull_request.opened.fork.katex.json"),
			want: want{sha: "3ae9c36f8a03c1bd7e352bc683f72943dc92422e", status: bot.StatePending, descContains: "/ok-to-test"},
		},
		{
			name: "fork pull request synchronized waits", event: "pull_request",
			body: githubFixture(t, "pull_request.synchronize.fork.katex.json"),
			want: want{sha: "a3404550c2465df195b4c7e2081f74dd5a7aced6", status: bot.StatePending, descContains: "/ok-to-test"},
		},
		{
			name: "repository outside the allowlist", event: "pull_request",
			body:    githubFixture(t, "pull_request.opened.octokit.json"),
			allowed: func(repo string) bool { return repo == "github.com/KaTeX/KaTeX" },
		},
		{
			name: "push outside the allowlist", event: "push",
			body:    githubFixture(t, "push.branch.go-scm.json"),
			allowed: func(repo string) bool { return repo == "github.com/KaTeX/KaTeX" },
		},
		{name: "ping", event: "ping", body: githubFixture(t, "ping.octokit.json")},
		{name: "check run", event: "check_run", body: githubFixture(t, "check_run.completed.octokit.json")},
		{name: "comment on an issue", event: "issue_comment", body: githubFixture(t, "issue_comment.created.on-issue.octokit.json")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rdb := testRedis(t)
			f := &fakeForge{}
			allowed := tc.allowed
			if allowed == nil {
				allowed = allowFixtureRepos
			}
			w := newRouteWorkerOn(t, rdb, f, allowed)
			if err := deliver(t, w, "delivery-1", tc.event, tc.body); err != nil {
				t.Fatalf("handleWebhook: %v", err)
			}

			queued := pendingPipelines(t, rdb)
			if tc.want.kind == "" {
				if len(queued) != 0 {
					t.Fatalf("queued %d pipelines, want none: %+v", len(queued), queued)
				}
			} else {
				if len(queued) != 1 {
					t.Fatalf("queued %d pipelines, want 1", len(queued))
				}
				p := queued[0]
				// The work's dedupe key already names the queued run's id.
				wantID, err := w.runID(context.Background(), p.Repo, tc.want.kind, tc.want.sha, tc.want.pr, tc.want.branch)
				if err != nil {
					t.Fatal(err)
				}
				if !runIDPattern.MatchString(p.RunID) {
					t.Errorf("run id %q is not 32 random hex digits", p.RunID)
				}
				if p.Kind != tc.want.kind || p.SHA != tc.want.sha || p.Branch != tc.want.branch || p.RunID != wantID {
					t.Errorf("queued %s %s branch %q run %s, want %s %s branch %q run %s",
						p.Kind, p.SHA, p.Branch, p.RunID, tc.want.kind, tc.want.sha, tc.want.branch, wantID)
				}
				if tc.want.pr != 0 && (p.PR == nil || p.PR.Number != tc.want.pr) {
					t.Errorf("queued pipeline's PR = %+v, want number %d", p.PR, tc.want.pr)
				}
				if p.Delivery != "delivery-1" {
					t.Errorf("queued pipeline's delivery = %q, want delivery-1", p.Delivery)
				}
				run, err := w.store.GetRun(context.Background(), p.RunID)
				if err != nil {
					t.Fatalf("run of the queued pipeline: %v", err)
				}
				if run.State != RunQueued {
					t.Errorf("run state = %s, want queued", run.State)
				}
			}

			sts := f.recordedStatuses()
			if tc.want.status == "" {
				if len(sts) != 0 {
					t.Fatalf("set %d statuses, want none: %+v", len(sts), sts)
				}
				return
			}
			if len(sts) != 1 {
				t.Fatalf("set %d statuses, want 1: %+v", len(sts), sts)
			}
			st := sts[0]
			if st.SHA != tc.want.sha || st.Status.State != tc.want.status || st.Status.Context != StatusContext {
				t.Errorf("status = %s %s on %s, want %s %s on %s", st.Status.Context, st.Status.State, st.SHA, StatusContext, tc.want.status, tc.want.sha)
			}
			if !strings.Contains(st.Status.Description, tc.want.descContains) {
				t.Errorf("status description %q does not mention %q", st.Status.Description, tc.want.descContains)
			}
			if len(st.Status.Description) > 140 {
				t.Errorf("status description is %d characters, GitHub takes 140", len(st.Status.Description))
			}
			if tc.want.kind != "" {
				wantURL := routePublicURL + "/runs/" + queued[0].RunID
				if st.Status.TargetURL != wantURL {
					t.Errorf("status target URL = %q, want %q", st.Status.TargetURL, wantURL)
				}
			}
		})
	}
}

func TestRouteRedelivery(t *testing.T) {
	ctx := context.Background()
	rdb := testRedis(t)
	f := &fakeForge{}
	w := newRouteWorkerOn(t, rdb, f, allowFixtureRepos)
	body := githubFixture(t, "pull_request.opened.octokit.json")

	if err := deliver(t, w, "d-1", "pull_request", body); err != nil {
		t.Fatal(err)
	}
	queued := pendingPipelines(t, rdb)
	if len(queued) != 1 || len(f.recordedStatuses()) != 1 {
		t.Fatalf("first delivery: %d pipelines, %d statuses; want 1 and 1", len(queued), len(f.recordedStatuses()))
	}
	id := queued[0].RunID

	// The same event again (GitHub's redelivery has a new delivery id, and
	// asynq may run a task twice) while the run is queued: still one
	// pipeline; a second pending status is harmless.
	if err := deliver(t, w, "d-2", "pull_request", body); err != nil {
		t.Fatal(err)
	}
	if n := len(pendingPipelines(t, rdb)); n != 1 {
		t.Fatalf("after a redelivery: %d pipelines queued, want 1", n)
	}

	// Once the run finished and was reported, a redelivery must not set
	// pending again, which would hide the result.
	run, err := w.store.GetRun(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	run.State, run.Outcome = RunFinished, report.OutcomePassed
	if err := w.store.SaveRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	before := len(f.recordedStatuses())
	if err := deliver(t, w, "d-3", "pull_request", body); err != nil {
		t.Fatal(err)
	}
	if sts := f.recordedStatuses(); len(sts) != before {
		t.Errorf("a redelivery for a finished run set %+v", sts[before:])
	}
	if n := len(pendingPipelines(t, rdb)); n != 1 {
		t.Errorf("after a redelivery for a finished run: %d pipelines queued, want 1", n)
	}
	if got, _ := w.store.GetRun(ctx, id); got.State != RunFinished || got.Outcome != report.OutcomePassed {
		t.Errorf("a redelivery changed the finished run to %s/%s", got.State, got.Outcome)
	}
}

func TestRouteNewHeadCancelsTheOlderRun(t *testing.T) {
	ctx := context.Background()
	rdb := testRedis(t)
	f := &fakeForge{}
	w := newRouteWorkerOn(t, rdb, f, allowFixtureRepos)
	opened := githubFixture(t, "pull_request.opened.octokit.json")
	const oldSHA, newSHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821", "1111111111111111111111111111111111111111"
	// No fixture pushes a new head to the opened pull request: this is the
	// synchronize fixture with another head commit.
	sync := editFixture(t, githubFixture(t, "pull_request.synchronize.octokit.json"), setHeadSHA(newSHA))

	if err := deliver(t, w, "d-1", "pull_request", opened); err != nil {
		t.Fatal(err)
	}
	if err := deliver(t, w, "d-2", "pull_request", sync); err != nil {
		t.Fatal(err)
	}
	repo := pendingPipelines(t, rdb)[0].Repo
	oldID, err := w.runID(ctx, repo, KindPullRequest, oldSHA, 2, "")
	if err != nil {
		t.Fatal(err)
	}
	newID, err := w.runID(ctx, repo, KindPullRequest, newSHA, 2, "")
	if err != nil {
		t.Fatal(err)
	}
	if reason, err := w.store.CancelReason(ctx, oldID); err != nil || !strings.Contains(reason, "superseded") {
		t.Errorf("cancel reason of the older run = %q, %v; want it superseded", reason, err)
	}
	if reason, _ := w.store.CancelReason(ctx, newID); reason != "" {
		t.Errorf("the newer run is cancelled: %q", reason)
	}
	if head, _ := w.store.Head(ctx, repo, 2); head != newSHA {
		t.Errorf("head = %q, want %q", head, newSHA)
	}
	if n := len(pendingPipelines(t, rdb)); n != 1 {
		t.Errorf("%d pipelines queued, want 1 (the older one, still queued, is removed)", n)
	}
	if old, err := w.store.GetRun(ctx, oldID); err != nil || old.State != RunFinished || old.Outcome != report.OutcomeCanceled {
		t.Errorf("older run = %+v, %v; want it finished as cancelled", old, err)
	}

	// Closing the pull request stops the newer run too.
	closed := githubFixture(t, "pull_request.closed.unmerged.octokit.json")
	if err := deliver(t, w, "d-3", "pull_request", closed); err != nil {
		t.Fatal(err)
	}
	if reason, _ := w.store.CancelReason(ctx, newID); !strings.Contains(reason, "closed") {
		t.Errorf("cancel reason after closing = %q, want it to say closed", reason)
	}
}

// TestRouteReopenRunsAgain documents a bug: closing a pull request leaves a
// cancel request on its head's run (for 24 hours), and reopening it with the
// same head reuses that run id, so the run queued again is cancelled as soon
// as it starts (or, when it already finished as cancelled, is never run).
func TestRouteReopenRunsAgain(t *testing.T) {
	ctx := context.Background()
	rdb := testRedis(t)
	f := &fakeForge{}
	w := newRouteWorkerOn(t, rdb, f, allowFixtureRepos)
	for i, name := range []string{"pull_request.opened.octokit.json", "pull_request.closed.unmerged.octokit.json", "pull_request.reopened.octokit.json"} {
		if err := deliver(t, w, "d-"+name, "pull_request", githubFixture(t, name)); err != nil {
			t.Fatalf("delivery %d (%s): %v", i, name, err)
		}
	}
	p := pendingPipelines(t, rdb)
	if len(p) != 1 {
		t.Fatalf("%d pipelines queued, want 1", len(p))
	}
	if reason, _ := w.store.CancelReason(ctx, p[0].RunID); reason != "" {
		t.Errorf("the reopened pull request's run is still cancelled: %q", reason)
	}
}
