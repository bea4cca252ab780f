package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/jobs/store"
)

// lrModel is a tiny pipeline with a learning rate: the accuracy each
// lr gives is fixed (0.3 is best, 0.5 fails the min gate); lr slow sleeps
// in a process the test can find (marker) until it is stopped.
func lrModel(parallel, slow, marker string) map[string]string {
	return map[string]string{
		".mlbot.yml": `version: 1
pipeline:
  train: sh train.sh
  evaluate: sh eval.sh
  metrics: [metrics.json]
  artifacts: [model.txt]
  timeout: 1m
params:
  lr: 0.1
  nap: 0
metrics:
  accuracy: {goal: maximize, min: 0.8, max_drop: 0.05}
sweep:
  parallel: ` + parallel + `
`,
		"train.sh": `echo "training lr=$MLBOT_PARAM_LR"
if [ "$MLBOT_PARAM_LR" = "` + slow + `" ]; then sleep 60.` + marker + ` & wait; fi
sleep "$MLBOT_PARAM_NAP"
echo "$MLBOT_PARAM_LR" > model.txt
`,
		"eval.sh": `case "$(cat model.txt)" in 0.1) a=0.90;; 0.2) a=0.93;; 0.3) a=0.95;; 0.4) a=0.92;; 0.5) a=0.70;; *) a=0.85;; esac
printf '{"accuracy": %s}' "$a" > metrics.json
`,
	}
}

// openSweepPR commits files as main's model and a change beside it as
// pull request 1 on "feature", waits until both commits' runs passed and
// mlbot is idle, and returns the pull request's head.
func (e *e2e) openSweepPR(files map[string]string) string {
	e.t.Helper()
	e.mainSHA = e.commit("main", files, "model")
	e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
	if st := e.final(e.mainSHA); st.State != "success" {
		e.t.Fatalf("baseline %+v", st)
	}
	h := e.commit("feature", map[string]string{"notes.txt": "a change\n"}, "change")
	e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
	if st := e.final(h); st.State != "success" {
		e.t.Fatalf("pull request run %+v", st)
	}
	e.settle()
	return h
}

// sweepComments lists mlbot's sweep comments on pull request number.
func (e *e2e) sweepComments(number int) []hostComment {
	return e.commentsMarked(number, report.SweepMarker)
}

// waitFor polls cond for up to 60s.
func (e *e2e) waitFor(what string, cond func() bool) {
	e.t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	e.t.Fatalf("timed out waiting for %s", what)
}

// startSecondWorker starts a second mlbot app on e's Redis serving the
// default pipeline queue, with a data directory (machine) of its own, and
// returns that directory.
func (e *e2e) startSecondWorker(key string) string {
	e.t.Helper()
	cfg := defaultServerConfig()
	cfg.RedisURL, cfg.TaskKey = e.app.cfg.RedisURL, key
	cfg.DataDir = filepath.Join(e.t.TempDir(), "worker-2")
	cfg.Concurrency = 1
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.RetryBase = 100 * time.Millisecond
	cfg.DeployPaths = e.app.cfg.DeployPaths
	e.sb.configure(cfg)
	cfg.Listen, cfg.PublicURL = "127.0.0.1:0", e.url
	if err := cfg.Validate(); err != nil {
		e.t.Fatal(err)
	}
	w, err := newApp(cfg, slog.New(slog.NewTextHandler(testWriter{e.t}, nil)), false)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(w.Shutdown)
	return cfg.DataDir
}

