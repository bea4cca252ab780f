package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mlbot/mlbot/internal/testreq"
)

// chromium starts a headless Chromium (Debian's package, as .ci/run
// installs it) for t and returns its tab. Without one the test skips,
// unless MLBOT_TEST_REQUIRE names chromium.
func chromium(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		testreq.Missing(t, "chromium", "no chromium on PATH (Debian: apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-gpu", true))
	if os.Geteuid() == 0 {
		// Chromium refuses to run as root with its own sandbox.
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("chromium (%s) did not start: %v", path, err)
	}
	return ctx
}

// page is a browser tab driving mlbot's pages for a test.
type page struct {
	t   *testing.T
	ctx context.Context
	dir string // where screenshots go
}

// newPage opens Chromium for t. Screenshots go to $MLBOT_TEST_ARTIFACTS
// when set, else to the test's artifact directory (go test -artifacts).
func newPage(t *testing.T) *page {
	ctx := chromium(t)
	dir := t.ArtifactDir()
	if d := os.Getenv("MLBOT_TEST_ARTIFACTS"); d != "" {
		dir = filepath.Join(d, strings.ReplaceAll(t.Name(), "/", "_"))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return &page{t: t, ctx: ctx, dir: dir}
}

// do runs steps with a deadline.
func (p *page) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 2*time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		loc, _ := chromedp.Run(p.ctx, chromedp.Location())
		p.shot("failure")
		p.t.Fatalf("at %s: %v", loc, err)
	}
}

// eval returns the value of a JavaScript expression in the page.
func eval[T any](p *page, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// waitFor waits until the JavaScript predicate holds in the page. It
// asks again and again rather than waiting inside the page, so that a
// navigation on the way (a login's redirects, a reload) does not end the
// wait.
func (p *page) waitFor(predicate string, timeout time.Duration) {
	p.t.Helper()
	var last error
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](predicate))
		cancel()
		if err == nil && ok {
			return
		}
		last = err
	}
	loc, _ := chromedp.Run(p.ctx, chromedp.Location())
	p.shot("failure")
	p.t.Fatalf("at %s, after %s %s does not hold (last error: %v)", loc, timeout, predicate, last)
}

// shot saves a screenshot of the whole page as name.png; with
// MLBOT_UPDATE_SCREENSHOTS set, the README's screenshots are replaced too.
func (p *page) shot(name string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, time.Minute)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	file := filepath.Join(p.dir, name+".png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot %s", file)
	if os.Getenv("MLBOT_UPDATE_SCREENSHOTS") != "" && (name == "overview" || name == "run") {
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "screenshots", name+".png"), png, 0o644); err != nil {
			p.t.Error(err)
		}
	}
}

