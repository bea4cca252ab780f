package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mlbot/mlbot/bot/github"
	"github.com/mlbot/mlbot/configs"
)

// The GitHub App mlbot is in these tests, and its installation on the
// fake host's repository.
const (
	e2eAppID        = 4711
	e2eInstallation = 99
)

// newAppE2E is newE2E on GitHub with mlbot authenticated as a GitHub App
// installed on the repository, so that it shows check runs.
func newAppE2E(t *testing.T, tweak func(*configs.Server)) (*e2e, *github.Simulator) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "app.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(keyFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	e := newE2E(t, "github", func(c *configs.Server) {
		c.GitHubToken, c.GitHubAppID, c.GitHubAppPrivateKeyFile = "", e2eAppID, keyFile
		if tweak != nil {
			tweak(c)
		}
	})
	h := e.sb.host.(*githubHost)
	h.app = true
	h.sim.AddApp(e2eAppID, &key.PublicKey, e2eInstallation, e.sb.repo)
	return e, h.sim
}

// checkRun returns sha's check run named name, failing unless there is
// exactly one.
func (e *e2e) checkRun(sim *github.Simulator, sha, name string) github.SimCheckRun {
	e.t.Helper()
	var found []github.SimCheckRun
	for _, cr := range sim.CheckRuns(e.sb.repo, sha) {
		if cr.Name == name {
			found = append(found, cr)
		}
	}
	if len(found) != 1 {
		e.t.Fatalf("%d %s check runs on %s, want 1: %+v", len(found), name, sha[:7], found)
	}
	return found[0]
}

// history is a check run's states as "status/conclusion" words.
func history(cr github.SimCheckRun) []string {
	var out []string
	for _, h := range cr.History {
		out = append(out, strings.TrimSuffix(h.Status+"/"+h.Conclusion, "/"))
	}
	return out
}

// featurePR is how GitHub names pull request 1 in a check's payload.
func (e *e2e) featurePR(sha string) github.CheckPullRequest {
	return github.CheckPullRequest{Number: 1, HeadRef: "feature", HeadSHA: sha, BaseRef: "main", BaseSHA: e.mainSHA}
}

// press presses a button of sha's train-eval check run as sender (Re-run
// when identifier is ""), waits until mlbot has handled it, and returns
// the delivery's body. prs are the pull requests GitHub names in it: the
// repository's own, never a fork's.
func (e *e2e) press(sim *github.Simulator, sha, sender, identifier string, prs ...github.CheckPullRequest) []byte {
	e.t.Helper()
	cr := e.checkRun(sim, sha, "mlbot/train-eval")
	o, err := sim.CheckRunPress(e.sb.repo, cr.ID, sender, identifier)
	if err != nil {
		e.t.Fatal(err)
	}
	o.CloneURL, o.PullRequests = e.sb.cloneURL(), prs
	body := github.CheckRunPayload(o)
	e.deliverCheck("check_run", body)
	return body
}

// deliverCheck sends a signed check_run or check_suite delivery under a
// new delivery id and waits until mlbot has handled it.
func (e *e2e) deliverCheck(event string, body []byte) {
	e.t.Helper()
	e.send(github.NewDeliveryRequest(e.hook, event, body, []byte(e.sb.secret)), http.StatusAccepted)
	e.settle()
}