// TestSweepEndToEnd: `/sweep lr=…` on a pull request fans its trials out
// over two worker processes (serve and a second app on the same Redis),
// edits one sweep comment to its final table and sets mlbot/sweep; a
// reader is refused, a bad space is answered with the parser's error,
// and a push mid-sweep cancels the sweep's trials.
func TestSweepEndToEnd(t *testing.T) {
	for _, forge := range forges {
		t.Run(forge, func(t *testing.T) {
			const key = "0123456789abcdef0123456789abcdef-sweep-test"
			e := newE2E(t, forge, func(c *configs.Server) { c.TaskKey, c.Concurrency = key, 1 })
			marker := uniqueMarker()
			files := lrModel("2", "0.9", marker)
			files["train.sh"] = strings.Replace(files["train.sh"], `sleep "$MLBOT_PARAM_NAP"`, `sleep "$MLBOT_PARAM_NAP"; sleep 0.3`, 1)
			h := e.openSweepPR(files)
			worker := e.startSecondWorker(key)
			before := e.trainings()

			// A reader may not sweep; a bad space is answered with the
			// parser's error; neither trains anything.
			e.say("rita", "/sweep lr=0.1,0.2")
			e.lastReply("`/sweep` needs write permission")
			e.say("alice", "/sweep lr=0.1 depth=3")
			e.lastReply("depth")
			e.say("alice", "/sweep lr=range(0,1000,0.001)")
			e.lastReply("more than")
			if n := len(e.sweepComments(1)); n != 0 || e.trainings() != before {
				t.Fatalf("refused sweeps left %d sweep comments and %d trainings", n, e.trainings()-before)
			}

			e.say("alice", "/sweep lr=0.1,0.2,0.3,0.4,0.5")
			e.lastReply("Sweeping `" + h[:7] + "`: 5 trials (grid")
			st := e.contextStatus(h, "mlbot/sweep")
			if st.State != "success" || !strings.Contains(st.Description, "5/5 done") {
				t.Fatalf("mlbot/sweep %+v", st)
			}
			e.settle()
			cs := e.sweepComments(1)
			if len(cs) != 1 {
				t.Fatalf("%d sweep comments, want 1", len(cs))
			}
			body := cs[0].Body
			for _, want := range []string{"5/5 done", "| **3** 🏆 | `0.3` | **0.9500** | +0.0500 |", "❌ accuracy", "Method grid, seed 0",
				"5/5 trials done, 0 pruned, 0 failed", "`accuracy` 0.9000 on the base", "optimistically biased"} {
				if !strings.Contains(body, want) {
					t.Errorf("sweep comment lacks %q:\n%s", want, body)
				}
			}
			if cs[0].Edits < 2 {
				t.Errorf("sweep comment edited %d times; want one edit a finished trial at least", cs[0].Edits)
			}
			// The comment links the sweep's page: the same ranking, and the
			// metric drawn against lr, a point per trial.
			sweepPage := regexp.MustCompile(`\[Sweep page[^\]]*\]\((` + regexp.QuoteMeta(e.url) + `/sweeps/[0-9a-f]{32})\)`).FindStringSubmatch(body)
			if sweepPage == nil {
				t.Errorf("the sweep comment links no sweep page:\n%s", body)
			} else if html := e.pageBody(sweepPage[1]); !strings.Contains(html, `id="best"`) || !strings.Contains(html, `data-points="5"`) {
				t.Errorf("the sweep page lacks the best trial or a chart of 5 points:\n%s", html)
			}
			// The repository's page lists the sweep, done, with its best trial.
			if sweepPage != nil {
				id := path.Base(sweepPage[1])
				row := regexp.MustCompile(`(?s)<tr class="sweep" id="sweep-` + id + `">.*?</tr>`).FindString(e.pageBody(e.url + "/repos/" + forge + "/" + strings.ToLower(e.sb.repo)))
				if !strings.Contains(row, ">done<") || !strings.Contains(row, "trial 3</a>: <code>accuracy</code> 0.95") {
					t.Errorf("the repository page's row of the sweep: %q", row)
				}
			}
			// Rows run best first: 0.3, 0.2, 0.4, 0.1, then 0.5 (gate failed).
			var order []string
			for _, m := range regexp.MustCompile("(?m)^\\| [^|]+ \\| `([0-9.]+)` \\|").FindAllStringSubmatch(body, -1) {
				order = append(order, m[1])
			}
			if got := strings.Join(order, " "); got != "0.3 0.2 0.4 0.1 0.5" {
				t.Errorf("rows %q, want 0.3 0.2 0.4 0.1 0.5", got)
			}
			// Five trials, shared between the two workers; the base was
			// not trained again.
			serve, second := e.trainings()-before, trainingsIn(worker)
			if serve+second != 5 || serve == 0 || second == 0 {
				t.Errorf("trials trained: serve %d, second worker %d; want 5 in all, on both", serve, second)
			}
			t.Logf("trials trained by serve: %d, by the second worker: %d", serve, second)
			// Each trial is a run of its own, with a page and a model
			// version; its page shows the trial's parameters.
			links := regexp.MustCompile(`\[run\]\((http[^)]+)\) · v(\d+)`).FindAllStringSubmatch(body, -1)
			if len(links) != 5 {
				t.Fatalf("%d rows with a run link and a version, want 5:\n%s", len(links), body)
			}
			resp, err := http.Get(links[0][1])
			if err != nil {
				t.Fatal(err)
			}
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(page), "training lr=0.3") {
				t.Errorf("the best trial's page does not show its training:\n%.2000s", page)
			}
			// Two trials ran at once.
			if !trialsOverlapped(t, e) {
				t.Errorf("no two trials ran at the same time")
			}
			// The pull request's own comment and status are the head's run's.
			if n := len(e.mlbotComments(1)); n != 1 {
				t.Errorf("%d train-eval comments, want 1", n)
			}
			if st := e.contextStatus(h, "mlbot/train-eval"); st.State != "success" {
				t.Errorf("mlbot/train-eval %+v", st)
			}

			// A push mid-sweep cancels it: the slow trial's process is
			// stopped and the comment says cancelled.
			e.send(e.sb.comment(e.hook, commentEvent{Body: "/sweep lr=0.9,0.1,0.2,0.3", Author: "alice", Association: "MEMBER", HeadRef: "feature"}), http.StatusAccepted)
			pid := waitProc(t, marker)
			h2 := e.commit("feature", map[string]string{"notes.txt": "another change\n"}, "change again")
			e.send(e.prEvent("updated", h2, h), http.StatusAccepted)
			e.waitFor("the sweep comment to say cancelled", func() bool {
				cs := e.sweepComments(1)
				return len(cs) == 1 && strings.Contains(cs[0].Body, "cancelled")
			})
			assertGone(t, pid)
			if st := e.contextStatus(h, "mlbot/sweep"); st.State == "success" || !strings.Contains(st.Description, "superseded") {
				t.Errorf("mlbot/sweep after the push %+v", st)
			}
			e.final(h2)
			e.settle()
			body = e.sweepComments(1)[0].Body
			if !strings.Contains(body, "superseded by "+h2[:7]) || !strings.Contains(body, "🚫 cancelled") {
				t.Errorf("cancelled sweep comment:\n%s", body)
			}
			if a := e.archived(); len(a) > 0 {
				t.Errorf("tasks failed for good: %v", a)
			}
		})
	}
}

