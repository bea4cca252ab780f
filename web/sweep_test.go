package web

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mlbot/mlbot/bot"
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

// TestRepoPageListsSweeps opens a repository's page as people the host
// lets read it and as someone it does not: a reader sees each sweep with
// its pull request, state, method, trials and best trial, linking its
// page; what .mlbot.yml and the pull request named (parameters, metric,
// method, title, a cancelled sweep's detail, the pull request's URL) is
// shown as text, never as markup or a script link; someone who may not
// read the repository learns nothing of its sweeps.
func TestRepoPageListsSweeps(t *testing.T) {
	lf := newLoginFixture(t)
	ctx := context.Background()
	const (
		evilParam = `x"><script>alert(1)</script>`
		evilValue = `<img src=x onerror=alert(2)>`
		evilTitle = `<script>alert(3)</script>`
	)
	t0 := time.Now().UTC().Add(-time.Hour)
	type trial struct {
		lr, other string
		state     store.RunState
		acc       float64
	}
	// save stores a sweep of pull request pr whose trials' runs end as
	// states says ("" leaves a trial not started), scoring accuracy.
	save := func(pr *bot.PullRequest, state store.SweepState, detail, spec string, at time.Time, trials ...trial) *store.Sweep {
		t.Helper()
		sw := &store.Sweep{ID: store.NewID(), Repo: lf.repo, PR: pr, SHA: pr.HeadSHA, Planned: len(trials), State: state, Detail: detail,
			Spec: []byte(spec), Created: at}
		for i, tr := range trials {
			st := store.SweepTrial{Index: i, Params: map[string]string{"lr": tr.lr, evilParam: tr.other}}
			if tr.state != "" {
				run := &store.Run{ID: store.NewID(), Kind: store.KindPullRequest, Repo: lf.repo, SHA: sw.SHA, PR: pr, State: tr.state,
					Params: st.Params, Sweep: sw.ID, Trial: i, Created: at}
				if tr.state == store.RunFinished {
					run.Outcome, run.Metrics, run.Specs, run.Order = report.OutcomePassed, map[string]float64{"accuracy": tr.acc, "acc<b>uracy": tr.acc}, lf.pr.Specs, lf.pr.Order
				}
				if err := lf.runs.SaveRun(ctx, run); err != nil {
					t.Fatal(err)
				}
				st.RunID = run.ID
			}
			sw.Trials = append(sw.Trials, st)
		}
		if err := lf.runs.SaveSweep(ctx, sw); err != nil {
			t.Fatal(err)
		}
		return sw
	}
	specOf := func(method, metric string) string {
		b, _ := json.Marshal(map[string]any{"Space": []map[string]string{{"Param": "lr"}, {"Param": evilParam}},
			"Metric": metric, "Goal": "maximize", "Method": method})
		return string(b)
	}
	evilPR := &bot.PullRequest{Number: 8, Title: evilTitle, URL: "javascript:alert(4)", HeadSHA: strings.Repeat("f", 40)}
	done := save(lf.pr.PR, store.SweepFinished, "", specOf("grid", "accuracy"), t0,
		trial{"0.05", "a", store.RunFinished, 0.84}, trial{"0.1", evilValue, store.RunFinished, 0.91})
	cancelled := save(lf.pr.PR, store.SweepCancelled, `superseded by "><script>alert(5)</script>`, specOf("random", "accuracy"), t0.Add(time.Minute),
		trial{"0.2", "b", store.RunFinished, 0.8}, trial{"0.3", "c", "", 0})
	running := save(evilPR, store.SweepRunning, "", specOf(`halving<script>alert(6)</script>`, `acc<b>uracy`), t0.Add(2*time.Minute),
		trial{"0.1", "d", store.RunFinished, 0.7}, trial{"0.2", "e", store.RunRunning, 0}, trial{"0.3", "f", "", 0})

	b := lf.browser(t, "wendy")
	b.visit(lf.srv.URL + "/login/github?next=%2F")
	resp, body := b.visit(lf.srv.URL + "/repos/github/acme/model")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the repository page answered %d:\n%s", resp.StatusCode, body)
	}
	table := regexp.MustCompile(`(?s)<table class="list" id="sweeps">.*?</table>`).FindString(body)
	rows := regexp.MustCompile(`(?s)<tr class="sweep" id="sweep-([0-9a-f]{32})">(.*?)</tr>`).FindAllStringSubmatch(table, -1)
	if len(rows) != 3 || rows[0][1] != running.ID || rows[1][1] != cancelled.ID || rows[2][1] != done.ID {
		t.Fatalf("sweep rows %v, want the running, cancelled and finished sweeps, newest first:\n%s", rows, body)
	}
	for i, want := range [][]string{
		{`href="/sweeps/` + running.ID + `"`, "running 1/3", `href="https://github.com/Acme/Model/pull/8">#8</a>`, `<td class="num">3</td>`,
			"<code>acc&lt;b&gt;uracy</code> 0.7", "<code>lr=0.1</code>"},
		{`href="/sweeps/` + cancelled.ID + `"`, ">cancelled<", "random", `href="https://github.com/Acme/Model/pull/7">#7</a> Train for one epoch`,
			`<td class="num">2</td>`, `href="/sweeps/` + cancelled.ID + `#best">trial 1</a>`},
		{`href="/sweeps/` + done.ID + `"`, ">done<", "<td>grid</td>", `<td class="num">2</td>`,
			`href="/sweeps/` + done.ID + `#best">trial 2</a>: <code>accuracy</code> 0.91`, "<code>lr=0.1</code>",
			"<code>x&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;=&lt;img src=x onerror=alert(2)&gt;</code>"},
	} {
		for _, w := range want {
			if !strings.Contains(rows[i][2], w) {
				t.Errorf("sweep row %d lacks %q:\n%s", i, w, rows[i][2])
			}
		}
	}
	// Hostile names are text: no element, attribute or script link of
	// theirs reaches the page.
	for _, bad := range []string{"<script>alert", "<img src=x", "javascript:", "<b>uracy", `"><script`} {
		if strings.Contains(body, bad) {
			t.Errorf("the repository page carries %q unescaped:\n%s", bad, table)
		}
	}
	for _, want := range []string{"&lt;script&gt;alert(3)&lt;/script&gt;", "halving&lt;script&gt;alert(6)", `title="superseded by &#34;&gt;&lt;script&gt;alert(5)`} {
		if !strings.Contains(table, want) {
			t.Errorf("the sweeps table lacks the escaped %q:\n%s", want, table)
		}
	}

	// Someone the host does not let read the repository gets what a
	// missing page gets, with nothing of its sweeps.
	m := lf.browser(t, "mallory")
	m.visit(lf.srv.URL + "/login/github?next=%2F")
	for _, path := range []string{"/repos/github/acme/model", "/sweeps/" + done.ID} {
		resp, body := m.visit(lf.srv.URL + path)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s as mallory = %d, want 404", path, resp.StatusCode)
		}
		for _, secret := range []string{done.ID, running.ID, "0.91", "lr=", "grid", "Sweeps"} {
			if strings.Contains(body, secret) {
				t.Errorf("GET %s refused mallory but shows %q:\n%s", path, secret, body)
			}
		}
	}
}