// TestBrowser drives mlbot's pages in Chromium through a repository's
// life: a person opens the run page a status links to, logs in through the
// simulator and comes back to it, watches the training's log grow, sees
// the outcome; later the overview, the repository's chart of its
// default-branch runs, a model and a deploy render, and a pull request's
// run shows its failing gate. Every page is saved as a screenshot.
func TestBrowser(t *testing.T) {
	p := newPage(t)
	out := deployTarget(t)
	e := newE2E(t, "github", withDeployPath(out, withLogin("github")))
	e.enableLogin()

	// A default-branch commit whose training prints an epoch every half
	// second, and deploys to production when it passes.
	files := e.deployModel("0.9", out, "")
	files["train.sh"] = liveModel(8, "0.5")["train.sh"]
	first := e.commit("main", files, "slow model")
	e.mainSHA = first
	e.send(e.sb.push(e.hook, zeroSHA, first), http.StatusAccepted)
	runPage := e.runningURL(first)

	// Not logged in, the link leads to the simulator's sign-in page and,
	// once signed in, back to the run.
	p.do(chromedp.Navigate(runPage), chromedp.WaitVisible(chromedp.ID("login")))
	if loc := eval[string](p, "location.href"); !strings.HasPrefix(loc, e.sb.srv.URL+"/login/oauth/authorize?") {
		t.Fatalf("the run page sent the browser to %s, not the simulator's sign-in page", loc)
	}
	p.shot("login")
	p.do(chromedp.SendKeys(chromedp.ID("login"), "rita"), chromedp.Click(chromedp.ID("authorize")))
	p.waitFor(`location.pathname.startsWith("/runs/") && document.getElementById("log") !== null`, time.Minute)
	if loc := eval[string](p, "location.href"); loc != runPage {
		t.Fatalf("after the login the browser is at %s, want %s", loc, runPage)
	}

	// The log grows while the training prints, before its status is final.
	logText := `document.getElementById("log").textContent`
	p.waitFor(logText+`.includes("epoch 1\n")`, time.Minute)
	n1 := eval[int](p, logText+".length")
	if st := e.sb.statuses(first); len(st) == 0 || (st[len(st)-1].State != "pending" && st[len(st)-1].State != "running") {
		t.Errorf("epoch 1 was on the page only after the run ended: %+v", st)
	}
	p.waitFor(logText+`.includes("epoch 4\n")`, time.Minute)
	n2 := eval[int](p, logText+".length")
	if n2 <= n1 {
		t.Errorf("the log did not grow: %d bytes, then %d", n1, n2)
	}
	if !eval[bool](p, `document.getElementById("live") !== null`) {
		t.Errorf("the page does not say it follows the training")
	}
	p.shot("run-live")
	// At the end the page shows the outcome.
	p.waitFor(`document.getElementById("outcome") !== null && document.getElementById("outcome").textContent === "passed"`, 2*time.Minute)
	if got := eval[string](p, logText); !strings.Contains(got, "epoch 8") {
		t.Errorf("the finished run's log lacks the last epoch:\n%s", got)
	}
	waitDeployed(t, out, "production", "0.9")

	// A second default-branch commit, deployed too, and a pull request
	// that fails its gate.
	second := e.commit("main", e.deployModel("0.95", out, ""), "better model")
	e.send(e.sb.push(e.hook, first, second), http.StatusAccepted)
	e.mainSHA = second
	if st := e.final(second); st.State != "success" {
		t.Fatalf("second baseline: %+v", st)
	}
	waitDeployed(t, out, "production", "0.95")
	head := e.commit("worse", e.deployModel("0.85", out, ""), "worse model")
	e.send(e.sb.pr(e.hook, prEvent{Action: "opened", HeadRef: "worse", HeadSHA: head, BaseSHA: second, Author: "alice", Association: "MEMBER"}), http.StatusAccepted)
	prStatus := e.final(head)
	if prStatus.State != "failure" {
		t.Fatalf("pull request status %+v, want failure", prStatus)
	}

	// The pull request's run: the comment's table, gates and verdict.
	p.do(chromedp.Navigate(prStatus.TargetURL), chromedp.WaitVisible(chromedp.ID("verdict")))
	if got := eval[int](p, `document.querySelectorAll("#diff tbody tr").length`); got < 2 {
		t.Errorf("the run's table has %d rows", got)
	}
	if got := eval[string](p, `document.getElementById("verdict").textContent`); !strings.HasPrefix(got, "Verdict: failed — accuracy: drop 0.1 > max_drop 0.05") {
		t.Errorf("verdict %q", got)
	}
	p.shot("run")

	// The overview lists the repository, what runs in production, and
	// the runs.
	p.do(chromedp.Navigate(e.url+"/"), chromedp.WaitVisible(chromedp.ID("repos")))
	if got := eval[string](p, `document.getElementById("repos").textContent`); !strings.Contains(got, "acme/model") || !strings.Contains(got, "production") {
		t.Errorf("the overview's repositories: %q", got)
	}
	if got := eval[int](p, `document.querySelectorAll("#runs tr.run").length`); got != 3 {
		t.Errorf("the overview lists %d runs, want 3", got)
	}
	p.shot("overview")

	// The repository's chart has a point per default-branch run and a
	// marker per deploy.
	p.do(chromedp.Navigate(e.url+"/repos/github/acme/model"), chromedp.WaitVisible(chromedp.CSS("svg.chart")))
	if got := eval[int](p, `document.querySelectorAll("svg.chart circle.point").length`); got != 2 {
		t.Errorf("the chart draws %d points, want 2 (one per default-branch run)", got)
	}
	if got := eval[int](p, `document.querySelectorAll("svg.chart g.marker.deploy").length`); got != 2 {
		t.Errorf("the chart marks %d deploys, want 2", got)
	}
	if box := eval[float64](p, `document.querySelector("svg.chart").getBoundingClientRect().width`); box < 300 {
		t.Errorf("the chart is %v pixels wide", box)
	}
	p.shot("repo")

	// The model running in production, and its deploy.
	p.do(chromedp.Navigate(e.url+"/models/github/acme/model/2"), chromedp.WaitVisible(chromedp.ID("runs-in")))
	if got := eval[string](p, `document.getElementById("runs-in").textContent`); !strings.Contains(got, "production") {
		t.Errorf("model v2 runs in %q", got)
	}
	p.shot("model")
	deploy := eval[string](p, `document.querySelector("#runs-in a[href^='/deploys/']").href`)
	p.do(chromedp.Navigate(deploy), chromedp.WaitVisible(chromedp.ID("state")))
	if got := eval[string](p, `document.getElementById("state").textContent`); got != "succeeded" {
		t.Errorf("deploy state %q", got)
	}
	if got := eval[string](p, `document.getElementById("log").textContent`); !strings.Contains(got, "deployed model v2") {
		t.Errorf("the deploy's log: %q", got)
	}
	p.shot("deploy")
}