// trialsOverlapped reports whether two of the sweep trials e's Redis
// holds ran at the same time.
func trialsOverlapped(t *testing.T, e *e2e) bool {
	t.Helper()
	repos, err := e.app.store.RunRepos(t.Context())
	if err != nil || len(repos) != 1 {
		t.Fatalf("repositories with runs: %v, %v", repos, err)
	}
	runs, err := e.app.store.RecentRuns(t.Context(), repos[0], 100)
	if err != nil {
		t.Fatal(err)
	}
	var trials []*store.Run
	for _, r := range runs {
		if r.Sweep != "" && !r.Started.IsZero() && !r.Finished.IsZero() {
			trials = append(trials, r)
		}
	}
	for i, a := range trials {
		for _, b := range trials[i+1:] {
			if a.Started.Before(b.Finished) && b.Started.Before(a.Finished) {
				return true
			}
		}
	}
	return false
}

// TestSweepDoesNotStarveOtherPullRequests: a sweep of four slow trials
// with parallel 1 on a single worker holds one place in the pipeline
// queue, so another pull request opened mid-sweep is trained after at
// most the trial in flight, long before the sweep ends. Then a
// maintainer deploys the best trial's model version with /deploy.
func TestSweepDoesNotStarveOtherPullRequests(t *testing.T) {
	out := deployTarget(t)
	e := newE2E(t, "github", withDeployPath(out, func(c *configs.Server) { c.Concurrency = 1 }))
	files := lrModel("1", "none", "0")
	files[".mlbot.yml"] += "deploy:\n  staging:\n    command: cp \"$MLBOT_ARTIFACTS_DIR/model.txt\" " + out + "/staging\n    from_pr: true\n"
	h := e.openSweepPR(files)
	e.send(e.sb.comment(e.hook, commentEvent{Body: "/sweep lr=0.1,0.2,0.4,0.5 nap=1", Author: "alice", Association: "MEMBER", HeadRef: "feature"}), http.StatusAccepted)
	e.waitFor("the first trial to run", func() bool { return e.trialsRunning(1) > 0 })
	other := e.commit("other", map[string]string{"other.txt": "another pull request\n"}, "other")
	e.send(e.sb.pr(e.hook, prEvent{Action: "opened", Number: 2, HeadRef: "other", HeadSHA: other, BaseSHA: e.mainSHA, Author: "alice", Association: "MEMBER"}), http.StatusAccepted)
	if st := e.final(other); st.State != "success" {
		t.Fatalf("the other pull request's run: %+v", st)
	}
	body := e.sweepComments(1)[0].Body
	st := e.contextStatusNow(h, "mlbot/sweep")
	if st.State != "pending" || strings.Contains(body, "4/4 done") || strings.Contains(body, "3/4 done") {
		t.Errorf("the other pull request waited for the sweep: mlbot/sweep %+v when it finished:\n%s", st, body)
	}
	if st := e.contextStatus(h, "mlbot/sweep"); st.State != "success" || !strings.Contains(st.Description, "4/4 done") {
		t.Errorf("mlbot/sweep %+v", st)
	}
	e.settle()

	// A maintainer deploys the best trial's version (the table names
	// it); a version that failed its gates, or that another run made, is
	// refused.
	body = e.sweepComments(1)[0].Body
	versions := regexp.MustCompile(`\[run\]\(http[^)]+\) · v(\d+)`).FindAllStringSubmatch(body, -1)
	if len(versions) != 4 {
		t.Fatalf("%d trial versions in the table, want 4:\n%s", len(versions), body)
	}
	e.say("alice", "/deploy staging v"+versions[0][1])
	e.lastReply("needs maintain permission")
	e.say("maria", "/deploy staging v"+versions[3][1])
	e.lastReply("did not pass its gates")
	e.say("maria", "/deploy staging v1")
	e.lastReply("was not made by this pull request")
	e.say("maria", "/deploy staging v"+versions[0][1])
	waitDeployed(t, out, "staging", "0.2")
	e.settle()
	e.lastReply("to `staging`: succeeded")
}