// TestGitHubChecks runs pull requests through mlbot as a GitHub App: one
// check run per commit through its whole life, its Re-run and buttons
// acting as the comment commands they stand for, with the same
// permissions.
func TestGitHubChecks(t *testing.T) {
	t.Run("check run lifecycle", func(t *testing.T) {
		e, sim := newAppE2E(t, nil)
		e.baseline("0.90")
		if cr := e.checkRun(sim, e.mainSHA, "mlbot/train-eval"); cr.Conclusion != "neutral" || !strings.Contains(cr.Title, "nothing to compare with") {
			t.Errorf("the first commit of main: %s %q, want neutral with nothing to compare", cr.Conclusion, cr.Title)
		}
		h := e.commit("feature", map[string]string{"params": "0.92\n"}, "better")
		e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
		e.final(h)
		e.settle()
		cr := e.checkRun(sim, h, "mlbot/train-eval")
		hist := history(cr)
		if len(hist) < 3 || hist[0] != "queued" || !slices.Contains(hist, "in_progress") || hist[len(hist)-1] != "completed/success" ||
			slices.Index(hist, "in_progress") < slices.Index(hist, "queued") {
			t.Errorf("history %v, want queued, in progress, then completed/success", hist)
		}
		runID := path.Base(cr.DetailsURL)
		if cr.ExternalID != runID || cr.DetailsURL != e.url+"/runs/"+runID {
			t.Errorf("external id %q, details URL %q: want the run's id and page", cr.ExternalID, cr.DetailsURL)
		}
		if cr.Title != "accuracy 0.92 (+0.02) · 2 of 2 gates passed" {
			t.Errorf("title %q", cr.Title)
		}
		for _, want := range []string{"| `accuracy` | 0.9 | 0.92 |", "**Verdict: passed**"} {
			if !strings.Contains(cr.Summary, want) {
				t.Errorf("summary lacks %q:\n%s", want, cr.Summary)
			}
		}
		if !strings.Contains(cr.Text, "- `accuracy`: 0.92, base 0.9, change +0.02") {
			t.Errorf("text:\n%s", cr.Text)
		}
		if len(cr.Actions) != 1 || cr.Actions[0].Identifier != "retrain" {
			t.Errorf("buttons %+v, want Retrain alone (no environment takes pull requests)", cr.Actions)
		}
		if ss := sim.Statuses(e.sb.repo, h); len(ss) != 0 {
			t.Errorf("an App set commit statuses: %+v", ss)
		}
		if cs := e.mlbotComments(1); len(cs) != 1 || !strings.Contains(cs[0].Body, "Verdict: passed") {
			t.Errorf("the pull request's comment: %+v", cs)
		}

		// A failing training fails its check, with the log's end.
		files := e.model("0.93")
		files["train.sh"] = "echo 'loading the data'\necho 'out of patience' >&2\nexit 3\n"
		h2 := e.commit("feature", files, "broken")
		e.send(e.prEvent("updated", h2, h), http.StatusAccepted)
		if st := e.final(h2); st.State != "failure" {
			t.Fatalf("broken push: %+v", st)
		}
		e.settle()
		cr = e.checkRun(sim, h2, "mlbot/train-eval")
		if cr.Conclusion != "failure" || !strings.HasPrefix(cr.Title, "Step failed") ||
			!strings.Contains(cr.Text, "### Last lines of the log") || !strings.Contains(cr.Text, "out of patience") {
			t.Errorf("failed check run: %s %q\n%s", cr.Conclusion, cr.Title, cr.Text)
		}
	})

	t.Run("Re-run makes one new training", func(t *testing.T) {
		e, sim := newAppE2E(t, nil)
		e.baseline("0.90")
		h := e.commit("feature", map[string]string{"params": "0.92\n"}, "better")
		e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
		e.final(h)
		e.settle()
		first := e.checkRun(sim, h, "mlbot/train-eval")
		before := e.trainings()

		body := e.press(sim, h, "alice", "", e.featurePR(h))
		if n := e.trainings() - before; n != 1 {
			t.Fatalf("Re-run trained %d times, want 1", n)
		}
		e.lastReply("Retraining `" + h[:7] + "`")
		e.lastReply("**Re-run** on the `mlbot/train-eval` check")
		cr := e.checkRun(sim, h, "mlbot/train-eval")
		hist := history(cr)
		if cr.ID != first.ID || cr.ExternalID == first.ExternalID || hist[len(hist)-1] != "completed/success" ||
			!slices.Contains(hist[len(first.History):], "queued") {
			t.Errorf("after Re-run: check run %d (was %d), run %s (was %s), history %v", cr.ID, first.ID, cr.ExternalID, first.ExternalID, hist)
		}

		// GitHub sending the same press again does nothing more.
		replies := len(e.replies())
		e.deliverCheck("check_run", body)
		if n := e.trainings() - before; n != 1 || len(e.replies()) != replies {
			t.Errorf("a repeated press: %d trainings, %d new replies", n, len(e.replies())-replies)
		}

		// Re-run all by a reader is refused as their /retrain would be.
		o, err := sim.CheckSuiteRerun(e.sb.repo, h, e2eAppID, "rita")
		if err != nil {
			t.Fatal(err)
		}
		o.CloneURL, o.PullRequests = e.sb.cloneURL(), []github.CheckPullRequest{e.featurePR(h)}
		e.deliverCheck("check_suite", github.CheckSuitePayload(o))
		e.lastReply("@rita `/retrain` needs write permission on this repository; you have read.")
		if n := e.trainings() - before; n != 1 {
			t.Errorf("a refused Re-run all trained (%d trainings)", n)
		}
		if a := e.archived(); len(a) > 0 {
			t.Errorf("tasks failed for good: %v", a)
		}
	})

	t.Run("a Deploy button refused for a contributor, accepted for a maintainer", func(t *testing.T) {
		out := deployTarget(t)
		e, sim := newAppE2E(t, withDeployPath(out, nil))
		e.mainSHA = e.commit("main", e.deployModel("0.90", out, ""), "model")
		e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
		waitDeployed(t, out, "production", "0.90")
		h := e.commit("feature", map[string]string{"params": "0.91\n"}, "candidate")
		e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
		e.final(h)
		e.settle()
		cr := e.checkRun(sim, h, "mlbot/train-eval")
		var ids []string
		for _, a := range cr.Actions {
			ids = append(ids, a.Identifier)
		}
		if strings.Join(ids, ",") != "retrain,deploy-staging" {
			t.Fatalf("buttons %v, want Retrain and Deploy to staging", ids)
		}

		e.press(sim, h, "alice", "deploy-staging", e.featurePR(h))
		e.lastReply("@alice `/deploy` needs maintain permission on this repository; you have write. Nothing was done.")
		if _, err := os.Stat(filepath.Join(out, "staging")); err == nil {
			t.Fatal("a contributor's button deployed")
		}
		e.press(sim, h, "maria", "deploy-staging", e.featurePR(h))
		waitDeployed(t, out, "staging", "0.91")
		e.settle()
		if !slices.ContainsFunc(e.replies(), func(r string) bool {
			return strings.Contains(r, "**Deploy to staging**") && strings.Contains(r, "Deploying model v")
		}) {
			t.Errorf("no reply accepting the button: %q", e.replies())
		}
		e.lastReply("to `staging`: succeeded")
		d := e.checkRun(sim, h, "mlbot/deploy/staging")
		if d.Conclusion != "success" || d.ExternalID == "" || !strings.Contains(d.DetailsURL, d.ExternalID) {
			t.Errorf("deploy check run: %s, external id %q, details %q", d.Conclusion, d.ExternalID, d.DetailsURL)
		}
		if p := e.checkRun(sim, e.mainSHA, "mlbot/deploy/production"); p.Conclusion != "success" {
			t.Errorf("production's deploy check run: %s", p.Conclusion)
		}
		if a := e.archived(); len(a) > 0 {
			t.Errorf("tasks failed for good: %v", a)
		}
	})

	t.Run("a fork's head waits with action_required until /ok-to-test", func(t *testing.T) {
		e, sim := newAppE2E(t, nil)
		e.baseline("0.90")
		h := e.commit("feature", map[string]string{"params": "0.91\n"}, "from a fork")
		e.send(e.sb.pr(e.hook, prEvent{Action: "opened", HeadRef: "feature", HeadSHA: h, BaseSHA: e.mainSHA, Fork: true, Author: "mallory", Association: "NONE"}), http.StatusAccepted)
		e.settle()
		cr := e.checkRun(sim, h, "mlbot/train-eval")
		if cr.Conclusion != "action_required" || !strings.Contains(cr.Title, "/ok-to-test") {
			t.Fatalf("waiting check run: %s %q", cr.Conclusion, cr.Title)
		}
		// Its Re-run cannot bypass the approval. GitHub names no pull
		// request in a fork's check events: the check's external id does.
		before := e.trainings()
		e.press(sim, h, "alice", "")
		e.lastReply("waiting for `/ok-to-test`")
		e.say("alice", "/ok-to-test")
		if st := e.final(h); st.State != "success" {
			t.Fatalf("approved head: %+v", st)
		}
		e.settle()
		if n := e.trainings() - before; n != 1 {
			t.Errorf("%d trainings, want 1: the approved one", n)
		}
		hist := history(e.checkRun(sim, h, "mlbot/train-eval"))
		if hist[0] != "completed/action_required" || hist[len(hist)-1] != "completed/success" {
			t.Errorf("history %v", hist)
		}
	})
}

// TestGitHubTokenKeepsStatuses: with a personal access token, which
// cannot create check runs, mlbot sets commit statuses and never calls
// the Checks API.
func TestGitHubTokenKeepsStatuses(t *testing.T) {
	e := newE2E(t, "github", nil)
	sim := e.sb.host.(*githubHost).sim
	e.baseline("0.90")
	h := e.commit("feature", map[string]string{"params": "0.92\n"}, "better")
	e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
	if st := e.final(h); st.State != "success" || st.Context != "mlbot/train-eval" {
		t.Fatalf("status %+v", st)
	}
	e.settle()
	if runs := sim.CheckRuns(e.sb.repo, h); len(runs) != 0 {
		t.Errorf("check runs with a token: %+v", runs)
	}
	if calls := sim.Rec.Find("", "/check-runs"); len(calls) != 0 {
		t.Errorf("%d Checks API calls with a token", len(calls))
	}
	if cs := e.mlbotComments(1); len(cs) != 1 {
		t.Errorf("%d mlbot comments, want 1", len(cs))
	}
}
