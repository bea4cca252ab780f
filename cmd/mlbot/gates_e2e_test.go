package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// contextStatus waits for sha's newest status of context to leave pending
// and returns it.
func (e *e2e) contextStatus(sha, context string) hostStatus {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var last *hostStatus
		for _, s := range e.sb.statuses(sha) {
			if s.Context == context {
				s := s
				last = &s
			}
		}
		if last != nil && last.State != "pending" && last.State != "running" {
			return *last
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.t.Fatalf("no final %s status on %s; statuses %+v", context, sha[:7], e.sb.statuses(sha))
	return hostStatus{}
}

// pushMain commits files on main and delivers the push.
func (e *e2e) pushMain(files map[string]string, msg string) string {
	e.t.Helper()
	sha := e.commit("main", files, msg)
	e.send(e.sb.push(e.hook, e.mainSHA, sha), http.StatusAccepted)
	e.mainSHA = sha
	return sha
}

// mergeOrdered merges branch into main like merge, delivering the push
// and the merged event in the order asked, gap apart.
func (e *e2e) mergeOrdered(branch string, pushFirst bool, gap time.Duration) string {
	e.t.Helper()
	if err := e.sb.checkout("main", false); err != nil {
		e.t.Fatal(err)
	}
	if err := gitCmd(e.sb.work, "-c", "user.name=Maria", "-c", "user.email=maria@example.com", "merge", "--no-ff", "--quiet", "-m", "Merge "+branch, branch); err != nil {
		e.t.Fatal(err)
	}
	sha, err := gitOut(e.sb.work, "rev-parse", "HEAD")
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.sb.pushBranch("main"); err != nil {
		e.t.Fatal(err)
	}
	head, _ := gitOut(e.sb.work, "rev-parse", branch)
	merged := e.sb.pr(e.hook, prEvent{Action: "merged", HeadRef: branch, HeadSHA: head, BaseSHA: e.mainSHA, Author: "alice", Association: "MEMBER", MergeSHA: sha})
	push := e.sb.push(e.hook, e.mainSHA, sha)
	first, second := merged, push
	if pushFirst {
		first, second = push, merged
	}
	e.send(first, http.StatusAccepted)
	time.Sleep(gap)
	e.send(second, http.StatusAccepted)
	e.mainSHA = sha
	return sha
}

// strictModel is deployModel with max_drop 0.02 on accuracy.
func (e *e2e) strictModel(accuracy, out string) map[string]string {
	files := e.deployModel(accuracy, out, "")
	files[".mlbot.yml"] = strings.Replace(files[".mlbot.yml"], "max_drop: 0.05", "max_drop: 0.02", 1)
	return files
}

// assertNoDeployAfter fails when production does not hold want or the
// host has other than n deployments to env.
func assertDeploys(t *testing.T, e *e2e, out, env, want string, n int) {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(out, env))
	if got := strings.TrimSpace(string(b)); got != want {
		t.Errorf("%s holds %q, want %q", env, got, want)
	}
	if st := e.hostStates(env); len(st) != n {
		t.Errorf("%d host deployments to %s, want %d: %v", len(st), env, n, st)
	}
}