// contextStatusNow is sha's newest status of context now, pending or not.
func (e *e2e) contextStatusNow(sha, context string) hostStatus {
	ss := e.sb.statuses(sha)
	for i := len(ss) - 1; i >= 0; i-- {
		if ss[i].Context == context {
			return ss[i]
		}
	}
	return hostStatus{}
}

// trialsRunning counts the running trials of pull request number's sweep.
func (e *e2e) trialsRunning(number int) int {
	ctx := e.t.Context()
	repos, err := e.app.store.RunRepos(ctx)
	if err != nil || len(repos) == 0 {
		return 0
	}
	runs, err := e.app.store.RecentRuns(ctx, repos[0], 100)
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, r := range runs {
		if r.Sweep != "" && r.PR != nil && r.PR.Number == number && r.State == store.RunRunning {
			n++
		}
	}
	return n
}

// pageBody GETs one of mlbot's pages and returns its body, failing the
// test unless it answers 200.
func (e *e2e) pageBody(u string) string {
	e.t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("%s answered %d:\n%s", u, resp.StatusCode, b)
	}
	return string(b)
}

// TestSweepCheckRunApp: with mlbot a GitHub App, /sweep on a pull request
// shows the sweep as the head's check run mlbot/sweep: in progress with
// "k/N done" as trials finish, then completed with success, the best
// trial and its parameters in the title and the table in the summary,
// the sweep's id as external id and its page as details URL. The pull
// request's own mlbot/train-eval check run is not touched by the trials.
func TestSweepCheckRunApp(t *testing.T) {
	e, sim := newAppE2E(t, nil)
	h := e.openSweepPR(lrModel("2", "none", "0"))
	trainEval := e.checkRun(sim, h, "mlbot/train-eval")

	e.say("alice", "/sweep lr=0.1,0.3,0.5")
	e.lastReply("Sweeping `" + h[:7] + "`: 3 trials")
	e.waitFor("the mlbot/sweep check run to complete", func() bool {
		for _, cr := range sim.CheckRuns(e.sb.repo, h) {
			if cr.Name == "mlbot/sweep" && cr.Status == "completed" {
				return true
			}
		}
		return false
	})
	e.settle()

	cr := e.checkRun(sim, h, "mlbot/sweep")
	hist := history(cr)
	if len(hist) < 2 || hist[len(hist)-1] != "completed/success" {
		t.Fatalf("mlbot/sweep went through %v, want in_progress then completed/success", hist)
	}
	// Every state before the last is in progress, counting trials done.
	done := -1
	for _, st := range cr.History[:len(cr.History)-1] {
		var k, n int
		if _, err := fmt.Sscanf(st.Title, "%d/%d done", &k, &n); err != nil || st.Status != "in_progress" || n != 3 || k < done || k > 3 {
			t.Errorf("state %s %q, want in_progress with k/3 done, k never going back (states %v)", st.Status, st.Title, hist)
		}
		done = k
	}
	if cr.Title != "3/3 done; best: trial 2 (lr=0.3), accuracy 0.9500" {
		t.Errorf("title %q, want the best trial with its parameters", cr.Title)
	}
	for _, want := range []string{"| **2** 🏆 | `0.3` | **0.9500** |", "❌ accuracy", "3/3 trials done", "[Sweep page"} {
		if !strings.Contains(cr.Summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, cr.Summary)
		}
	}
	id := path.Base(cr.DetailsURL)
	if cr.DetailsURL != e.url+"/sweeps/"+id || cr.ExternalID != id {
		t.Errorf("details URL %q, external id %q: want the sweep's page and id", cr.DetailsURL, cr.ExternalID)
	}
	if sw, err := e.app.store.GetSweep(t.Context(), id); err != nil || sw.State != store.SweepFinished || len(sw.Trials) != 3 {
		t.Errorf("the check run names sweep %s: %+v, %v", id, sw, err)
	}
	if page := e.pageBody(cr.DetailsURL); !strings.Contains(page, `id="best"`) {
		t.Errorf("the details URL's page lacks the best trial:\n%s", page)
	}

	// The trials left the pull request's own check run as it was.
	if after := e.checkRun(sim, h, "mlbot/train-eval"); !slices.Equal(history(after), history(trainEval)) ||
		after.ExternalID != trainEval.ExternalID || after.Title != trainEval.Title || len(after.History) != len(trainEval.History) {
		t.Errorf("mlbot/train-eval changed during the sweep: %v %q → %v %q", history(trainEval), trainEval.Title, history(after), after.Title)
	}
}
