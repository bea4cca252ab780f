package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/mlbot/mlbot/jobs/store"
)

// watched is the pipeline.paths of the end-to-end model: what training
// and evaluation read.
const watched = `  paths: [params, "*.sh"]` + "\n"

// withPaths adds pipeline.paths to a model's .mlbot.yml.
func withPaths(files map[string]string) map[string]string {
	files[".mlbot.yml"] = strings.Replace(files[".mlbot.yml"], "  timeout: 1m\n", "  timeout: 1m\n"+watched, 1)
	return files
}

// pathsBaseline commits files on main, delivers the push as the branch's
// first and waits for its run, which trains whatever pipeline.paths says.
func (e *e2e) pathsBaseline(files map[string]string) {
	e.t.Helper()
	e.mainSHA = e.commit("main", files, "model")
	e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
	if st := e.final(e.mainSHA); st.State != "success" || !strings.HasPrefix(st.Description, "passed") {
		e.t.Fatalf("baseline status = %+v", st)
	}
	e.settle()
}

// runOf reads the run a status links to, as the run page's JSON shows it.
func (e *e2e) runOf(st hostStatus) store.Run {
	e.t.Helper()
	var run store.Run
	if err := json.Unmarshal([]byte(httpGet(e.t, st.TargetURL+"?format=json")), &run); err != nil {
		e.t.Fatalf("run page %s: %v", st.TargetURL, err)
	}
	return run
}

// assertSkipped checks that sha's run was skipped for pipeline.paths: a
// success status saying so, and a run recorded as skipped with the paths.
func (e *e2e) assertSkipped(sha string) {
	e.t.Helper()
	st := e.final(sha)
	if st.State != "success" || !strings.HasPrefix(st.Description, "no model changes (paths)") {
		e.t.Fatalf("status of %s = %+v, want success \"no model changes (paths)\"", sha[:7], st)
	}
	if run := e.runOf(st); run.Outcome != "skipped" || run.State != store.RunFinished || run.ModelVersion != 0 ||
		strings.Join(run.Paths, " ") != "params *.sh" || !strings.Contains(run.Detail, "matches pipeline.paths") {
		e.t.Errorf("run of %s = outcome %q, state %q, version %d, paths %q, detail %q; want a finished skipped run naming the paths",
			sha[:7], run.Outcome, run.State, run.ModelVersion, run.Paths, run.Detail)
	}
}

