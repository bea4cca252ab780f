package web

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/jobs/store"
)

// TestSweepPage opens a sweep of the fixture's pull request: trials ranked
// best first with their parameters, metric and runs, the one not started
// at the bottom, the metric drawn against the numeric parameter (one point
// per finished trial) and not against the string one; a trial's run page
// links back to it.
func TestSweepPage(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	sw := &store.Sweep{ID: store.NewID(), Repo: f.repo, PR: f.pr.PR, SHA: f.pr.SHA, Planned: 4, State: store.SweepRunning, By: "alice",
		Spec:    []byte(`{"Space":[{"Param":"lr","Kind":0},{"Param":"opt","Kind":0}],"Metric":"accuracy","Goal":"maximize","Method":"grid","Seed":7}`),
		Created: time.Now().UTC()}
	trials := []struct {
		lr, opt string
		acc     float64
		run     bool
	}{{"0.05", "sgd", 0.84, true}, {"0.1", "sgd", 0.91, true}, {"0.5", "adam", 0.79, true}, {"1", "adam", 0, false}}
	var best string
	for i, tr := range trials {
		st := store.SweepTrial{Index: i, Params: map[string]string{"lr": tr.lr, "opt": tr.opt}}
		if tr.run {
			run := &store.Run{ID: store.NewID(), Kind: store.KindPullRequest, Repo: f.repo, SHA: f.pr.SHA, PR: f.pr.PR,
				State: store.RunFinished, Outcome: report.OutcomePassed, Metrics: map[string]float64{"accuracy": tr.acc},
				Specs: f.pr.Specs, Order: f.pr.Order, Params: st.Params, Sweep: sw.ID, Trial: i,
				Created: time.Now().UTC(), Finished: time.Now().UTC()}
			if err := f.runs.SaveRun(ctx, run); err != nil {
				t.Fatal(err)
			}
			st.RunID = run.ID
			if tr.lr == "0.1" {
				best = run.ID
			}
		}
		sw.Trials = append(sw.Trials, st)
	}
	if err := f.runs.SaveSweep(ctx, sw); err != nil {
		t.Fatal(err)
	}
	srv := f.serve(t, Options{Sweeps: f.runs})
	get := func(path string) (int, string) {
		t.Helper()
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	code, body := get("/sweeps/" + sw.ID)
	if code != http.StatusOK {
		t.Fatalf("status %d:\n%s", code, body)
	}
	rows := regexp.MustCompile(`(?s)<tr( class="best" id="best")?><td>(\d+)`).FindAllStringSubmatch(body, -1)
	var order []string
	for _, r := range rows {
		order = append(order, r[2])
	}
	if strings.Join(order, ",") != "2,1,3,4" || rows[0][1] == "" {
		t.Errorf("trials in the order %v (best marked: %q), want 2,1,3,4 with 2 marked best", order, rows[0][1])
	}
	best5 := regexp.MustCompile(`(?s)id="best">.*?</tr>`).FindString(body)
	for _, want := range []string{"<code>0.1</code>", "<code>sgd</code>", "0.91", `href="/runs/` + best + `"`} {
		if !strings.Contains(best5, want) {
			t.Errorf("the best row lacks %q:\n%s", want, best5)
		}
	}
	if !strings.Contains(body, "not started") || !strings.Contains(body, "optimistically biased") {
		t.Errorf("the page lacks the trial not started or the bias warning:\n%s", body)
	}
	charts := regexp.MustCompile(`<figure class="chart" id="(param-\d+)">\s*<figcaption>([^<]*)</figcaption>\s*<svg[^>]*data-points="(\d+)"`).FindAllStringSubmatch(body, -1)
	if len(charts) != 1 || charts[0][2] != "accuracy against lr" || charts[0][3] != "3" {
		t.Errorf("charts %v, want one of accuracy against lr with 3 points (none against the string opt)", charts)
	}
	if n := strings.Count(body, `class="point this"`); n != 1 {
		t.Errorf("%d points drawn as the best trial, want 1", n)
	}

	code, body = get("/runs/" + best)
	if code != http.StatusOK || !strings.Contains(body, `id="sweep-link" href="/sweeps/`+sw.ID+`">trial 2 of a sweep`) {
		t.Errorf("the trial's run page (%d) does not link its sweep:\n%s", code, body)
	}
	for _, path := range []string{"/sweeps/" + strings.Repeat("e", 32), "/sweeps/not-an-id", "/sweeps/..%2F" + sw.ID} {
		if code, _ := get(path); code != http.StatusNotFound {
			t.Errorf("%s answered %d, want 404", path, code)
		}
	}

	// With the login on, someone without a session is sent to log in
	// and learns nothing of the sweep first.
	login := f.serve(t, Options{Sweeps: f.runs, Auth: AuthOAuth, PublicURL: "http://mlbot.example"})
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Get(login.URL + "/sweeps/" + sw.ID)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode == http.StatusOK || strings.Contains(string(b), "0.91") {
		t.Errorf("a visitor without a login got %d:\n%s", res.StatusCode, b)
	}
}
