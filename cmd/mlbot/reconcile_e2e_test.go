package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mlbot/mlbot/bot/github"
	"github.com/mlbot/mlbot/bot/gitlab"
	"github.com/mlbot/mlbot/configs"
)

// reconcileInterval is the reconciler's interval in these tests: short,
// so a pass follows soon after a head appears on the host.
const reconcileInterval = 200 * time.Millisecond

// newReconcileE2E is an end-to-end fixture whose reconciler runs every
// reconcileInterval.
func newReconcileE2E(t *testing.T, forge string) *e2e {
	return newE2E(t, forge, func(cfg *configs.Server) { cfg.ReconcileInterval = reconcileInterval })
}

// setBranch moves branch on the host's API, as the git push before it
// moved it in the repository.
func (e *e2e) setBranch(branch, sha string) {
	switch h := e.sb.host.(type) {
	case *githubHost:
		h.sim.SetBranch(e.sb.repo, branch, sha)
	case *gitlabHost:
		h.sim.SetBranch(e.sb.repo, branch, sha)
	}
}

// openSilently opens pull request number for head on branch on the host
// and delivers no webhook: as if the delivery was lost. A fork's pull
// request comes from a copy of the repository owned by its author.
func (e *e2e) openSilently(number int, branch, head, author string, fork bool) {
	switch h := e.sb.host.(type) {
	case *githubHost:
		spec := github.PullRequestSpec{Number: number, HeadRef: branch, HeadSHA: head, Author: author, AuthorAssociation: "MEMBER"}
		if fork {
			spec.HeadRepo, spec.AuthorAssociation = author+"/model", "NONE"
		}
		h.sim.OpenPullRequest(e.sb.repo, spec)
	case *gitlabHost:
		spec := gitlab.MergeRequestSpec{IID: number, SourceBranch: branch, SHA: head, Author: author}
		if fork {
			spec.SourceProjectID = fakeProjectID + 1000
		}
		h.sim.OpenMergeRequest(e.sb.repo, spec)
	}
}

// postedStates are the states of the statuses mlbot set on sha, in the
// order the host accepted them (GitLab keeps only a status's current
// state, so its history is read from the calls).
func (e *e2e) postedStates(sha string) []string {
	var out []string
	for _, c := range e.sb.host.recorder().Find(http.MethodPost, "/statuses/"+sha) {
		var body struct {
			State string `json:"state"`
		}
		if c.Status/100 == 2 && json.Unmarshal(c.Body, &body) == nil {
			out = append(out, body.State)
		}
	}
	return out
}

// passes counts the reconciler's listings of the repository's open pull
// requests so far: one per pass.
func (e *e2e) passes() int {
	path := "/repos/" + e.sb.repo + "/pulls"
	if e.forge == "gitlab" {
		path = "/merge_requests"
	}
	return len(e.sb.host.recorder().Find(http.MethodGet, path))
}