// TestMergeGates drives the gates of the default branch and of deploys on
// both forges through real webhooks: a default-branch commit is compared
// with the one before it, and a deploy with what the environment runs.
func TestMergeGates(t *testing.T) {
	redMerge := func(pushFirst bool) func(t *testing.T, e *e2e, out string) {
		return func(t *testing.T, e *e2e, out string) {
			e.mainSHA = e.commit("main", e.deployModel("0.90", out, ""), "model")
			e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
			waitDeployed(t, out, "production", "0.90")
			before := e.mainSHA
			// Above min (0.8), but 0.06 below main: only max_drop (0.05) fails.
			h := e.commit("feature", map[string]string{"params": "0.84\n"}, "worse")
			e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
			if st := e.final(h); st.State != "failure" {
				t.Fatalf("pull request status %+v, want failure", st)
			}
			e.settle()
			// A maintainer merges over the red status.
			m := e.mergeOrdered("feature", pushFirst, 700*time.Millisecond)
			st := e.contextStatus(m, "mlbot/train-eval")
			if st.State != "failure" || !strings.Contains(st.Description, "compared with "+before[:7]) || !strings.Contains(st.Description, "accuracy") {
				t.Errorf("merge status %+v, want failure on accuracy, compared with %s", st, before[:7])
			}
			e.settle()
			assertDeploys(t, e, out, "production", "0.90", 1)
			if r := strings.Join(e.replies(), "\n"); !strings.Contains(r, "Not deployed") || !strings.Contains(r, "max_drop") {
				t.Errorf("the merged pull request was not told why nothing was deployed; replies:\n%s", r)
			}
		}
	}
	scenarios := []struct {
		name string
		run  func(t *testing.T, e *e2e, out string)
	}{
		{"a direct push to main that drops beyond max_drop fails and deploys nothing", func(t *testing.T, e *e2e, out string) {
			e.mainSHA = e.commit("main", e.deployModel("0.90", out, ""), "model")
			e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
			waitDeployed(t, out, "production", "0.90")
			if st := e.contextStatus(e.mainSHA, "mlbot/train-eval"); st.State != "success" || !strings.Contains(st.Description, "nothing to compare with") {
				t.Errorf("first commit's status %+v, want success saying it had nothing to compare with", st)
			}
			e.settle()
			before := e.mainSHA
			b := e.pushMain(map[string]string{"params": "0.84\n"}, "worse, straight to main")
			st := e.contextStatus(b, "mlbot/train-eval")
			if st.State != "failure" || !strings.Contains(st.Description, "gate failed: accuracy") || !strings.Contains(st.Description, "compared with "+before[:7]) {
				t.Errorf("push status %+v, want a failed accuracy gate, compared with %s", st, before[:7])
			}
			e.settle()
			assertDeploys(t, e, out, "production", "0.90", 1)
			if cs := e.sb.host.commitComments(e.sb.repo, b); len(cs) != 1 || !strings.Contains(cs[0], "Not deployed") || !strings.Contains(cs[0], "drop 0.06 > max_drop 0.05") {
				t.Errorf("comments on the pushed commit %q, want one saying why nothing was deployed", cs)
			}
		}},
		{"a merged red pull request deploys nothing, merge event first", redMerge(false)},
		{"a merged red pull request deploys nothing, push first", redMerge(true)},
		{"after a rollback, a merge worse than production deploys nothing", func(t *testing.T, e *e2e, out string) {
			e.mainSHA = e.commit("main", e.strictModel("0.90", out), "model")
			e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
			waitDeployed(t, out, "production", "0.90")
			e.settle()
			// Two small steps down, each within max_drop 0.02 of the last.
			e.pushMain(map[string]string{"params": "0.885\n"}, "a little worse")
			waitDeployed(t, out, "production", "0.885")
			e.settle()
			e.pushMain(map[string]string{"params": "0.87\n"}, "a little worse again")
			waitDeployed(t, out, "production", "0.87")
			e.settle()
			h := e.commit("feature", map[string]string{"params": "0.875\n"}, "better than main")
			e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
			if st := e.final(h); st.State != "success" {
				t.Fatalf("pull request status %+v, want success against main", st)
			}
			e.settle()
			e.say("maria", "/rollback production 1")
			waitDeployed(t, out, "production", "0.90")
			e.settle()
			m := e.mergeOrdered("feature", false, 0)
			if st := e.contextStatus(m, "mlbot/train-eval"); st.State != "success" {
				t.Errorf("merge status %+v, want success: it beats main's previous head", st)
			}
			st := e.contextStatus(m, "mlbot/deploy/production")
			if st.State != "failure" || !strings.Contains(st.Description, "not deployed") || !strings.Contains(st.Description, "v1") {
				t.Errorf("deploy status %+v, want failure naming v1, which production runs", st)
			}
			e.settle()
			assertDeploys(t, e, out, "production", "0.90", 4)
			e.lastReply("worse than model v1")
			if m := e.models(); m.Deployments["production"].Version != 1 {
				t.Errorf("registry says production runs v%d, want v1", m.Deployments["production"].Version)
			}
		}},
		{"/deploy is checked against the environment, and --force deploys and says so", func(t *testing.T, e *e2e, out string) {
			e.mainSHA = e.commit("main", e.strictModel("0.90", out), "model")
			e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
			waitDeployed(t, out, "production", "0.90")
			h1 := e.commit("feature", map[string]string{"params": "0.95\n"}, "much better")
			e.send(e.prEvent("opened", h1, ""), http.StatusAccepted)
			e.final(h1)
			e.settle()
			e.say("maria", "/deploy staging")
			waitDeployed(t, out, "staging", "0.95")
			e.settle()
			h2 := e.commit("feature", map[string]string{"params": "0.92\n"}, "less good, still beats main")
			e.send(e.prEvent("updated", h2, h1), http.StatusAccepted)
			if st := e.final(h2); st.State != "success" {
				t.Fatalf("second push status %+v", st)
			}
			e.settle()
			e.say("maria", "/deploy staging")
			e.lastReply("not deployed to `staging`")
			e.lastReply("/deploy staging --force")
			e.settle()
			assertDeploys(t, e, out, "staging", "0.95", 1)
			e.say("maria", "/deploy staging --force")
			waitDeployed(t, out, "staging", "0.92")
			e.settle()
			r := e.replies()
			if len(r) < 2 || !strings.Contains(r[len(r)-2], "**Forced** by @maria") || !strings.Contains(r[len(r)-2], "drop 0.03 > max_drop 0.02") {
				t.Errorf("the /deploy --force reply does not call the force out: %q", r)
			}
			e.lastReply("succeeded (forced)")
			if st := e.contextStatus(h2, "mlbot/deploy/staging"); st.State != "success" || !strings.Contains(st.Description, "forced") {
				t.Errorf("deploy status %+v, want success saying forced", st)
			}
			if e.forge == "github" {
				ds := e.sb.host.deployments(e.sb.repo)
				if last := ds[len(ds)-1]; last.Environment != "staging" || !strings.Contains(last.Description, "forced by maria") {
					t.Errorf("host deployment record %+v does not say it was forced", last)
				}
			}
		}},
		{"a version of an approved untrusted fork cannot be deployed", func(t *testing.T, e *e2e, out string) {
			e.mainSHA = e.commit("main", e.deployModel("0.90", out, ""), "model")
			e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
			waitDeployed(t, out, "production", "0.90")
			// The fork's commit carries its own deploy script; the command
			// comes from main, the checkout would be the fork's.
			files := map[string]string{"params": "0.93\n", "deploy.sh": "echo pwned > " + filepath.Join(out, "pwned") + "\n"}
			h := e.commit("feature", files, "from a fork")
			e.send(e.sb.pr(e.hook, prEvent{Action: "opened", HeadRef: "feature", HeadSHA: h, BaseSHA: e.mainSHA, Fork: true, Author: "mallory", Association: "NONE"}), http.StatusAccepted)
			e.settle()
			e.say("alice", "/ok-to-test")
			if st := e.final(h); st.State != "success" {
				t.Fatalf("approved fork status %+v", st)
			}
			e.settle()
			e.say("maria", "/deploy staging")
			e.lastReply("untrusted")
			// Its version is 2 (main's is 1): asking for it by number.
			e.say("maria", "/rollback staging 2")
			e.lastReply("untrusted")
			e.say("maria", "/rollback production 2")
			e.lastReply("untrusted")
			e.settle()
			if _, err := os.Stat(filepath.Join(out, "pwned")); err == nil {
				t.Fatal("the fork's deploy script ran")
			}
			if _, err := os.Stat(filepath.Join(out, "staging")); err == nil {
				t.Error("the fork's model was deployed to staging")
			}
			assertDeploys(t, e, out, "production", "0.90", 1)
		}},
	}
	for _, forge := range forges {
		for _, sc := range scenarios {
			t.Run(forge+"/"+sc.name, func(t *testing.T) {
				out := deployTarget(t)
				e := newE2E(t, forge, withDeployPath(out, nil))
				sc.run(t, e, out)
				if a := e.archived(); len(a) > 0 {
					t.Errorf("tasks failed for good: %v", a)
				}
			})
		}
	}
}
