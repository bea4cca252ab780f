package jobs

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/bot/github"
	"github.com/mlbot/mlbot/jobs/report"
)

// originRepo makes a git repository whose default branch, master, holds
// config as .mlbot.yml, and returns its path: the clone URL of the check
// requests below.
func originRepo(t *testing.T, config string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "origin")
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	run("init", "--quiet", "--initial-branch=master")
	if err := os.WriteFile(filepath.Join(dir, ".mlbot.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	run("add", "-A")
	run("commit", "--quiet", "-m", "config")
	return dir
}

// TestRouteCheck presses mlbot's check buttons through real check_suite
// and check_run payloads: each press is the comment command it stands
// for, permission-checked as that command, answered in the thread, and
// acted on once.
func TestRouteCheck(t *testing.T) {
	const headSHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
	origin := originRepo(t, "version: 1\npipeline:\n  train: sh train.sh\n  metrics: [metrics.json]\n")
	rdb := testRedis(t)
	f := &fakeForge{perms: map[string]bot.Permission{"rita": bot.PermissionRead, "maria": bot.PermissionMaintain}}
	w := newRouteWorkerOn(t, rdb, f, allowFixtureRepos)
	ctx := context.Background()

	suite := func(sender, updated string) []byte {
		return editFixture(t, githubFixture(t, "check_suite.rerequested.octokit.json"), func(m map[string]any) {
			m["repository"].(map[string]any)["clone_url"] = origin
			m["sender"].(map[string]any)["login"] = sender
			m["check_suite"].(map[string]any)["updated_at"] = updated
		})
	}
	ev, err := (&github.Webhook{}).Parse("check_suite", suite("rita", "2019-05-15T15:21:14Z"))
	if err != nil {
		t.Fatal(err)
	}
	repo := ev.Repo
	// mlbot saw the pull request opened by its trusted author.
	if err := w.store.SavePullRequest(ctx, repo, &bot.PullRequest{Number: 2, HeadSHA: headSHA, HeadRef: "changes",
		BaseRef: "master", Author: "Codertocat", AuthorAssociation: "OWNER"}); err != nil {
		t.Fatal(err)
	}
	replies := func() []string {
		var out []string
		for _, c := range f.comments[2] {
			out = append(out, c.Body)
		}
		return out
	}
	press := func(event string, body []byte, id string) {
		t.Helper()
		if err := deliver(t, w, id, event, body); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}

	// A reader's Re-run all is refused as their /retrain would be.
	press("check_suite", suite("rita", "2019-05-15T15:21:14Z"), "d1")
	if r := replies(); len(r) != 1 || !strings.Contains(r[0], "**Re-run all** on the `mlbot/train-eval` check of `ec26c3e`, pressed by @rita, is taken as `/retrain`") ||
		!strings.Contains(r[0], "@rita `/retrain` needs write permission on this repository; you have read. Nothing was done.") {
		t.Fatalf("replies %q", r)
	}
	// The same body again, under a new delivery id, is the same press.
	press("check_suite", suite("rita", "2019-05-15T15:21:14Z"), "d2")
	if n := len(replies()); n != 1 {
		t.Errorf("a replayed press was answered again (%d replies)", n)
	}
	if q := pendingPipelines(t, rdb); len(q) != 0 {
		t.Fatalf("refused presses queued %d pipelines", len(q))
	}

	// A maintainer's press retrains the pull request's head, once.
	press("check_suite", suite("maria", "2019-05-15T15:30:00Z"), "d3")
	q := pendingPipelines(t, rdb)
	if len(q) != 1 || q[0].SHA != headSHA || q[0].PR == nil || q[0].PR.Number != 2 || !q[0].Trusted {
		t.Fatalf("pipelines %+v, want one trusted run of %s for #2", q, headSHA[:7])
	}
	if r := replies(); len(r) != 2 || !strings.Contains(r[1], "Retraining `ec26c3e`") {
		t.Fatalf("replies %q", r)
	}
	if len(f.reactions) != 0 {
		t.Errorf("reactions %v: a press has no comment to react to", f.reactions)
	}
	runID := q[0].RunID

	// A button on mlbot's check of that run: the pull request is found
	// through the run the check names, though GitHub names none (as for a
	// fork's pull request).
	button := func(identifier, sender string) []byte {
		return github.CheckRunPayload(github.CheckRunOptions{Action: "requested_action", Repo: "Codertocat/Hello-World", CloneURL: origin,
			HTMLURL: "https://github.com/Codertocat/Hello-World", DefaultBranch: "master", ID: 77, SuiteID: 118578147, Name: StatusContext,
			HeadSHA: headSHA, ExternalID: runID, Status: "completed", Conclusion: "success", Identifier: identifier, Sender: sender})
	}
	press("check_run", button("deploy-staging", "alice"), "d4")
	if r := replies(); len(r) != 3 || !strings.Contains(r[2], "**Deploy to staging**") || !strings.Contains(r[2], "taken as `/deploy staging`") ||
		!strings.Contains(r[2], "`/deploy` needs maintain permission") {
		t.Fatalf("replies %q", r)
	}
	press("check_run", button("deploy-staging", "maria"), "d5")
	if r := replies(); len(r) != 4 || !strings.Contains(r[3], "Deployments are not configured") {
		t.Fatalf("replies %q", r)
	}

	// Buttons mlbot does not show, and other Apps' checks, are not mlbot's.
	before := len(replies())
	press("check_run", button("frobnicate", "maria"), "d6")
	foreign := editFixture(t, githubFixture(t, "check_run.rerequested.octokit.json"), func(m map[string]any) {
		m["repository"].(map[string]any)["full_name"] = "Codertocat/Hello-World"
		m["repository"].(map[string]any)["html_url"] = "https://github.com/Codertocat/Hello-World"
		m["repository"].(map[string]any)["clone_url"] = origin
	})
	press("check_run", foreign, "d7")
	if n := len(replies()); n != before {
		t.Errorf("%d new replies to presses that are not mlbot's", n-before)
	}
	if q := pendingPipelines(t, rdb); len(q) != 1 {
		t.Errorf("%d pipelines, want still 1", len(q))
	}
}

func TestCheckCommand(t *testing.T) {
	tests := []struct {
		action     bot.Action
		identifier string
		want       string
		ok         bool
	}{
		{bot.ActionRerequested, "", "retrain", true},
		{bot.ActionRequestedAction, "retrain", "retrain", true},
		{bot.ActionRequestedAction, "deploy-staging", "deploy staging", true},
		{bot.ActionRequestedAction, "deploy-", "", false},
		{bot.ActionRequestedAction, "ok-to-test", "", false},
		{bot.ActionRequestedAction, "", "", false},
	}
	for _, tt := range tests {
		cmd, ok := checkCommand(&bot.Event{Action: tt.action, Check: &bot.CheckRequest{Identifier: tt.identifier}})
		got := strings.TrimSpace(cmd.Name + " " + strings.Join(cmd.Args, " "))
		if ok != tt.ok || got != tt.want {
			t.Errorf("%s %q: %q, %v; want %q, %v", tt.action, tt.identifier, got, ok, tt.want, tt.ok)
		}
	}
}

// TestCheckKey tells presses apart by check run, run shown, button and
// presser, and Re-run all by the suite's update time.
func TestCheckKey(t *testing.T) {
	repo := bot.Repo{Forge: "github", FullName: "acme/model"}
	ev := func(run int64, ext, id, sender string) *bot.Event {
		a := bot.ActionRerequested
		if id != "" {
			a = bot.ActionRequestedAction
		}
		return &bot.Event{Repo: repo, Action: a, Sender: sender, Check: &bot.CheckRequest{RunID: run, ExternalID: ext, Identifier: id}}
	}
	base := checkKey(ev(1, "r1", "", "maria"))
	for name, other := range map[string]*bot.Event{
		"another check run":     ev(2, "r1", "", "maria"),
		"a newer run":           ev(1, "r2", "", "maria"),
		"a button":              ev(1, "r1", "retrain", "maria"),
		"someone else":          ev(1, "r1", "", "alice"),
		"the suite":             {Repo: repo, Action: bot.ActionRerequested, Sender: "maria", Check: &bot.CheckRequest{SuiteID: 1}, Delivery: "x"},
		"the same on a new day": {Repo: repo, Action: bot.ActionRerequested, Sender: "maria", Check: &bot.CheckRequest{SuiteID: 1}, Delivery: "y"},
	} {
		if checkKey(other) == base {
			t.Errorf("%s has the same key as the first press", name)
		}
	}
	if checkKey(ev(1, "r1", "", "Maria")) != base {
		t.Error("a login's case made another press")
	}
}

// TestCheckStatuses checks what a check run is told besides the status:
// progress with the run's id, the wait for /ok-to-test, and a finished
// run's output, conclusion and buttons, which only a host with check runs
// gets.
func TestCheckStatuses(t *testing.T) {
	origin := originRepo(t, `version: 1
pipeline:
  train: sh train.sh
  metrics: [metrics.json]
  artifacts: [model.txt]
deploy:
  production:
    command: sh deploy.sh production
    on_merge: true
  staging:
    command: sh deploy.sh staging
    from_pr: true
  a-very-long-environment-name:
    command: sh deploy.sh long
    from_pr: true
`)
	repo := bot.Repo{Forge: "github", FullName: "acme/model", CloneURL: origin, DefaultBranch: "master"}
	ctx := context.Background()
	f := &fakeForge{checks: true}
	w := newRouteWorker(t, f, nil)
	last := func() bot.Status {
		st := f.recordedStatuses()
		return st[len(st)-1].Status
	}
	if err := w.setStatus(ctx, f, repo, "abc", "", bot.StateRunning, "running", "", w.progressCheck("r1", strings.Repeat("a", 40), "running: train and evaluate")); err != nil {
		t.Fatal(err)
	}
	if st := last(); st.ExternalID != "r1" || st.Title != "running: train and evaluate" || !strings.Contains(st.Summary, routePublicURL+"/runs/r1") {
		t.Errorf("progress: %+v", st)
	}
	if err := w.setStatus(ctx, f, repo, "abc", "", bot.StatePending, "waiting", "", awaitingCheck(&bot.PullRequest{Number: 7, HeadSHA: "abc"})); err != nil {
		t.Fatal(err)
	}
	if st := last(); st.Conclusion != bot.ConclusionActionRequired || !strings.Contains(st.Title, "/ok-to-test") || st.ExternalID != "pr:7" {
		t.Errorf("awaiting: %+v", st)
	}

	pr := &bot.PullRequest{Number: 3, HeadSHA: strings.Repeat("b", 40)}
	tests := []struct {
		name       string
		run        Run
		baseSHA    string
		conclusion bot.Conclusion
		buttons    string
	}{
		{"passed, trusted, with a model", Run{Outcome: "passed", PR: pr, Trusted: true, ModelVersion: 4}, "base", "", "retrain,deploy-staging"},
		{"passed with nothing to compare", Run{Outcome: "passed", PR: pr, Trusted: true, ModelVersion: 4}, "", bot.ConclusionNeutral, "retrain,deploy-staging"},
		{"untrusted", Run{Outcome: "passed", PR: pr, ModelVersion: 4}, "base", "", "retrain"},
		{"no model", Run{Outcome: "passed", PR: pr, Trusted: true}, "base", "", "retrain"},
		{"gate failed", Run{Outcome: "gate_failed", PR: pr, Trusted: true, ModelVersion: 4}, "base", "", "retrain"},
		{"timed out", Run{Outcome: "timed_out", PR: pr}, "base", bot.ConclusionTimedOut, "retrain"},
		{"default branch", Run{Outcome: "passed", Branch: "master", Trusted: true, ModelVersion: 4}, "base", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := tt.run
			run.ID, run.Repo, run.SHA = "run-1", repo, pr.HeadSHA
			c := CommentFor(&run, nil, w.runURL(run.ID))
			c.BaseSHA = tt.baseSHA
			opt := w.reportCheck(ctx, f, &run, c)
			var st bot.Status
			opt(&st)
			var ids []string
			for _, a := range st.Actions {
				ids = append(ids, a.Identifier)
			}
			if st.ExternalID != "run-1" || st.Conclusion != tt.conclusion || strings.Join(ids, ",") != tt.buttons || st.Title == "" || st.Summary == "" {
				t.Errorf("status %+v, buttons %v; want conclusion %q, buttons %q", st, ids, tt.conclusion, tt.buttons)
			}
		})
	}
	if opt := w.reportCheck(ctx, &fakeForge{}, &Run{ID: "r", PR: pr, Outcome: "passed"}, report.Comment{}); opt != nil {
		t.Error("a host with commit statuses was given a check run")
	}
}