// waitPasses waits until n more passes have started than had at the call,
// so that the pass under way at the call, if any, has finished.
func (e *e2e) waitPasses(n int) {
	e.t.Helper()
	want := e.passes() + n
	deadline := time.Now().Add(30 * time.Second)
	for e.passes() < want {
		if time.Now().After(deadline) {
			e.t.Fatalf("the reconciler made %d listings, want %d", e.passes(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReconcileCatchesUpLostWebhooks opens a pull request on the host and
// pushes to the default branch without delivering either webhook: the
// reconciler finds both heads without a status or run and routes them as
// their webhooks would have been (pending status, trust check, pipeline),
// so each gets its pending and final status and the pull request one
// comment. Later passes find the runs and start nothing again.
func TestReconcileCatchesUpLostWebhooks(t *testing.T) {
	for _, forge := range forges {
		t.Run(forge, func(t *testing.T) {
			e := newReconcileE2E(t, forge)
			// The baseline's push webhook is delivered: the repository is
			// one mlbot serves from then on.
			e.baseline("0.9")
			e.setBranch("main", e.mainSHA)
			e.settle()
			base := e.trainings()

			head := e.commit("feature", map[string]string{"params": "0.92\n"}, "better model")
			e.openSilently(1, "feature", head, "alice", false)
			if st := e.final(head); st.State != "success" {
				t.Fatalf("caught-up pull request's status = %+v, want success", st)
			}
			e.settle()
			if states := e.postedStates(head); len(states) < 2 || states[0] != "pending" {
				t.Errorf("statuses set on the caught-up head = %v, want pending first", states)
			}
			if cs := e.mlbotComments(1); len(cs) != 1 || !strings.Contains(cs[0].Body, "0.92") {
				t.Errorf("mlbot comments on the caught-up pull request = %+v, want one with its accuracy", cs)
			}
			if got := e.trainings(); got != base+1 {
				t.Errorf("trainings = %d, want %d: the pull request's head once (the base ran before)", got, base+1)
			}

			// A push to main whose webhook was lost runs as a baseline.
			main2 := e.commit("main", map[string]string{"params": "0.91\n"}, "retrain main")
			e.setBranch("main", main2)
			if st := e.final(main2); st.State != "success" {
				t.Fatalf("caught-up default branch head's status = %+v, want success", st)
			}
			e.settle()
			trained := e.trainings()
			if trained != base+2 {
				t.Errorf("trainings = %d, want %d after the default branch's head", trained, base+2)
			}

			// Two more passes find every head known: nothing runs again.
			nPR, nMain := len(e.postedStates(head)), len(e.postedStates(main2))
			e.waitPasses(2)
			e.settle()
			if got := e.trainings(); got != trained {
				t.Errorf("trainings = %d after more passes, want %d: a run was repeated", got, trained)
			}
			if got := len(e.postedStates(head)); got != nPR {
				t.Errorf("the pull request's head has %d statuses after more passes, want %d", got, nPR)
			}
			if got := len(e.postedStates(main2)); got != nMain {
				t.Errorf("the default branch's head has %d statuses after more passes, want %d", got, nMain)
			}
			if cs := e.mlbotComments(1); len(cs) != 1 {
				t.Errorf("%d mlbot comments after more passes, want 1", len(cs))
			}
			if a := e.archived(); len(a) > 0 {
				t.Errorf("tasks failed for good: %v", a)
			}
		})
	}
}

// TestReconcileKeepsTrustCheck opens a fork's pull request by an author
// without write access, with no webhook: caught up by the reconciler, it
// waits for /ok-to-test like one whose webhook arrived, and nothing of it
// is trained, however many passes see it.
func TestReconcileKeepsTrustCheck(t *testing.T) {
	for _, forge := range forges {
		t.Run(forge, func(t *testing.T) {
			e := newReconcileE2E(t, forge)
			e.baseline("0.9")
			e.setBranch("main", e.mainSHA)
			e.settle()
			base := e.trainings()

			head := e.commit("evil", map[string]string{"train.sh": "echo pwned > /tmp/pwned\n"}, "innocent change")
			e.openSilently(2, "evil", head, "mallory", true)
			deadline := time.Now().Add(30 * time.Second)
			for {
				sts := e.sb.statuses(head)
				if len(sts) > 0 && strings.Contains(sts[len(sts)-1].Description, "ok-to-test") {
					if sts[len(sts)-1].State != "pending" {
						t.Fatalf("the fork's head status = %+v, want pending", sts[len(sts)-1])
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no status asking for /ok-to-test on the fork's head: %+v", sts)
				}
				time.Sleep(10 * time.Millisecond)
			}
			e.waitPasses(2)
			e.settle()
			if got := e.trainings(); got != base {
				t.Errorf("trainings = %d, want %d: an untrusted fork's head ran", got, base)
			}
			if cs := e.mlbotComments(2); len(cs) != 1 || !strings.Contains(cs[0].Body, "ok-to-test") {
				t.Errorf("mlbot comments on the fork's pull request = %+v, want one asking for /ok-to-test", cs)
			}
			if states := e.postedStates(head); len(states) != 1 || states[0] != "pending" {
				t.Errorf("statuses set on the fork's head = %v, want one pending: later passes must leave it waiting", states)
			}
		})
	}
}

// TestReconcileGitHubApp runs mlbot as a GitHub App on a repository that
// never delivered a webhook: the reconciler finds it through the App's
// installation, catches up its default branch's head and its open pull
// request (check runs, one comment, two trainings), and leaves alone a
// repository of the same installation that the allowlist does not admit.
func TestReconcileGitHubApp(t *testing.T) {
	e, sim := newAppE2E(t, func(cfg *configs.Server) { cfg.ReconcileInterval = reconcileInterval })
	// A repository outside the allowlist, installed all the same, with an
	// open pull request of its own.
	const stranger = "evil/model"
	sim.AddApp(e2eAppID, nil, e2eInstallation, stranger)
	sim.SetBranch(stranger, "main", strings.Repeat("e", 40))
	sim.OpenPullRequest(stranger, github.PullRequestSpec{Number: 1, HeadRef: "x", HeadSHA: strings.Repeat("f", 40), Author: "alice", AuthorAssociation: "MEMBER"})

	// No webhook is ever delivered for acme/model.
	e.mainSHA = e.commit("main", e.model("0.9"), "model")
	e.setBranch("main", e.mainSHA)
	head := e.commit("feature", map[string]string{"params": "0.92\n"}, "better model")
	e.openSilently(1, "feature", head, "alice", false)

	if st := e.final(e.mainSHA); st.State == "failure" || st.State == "error" {
		t.Fatalf("caught-up default branch head: %+v", st)
	}
	if st := e.final(head); st.State != "success" {
		t.Fatalf("caught-up pull request's head: %+v", st)
	}
	e.waitPasses(2)
	e.settle()
	if cr := e.checkRun(sim, head, "mlbot/train-eval"); cr.Conclusion != "success" || !strings.Contains(cr.Summary, "| `accuracy` | 0.9 | 0.92 |") {
		t.Errorf("the pull request's check run: %s\n%s", cr.Conclusion, cr.Summary)
	}
	if cs := e.mlbotComments(1); len(cs) != 1 || !strings.Contains(cs[0].Body, "0.92") {
		t.Errorf("mlbot comments on the caught-up pull request = %+v, want one", cs)
	}
	if got := e.trainings(); got != 2 {
		t.Errorf("trainings = %d, want 2: the default branch's head and the pull request's, once each", got)
	}
	for _, sha := range []string{strings.Repeat("e", 40), strings.Repeat("f", 40)} {
		if crs := sim.CheckRuns(stranger, sha); len(crs) != 0 {
			t.Errorf("mlbot touched %s of the repository outside the allowlist: %+v", sha[:7], crs)
		}
		if ss := sim.Statuses(stranger, sha); len(ss) != 0 {
			t.Errorf("mlbot set statuses on %s of the repository outside the allowlist: %+v", sha[:7], ss)
		}
	}
	if a := e.archived(); len(a) > 0 {
		t.Errorf("tasks failed for good: %v", a)
	}
}