// TestPathsEndToEnd drives pipeline.paths on both forges through real
// webhooks: what touches no watched path trains nothing and says why,
// everything else (a watched path, .mlbot.yml, /retrain) trains.
func TestPathsEndToEnd(t *testing.T) {
	scenarios := []struct {
		name string
		run  func(t *testing.T, e *e2e, out string)
	}{
		{"a docs-only pull request runs nothing and says why; /retrain runs it", func(t *testing.T, e *e2e, out string) {
			e.pathsBaseline(withPaths(e.model("0.90")))
			before := e.trainings()
			h := e.commit("feature", map[string]string{"README.md": "How to use the model.\n"}, "docs")
			e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
			e.assertSkipped(h)
			e.settle() // the comment follows the status
			if n := e.trainings() - before; n != 0 {
				t.Fatalf("%d trainings for a docs-only pull request", n)
			}
			cs := e.mlbotComments(1)
			if len(cs) != 1 {
				t.Fatalf("%d mlbot comments, want 1: %+v", len(cs), cs)
			}
			for _, want := range []string{"not needed", "no model changes", "`params`", "`*.sh`", "the base's model version is still the one that counts", "/retrain"} {
				if !strings.Contains(cs[0].Body, want) {
					t.Errorf("comment lacks %q:\n%s", want, cs[0].Body)
				}
			}
			e.say("alice", "/retrain")
			e.lastReply("Retraining `" + h[:7] + "`")
			if st := e.final(h); st.State != "success" || !strings.HasPrefix(st.Description, "passed") {
				t.Fatalf("status after /retrain = %+v, want a passed run", st)
			}
			e.settle()
			if n := e.trainings() - before; n != 1 {
				t.Errorf("/retrain trained %d times, want 1", n)
			}
			cs = e.mlbotComments(1)
			if len(cs) != 1 || !strings.Contains(cs[0].Body, "Verdict: passed") || strings.Contains(cs[0].Body, "not needed") {
				t.Errorf("after /retrain, comments %+v; want the one comment edited to the run's result", cs)
			}
		}},
		{"a pull request touching a watched path, then only .mlbot.yml, runs each time", func(t *testing.T, e *e2e, out string) {
			files := withPaths(e.model("0.90"))
			e.pathsBaseline(files)
			before := e.trainings()
			h1 := e.commit("feature", map[string]string{"params": "0.92\n"}, "better")
			e.send(e.prEvent("opened", h1, ""), http.StatusAccepted)
			if st := e.final(h1); st.State != "success" || !strings.HasPrefix(st.Description, "passed") {
				t.Fatalf("watched path: status %+v, want a passed run", st)
			}
			e.settle()
			if n := e.trainings() - before; n != 1 {
				t.Fatalf("watched path: %d trainings, want 1", n)
			}
			h2 := e.commit("feature", map[string]string{".mlbot.yml": files[".mlbot.yml"] + "# tuned\n"}, "config")
			e.send(e.prEvent("updated", h2, h1), http.StatusAccepted)
			if st := e.final(h2); st.State != "success" || !strings.HasPrefix(st.Description, "passed") {
				t.Fatalf(".mlbot.yml only: status %+v, want a passed run", st)
			}
			e.settle()
			if n := e.trainings() - before; n != 2 {
				t.Errorf(".mlbot.yml only: %d trainings in all, want 2", n)
			}
			if cs := e.mlbotComments(1); len(cs) != 1 || !strings.Contains(cs[0].Body, h2[:7]) || !strings.Contains(cs[0].Body, "Verdict: passed") {
				t.Errorf("comments %+v, want one, about %s", cs, h2[:7])
			}
		}},
		{"a docs-only merge to main registers and deploys nothing", func(t *testing.T, e *e2e, out string) {
			files := withPaths(e.deployModel("0.90", out, ""))
			e.pathsBaseline(files)
			waitDeployed(t, out, "production", "0.90")
			e.settle()
			before, versions, deploys := e.trainings(), len(e.models().Versions), len(e.hostStates("production"))
			h := e.commit("feature", map[string]string{"USAGE.md": "Usage.\n"}, "docs")
			e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
			e.assertSkipped(h)
			m := e.merge("feature")
			e.assertSkipped(m)
			if st := e.final(m); !strings.Contains(st.Description, "nothing trained, registered or deployed") {
				t.Errorf("status of the merge %+v does not say nothing was deployed", st)
			}
			e.settle()
			if n := e.trainings() - before; n != 0 {
				t.Errorf("%d trainings for a docs-only pull request and its merge", n)
			}
			models := e.models()
			if len(models.Versions) != versions || models.Deployments["production"].Version != models.Versions[0].Number {
				t.Errorf("registry %d versions (was %d), production runs %+v; want nothing new, the base's version deployed", len(models.Versions), versions, models.Deployments["production"])
			}
			if n := len(e.hostStates("production")); n != deploys {
				t.Errorf("%d deployments to production, was %d", n, deploys)
			}
			for _, s := range e.sb.statuses(m) {
				if strings.HasPrefix(s.Context, "mlbot/deploy/") {
					t.Errorf("the docs-only merge has a deploy status: %+v", s)
				}
			}
			// The next model change is compared with the last trained
			// version, the docs-only commits in between notwithstanding.
			h2 := e.commit("feature2", map[string]string{"params": "0.93\n"}, "better")
			e.send(e.sb.pr(e.hook, prEvent{Number: 2, Action: "opened", HeadRef: "feature2", HeadSHA: h2, BaseSHA: e.mainSHA, Author: "alice", Association: "MEMBER"}), http.StatusAccepted)
			if st := e.final(h2); st.State != "success" || !strings.HasPrefix(st.Description, "passed") {
				t.Fatalf("model change after the docs merge: status %+v", st)
			}
			e.settle()
			if cs := e.mlbotComments(2); len(cs) != 1 || !strings.Contains(cs[0].Body, "| `accuracy` | 0.9 | 0.93 |") {
				t.Errorf("comments of #2 %+v, want 0.93 compared with the trained 0.9", cs)
			}
			if n := e.trainings() - before; n != 1 {
				t.Errorf("%d trainings for the model change, want 1 (its base was trained already)", n)
			}
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
