package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/jobs/deploystate"
	"github.com/mlbot/mlbot/jobs/registry"
	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/jobs/store"
)

// fixture is a repository's history as the workers leave it in Redis:
// three default-branch runs, a pull request's run that failed its gate,
// two model versions, and deploys to production (one verified, one a
// rollback).
type fixture struct {
	repo                bot.Repo
	baselines           []*store.Run
	pr                  *store.Run
	v1, v2              registry.Version
	deployV1, deployV2  registry.Deploy
	rollback            registry.Deploy
	runs                *store.Store
	reg                 *registry.Registry
	t0                  time.Time
	verificationSamples int
}

func f64(v float64) *float64 { return &v }

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{
		repo: bot.Repo{Forge: "github", FullName: "Acme/Model", DefaultBranch: "main", WebURL: "https://github.com/Acme/Model",
			CloneURL: "https://github.com/Acme/Model.git"},
		runs: store.New(testRedis(t), "mlbot:"),
		reg:  newRegistry(t),
		t0:   time.Now().UTC().Add(-6 * time.Hour).Truncate(time.Second),
	}
	at := func(m int) time.Time { return f.t0.Add(time.Duration(m) * time.Minute) }
	specs := map[string]report.Spec{
		"accuracy": {Goal: report.GoalMaximize, Min: f64(0.8), MaxDrop: f64(0.05)},
		"loss":     {Goal: report.GoalMinimize},
	}
	order := []string{"accuracy", "loss"}
	for i, acc := range []float64{0.85, 0.9, 0.88} {
		r := &store.Run{ID: store.NewID(), Kind: store.KindBaseline, Repo: f.repo, SHA: strings.Repeat(string(rune('a'+i)), 40), Branch: "main",
			State: store.RunFinished, Outcome: report.OutcomePassed, Metrics: map[string]float64{"accuracy": acc, "loss": 0.3},
			Specs: specs, Order: order, Created: at(i * 60), Started: at(i * 60), Finished: at(i * 60).Add(72 * time.Second),
			Train: 60 * time.Second, Evaluate: 12 * time.Second}
		if i > 0 {
			r.BaseRunID, r.BaseSHA = f.baselines[i-1].ID, f.baselines[i-1].SHA
		}
		f.baselines = append(f.baselines, r)
	}
	last := f.baselines[2]
	f.pr = &store.Run{ID: store.NewID(), Kind: store.KindPullRequest, Repo: f.repo, SHA: strings.Repeat("d", 40),
		PR:    &bot.PullRequest{Number: 7, Title: "Train for one epoch", URL: "https://github.com/Acme/Model/pull/7", Author: "alice", HeadSHA: strings.Repeat("d", 40)},
		State: store.RunFinished, Outcome: report.OutcomeGateFailed, Metrics: map[string]float64{"accuracy": 0.82, "loss": 0.35},
		Specs: specs, Order: order, BaseRunID: last.ID, BaseSHA: last.SHA,
		Created: at(200), Started: at(200), Finished: at(200).Add(72*time.Second + 400*time.Millisecond), Train: 12790220 * time.Nanosecond}
	for _, r := range append(append([]*store.Run{}, f.baselines...), f.pr) {
		if err := f.runs.SaveRun(ctx, r); err != nil {
			t.Fatal(err)
		}
	}

	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"model.pt": "weights of the model"})
	key := store.RepoKey(f.repo)
	var err error
	for i, v := range []*registry.Version{&f.v1, &f.v2} {
		b := f.baselines[i]
		if *v, err = f.reg.Record(ctx, registry.Version{Repo: key, RunID: b.ID, SHA: b.SHA, Metrics: b.Metrics, Reason: "push to main",
			Branch: "main", Passed: true, Trusted: true, Created: b.Finished}, dir, []string{"model.pt"}); err != nil {
			t.Fatal(err)
		}
	}
	f.deployV1 = registry.Deploy{ID: registry.NewDeployID(), Repo: key, Env: "production", Version: 1, SHA: f.v1.SHA, Kind: registry.KindMerge,
		State: deploystate.Succeeded, Reason: "merge of #3", Requested: at(5), Started: at(5), Finished: at(6)}
	verification := &registry.Verification{Query: "sum(rate(model_errors_total[5m]))", Max: f64(0.01), Breached: true,
		Reason: "sum(rate(model_errors_total[5m])) = 0.05 > max 0.01"}
	for i, v := range []float64{0.001, 0.002, 0.004, 0.05} {
		verification.AddSamples(registry.Sample{At: at(67 + i), Value: v})
	}
	f.verificationSamples = len(verification.Samples)
	f.deployV2 = registry.Deploy{ID: registry.NewDeployID(), Repo: key, Env: "production", Version: 2, SHA: f.v2.SHA, Kind: registry.KindMerge,
		State: deploystate.RolledBack, Reason: "merge of #5", Detail: "verification failed", Requested: at(65), Started: at(65), Finished: at(71),
		Verification: verification}
	f.rollback = registry.Deploy{ID: registry.NewDeployID(), Repo: key, Env: "production", Version: 1, SHA: f.v1.SHA, Kind: registry.KindRollback,
		State: deploystate.Succeeded, Reason: "automatic rollback from v2", Requested: at(72), Started: at(72), Finished: at(73)}
	for _, d := range []registry.Deploy{f.deployV1, f.deployV2, f.rollback} {
		if err := f.reg.SaveDeploy(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// serve mounts the pages of f's store and registry, with opts' login
// settings.
func (f *fixture) serve(t *testing.T, opts Options) *httptest.Server {
	t.Helper()
	opts.Runs, opts.Logs, opts.Deploys, opts.Models = f.runs, f.runs, f.reg, f.reg
	opts.DataDir = t.TempDir()
	if opts.Sessions == nil {
		opts.Sessions = f.runs
	}
	mux := http.NewServeMux()
	New(opts).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// TestPages opens each page of a repository's history and checks what a
// person comes for: the overview's repositories, environments and runs;
// the repository's chart, versions and deploys; a run's table, gates,
// verdict and host links; a model's metrics, artifacts and where it runs;
// a deploy's verification drawn against its threshold.
func TestPages(t *testing.T) {
	f := newFixture(t)
	srv := f.serve(t, Options{})
	modelV1 := "/models/github/acme/model/1"
	tests := []struct {
		name string
		path string
		want []string
		// points is the number of points each chart of the page draws,
		// in order.
		points  []int
		markers []int
		notWant []string
	}{
		{
			name: "overview", path: "/",
			want: []string{`href="/repos/github/acme/model"`, "Acme/Model", "<b>production</b>", `href="` + modelV1 + `">v1</a>`,
				`href="/runs/` + f.pr.ID + `"`, "#7 Train for one epoch", "gate_failed", "1m 12s"},
		},
		{
			name: "repository", path: "/repos/github/Acme/Model",
			want: []string{"accuracy on the default branch", "min 0.8", "v2 → production (rolled back)", "↩ v1 production",
				`href="` + modelV1 + `"`, "/models/github/acme/model/2", "automatic rollback from v2", "rolled_back",
				`href="https://github.com/Acme/Model"`},
			points:  []int{3},
			markers: []int{3},
		},
		{
			name: "pull request run", path: "/runs/" + f.pr.ID,
			want: []string{
				`id="pr-link" href="https://github.com/Acme/Model/pull/7"`,
				`id="commit-link" href="https://github.com/Acme/Model/commit/` + f.pr.SHA + `"`,
				`href="https://github.com/Acme/Model/commit/` + f.baselines[2].SHA + `"`, `href="/runs/` + f.baselines[2].ID + `"`,
				"accuracy dropped more than allowed",
				`<td class="num">0.88</td><td class="num">0.82</td>`, "−0.06 (−6.82%)", "drop ≤ 0.05 (dropped 0.06)",
				"<b>Verdict: failed</b> — accuracy: drop 0.06 &gt; max_drop 0.05.",
				"took 1m 12s", "train 13ms",
			},
			notWant: []string{"12.79022ms", "1m12.4s"},
		},
		{
			name: "model version", path: modelV1,
			want: []string{"Model v1", "model.pt", "20 B", "<b>production</b></span> since", "/deploys/" + f.rollback.ID,
				`href="/runs/` + f.baselines[0].ID + `"`, "≥ 0.8", "push to main"},
		},
		{
			name: "a version that runs nowhere", path: "/models/github/acme/model/2",
			want: []string{"It runs in no environment now.", "rolled_back"},
		},
		{
			name: "verified deploy", path: "/deploys/" + f.deployV2.ID,
			want: []string{"sum(rate(model_errors_total[5m]))", "at most 0.01", "breached", "max 0.01", "4 samples", "out of bounds",
				`href="/models/github/acme/model/2"`, `href="https://github.com/Acme/Model/commit/` + f.v2.SHA + `"`, "<th>Took</th><td>6m,"},
			points: []int{f.verificationSamples},
		},
	}
	pointsRE := regexp.MustCompile(`data-points="(\d+)" data-markers="(\d+)"`)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := getRunPage(t, srv, tc.path, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s = %d:\n%s", tc.path, resp.StatusCode, body)
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe-inline") {
				t.Errorf("Content-Security-Policy = %q", csp)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("the page does not show %q", w)
				}
			}
			if t.Failed() {
				t.Logf("the page:\n%s", body)
			}
			for _, w := range tc.notWant {
				if strings.Contains(body, w) {
					t.Errorf("the page shows %q", w)
				}
			}
			charts := pointsRE.FindAllStringSubmatch(body, -1)
			if len(charts) != len(tc.points) {
				t.Fatalf("%d charts, want %d", len(charts), len(tc.points))
			}
			for i, c := range charts {
				if c[1] != strconv.Itoa(tc.points[i]) {
					t.Errorf("chart %d has %s points, want %d", i, c[1], tc.points[i])
				}
				if tc.markers != nil && c[2] != strconv.Itoa(tc.markers[i]) {
					t.Errorf("chart %d has %s markers, want %d", i, c[2], tc.markers[i])
				}
				if got := strings.Count(body, `<circle class="point`); got != tc.points[i] && len(charts) == 1 {
					t.Errorf("%d circles drawn, want %d", got, tc.points[i])
				}
			}
		})
	}

	for _, path := range []string{"/repos/github/acme/nothing", "/models/github/acme/model/3", "/models/github/acme/model/x", "/models/github/acme"} {
		if resp, _ := getRunPage(t, srv, path, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, resp.StatusCode)
		}
	}
}
