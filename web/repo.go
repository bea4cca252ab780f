package web

import (
	"context"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/jobs/deploystate"
	"github.com/mlbot/mlbot/jobs/registry"
	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/jobs/store"
)

// Bounds of a repository's page.
const (
	repoRuns    = 50 // runs listed
	repoDeploys = 10 // deploys listed per environment
	repoSweeps  = 20 // sweeps listed
)

// envHistory is an environment with what runs there now and its newest
// deploys.
type envHistory struct {
	Name    string
	Current *registry.Deploy
	Deploys []registry.Deploy
	// More is how many older deploys are not listed.
	More int
}

// versionRow is a model version as a repository's page lists it.
type versionRow struct {
	registry.Version
	// RunsIn names the environments it runs in now.
	RunsIn []string
}

// serveRepo serves GET /repos/{forge}/{path...}: a repository's runs,
// sweeps, metric charts, model versions and environments.
func (s *Server) serveRepo(w http.ResponseWriter, r *http.Request, p *pageData) {
	forge := r.PathValue("forge")
	name := strings.ToLower(strings.Trim(r.PathValue("path"), "/"))
	key := forge + ":" + name
	ctx := r.Context()
	// Someone not logged in with the host logs in before learning
	// whether the repository exists.
	if p.LoginOn && p.session.user(forge) == nil && s.logins[forge] != nil {
		http.Redirect(w, r, loginURL(forge, r), http.StatusFound)
		return
	}
	runs, err := s.opts.Runs.RecentRuns(ctx, key, repoRuns)
	if err != nil {
		s.log.Error("runs unreadable", "repo", key, "err", err)
		s.unavailable(w, r, "the run store")
		return
	}
	versions, err := s.opts.Models.List(ctx, key)
	if err != nil {
		s.log.Error("versions unreadable", "repo", key, "err", err)
		s.unavailable(w, r, "the model registry")
		return
	}
	history, err := s.deployHistory(ctx, key)
	if err != nil {
		s.log.Error("deploys unreadable", "repo", key, "err", err)
		s.unavailable(w, r, "the model registry")
		return
	}
	if len(runs) == 0 && len(versions) == 0 && len(history) == 0 {
		// Someone the host does not let read the repository gets the
		// answer of a repository mlbot serves, so that the page does not
		// tell which private repositories exist.
		if s.allow(w, r, p, repoFromKey(key), true) {
			s.notFound(w, r, "mlbot knows no repository "+name+" on "+forgeTitle(forge))
		}
		return
	}
	repo := repoFromKey(key)
	if len(runs) > 0 {
		repo = runs[0].Repo
	}
	if !s.allow(w, r, p, repo, true) {
		return
	}

	envs := make([]envHistory, 0, len(history))
	var allDeploys []registry.Deploy
	runsIn := map[int][]string{}
	for _, e := range history {
		allDeploys = append(allDeploys, e.Deploys...)
		for i := range e.Deploys {
			if e.Deploys[i].State == deploystate.Succeeded {
				e.Current = &e.Deploys[i]
				runsIn[e.Deploys[i].Version] = append(runsIn[e.Deploys[i].Version], e.Name)
				break
			}
		}
		if len(e.Deploys) > repoDeploys {
			e.More, e.Deploys = len(e.Deploys)-repoDeploys, e.Deploys[:repoDeploys]
		}
		envs = append(envs, e)
	}
	rows := make([]versionRow, 0, len(versions))
	for _, v := range versions {
		rows = append(rows, versionRow{Version: v, RunsIn: runsIn[v.Number]})
	}
	baselines, err := s.opts.Runs.BaselineRuns(ctx, key)
	if err != nil {
		s.log.Error("default-branch runs unreadable", "repo", key, "err", err)
		s.unavailable(w, r, "the run store")
		return
	}
	sweeps, err := s.repoSweeps(r.Context(), key)
	if err != nil {
		s.log.Error("sweeps unreadable", "repo", key, "err", err)
		s.unavailable(w, r, "the run store")
		return
	}
	p.Title = repo.FullName
	p.Crumbs = []crumb{{Title: repo.FullName}}
	s.render(w, r, repoPageTemplate, p, struct {
		Repo     bot.Repo
		Key      string
		HostURL  string
		Charts   []svgChart
		Runs     []*store.Run
		Sweeps   []sweepView
		Versions []versionRow
		Envs     []envHistory
	}{repo, key, hostURL(repo, ""), metricCharts(baselines, allDeploys), runs, sweeps, rows, envs})
}

// deployHistory returns every deploy of repository key, by environment
// in the order the registry lists them, each environment's newest first
// (Current and More not set).
func (s *Server) deployHistory(ctx context.Context, key string) ([]envHistory, error) {
	names, err := s.opts.Models.Environments(ctx, key)
	if err != nil {
		return nil, err
	}
	out := make([]envHistory, 0, len(names))
	for _, env := range names {
		hist, err := s.opts.Models.Deploys(ctx, key, env)
		if err != nil {
			return nil, err
		}
		out = append(out, envHistory{Name: env, Deploys: hist})
	}
	return out, nil
}

// repoSweeps returns the newest repoSweeps sweeps of repository key with
// their trials ranked, newest first; none without a SweepReader.
func (s *Server) repoSweeps(ctx context.Context, key string) ([]sweepView, error) {
	if s.opts.Sweeps == nil {
		return nil, nil
	}
	sweeps, err := s.opts.Sweeps.RecentSweeps(ctx, key, repoSweeps)
	if err != nil {
		return nil, err
	}
	runs, err := s.trialRuns(ctx, sweeps...)
	if err != nil {
		return nil, err
	}
	out := make([]sweepView, 0, len(sweeps))
	for _, sw := range sweeps {
		out = append(out, newSweepView(sw, runs))
	}
	return out, nil
}

// metricCharts draws each gated metric over the default branch's runs,
// with the deploys and rollbacks of every environment marked. Which
// metrics are gated, and their gates, are those of the newest run that
// has its .mlbot.yml's metrics.
func metricCharts(baselines []*store.Run, deploys []registry.Deploy) []svgChart {
	names, specs := gatedMetrics(baselines)
	markers := deployMarkers(deploys)
	var out []svgChart
	for i, name := range names {
		c := metricChart(name, specs[name], baselines, markers)
		c.ID = "chart-" + strconv.Itoa(i)
		out = append(out, c.layout())
	}
	return out
}

// gatedMetrics returns the names of the gated metrics in the order the
// newest run with metric specs lists them (then by name), with the specs.
func gatedMetrics(runs []*store.Run) ([]string, map[string]report.Spec) {
	var specs map[string]report.Spec
	var order []string
	for i := len(runs) - 1; i >= 0; i-- {
		if len(runs[i].Specs) > 0 {
			specs, order = runs[i].Specs, runs[i].Order
			break
		}
	}
	var names []string
	seen := map[string]bool{}
	gated := func(n string) bool {
		sp, ok := specs[n]
		return ok && (sp.Min != nil || sp.Max != nil || sp.MaxDrop != nil)
	}
	for _, n := range order {
		if gated(n) && !seen[n] {
			names, seen[n] = append(names, n), true
		}
	}
	var rest []string
	for n := range specs {
		if gated(n) && !seen[n] {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	return append(names, rest...), specs
}

// deployMarkers marks every deploy whose command ran, also when its
// verification rolled it back, and every rollback as one.
func deployMarkers(deploys []registry.Deploy) []chartMarker {
	var markers []chartMarker
	for _, d := range deploys {
		if (d.State != deploystate.Succeeded && d.State != deploystate.RolledBack) || d.Finished.IsZero() {
			continue
		}
		m := chartMarker{At: d.Finished, Kind: "deploy", Label: "v" + strconv.Itoa(d.Version) + " → " + d.Env, Href: "/deploys/" + d.ID}
		switch {
		case d.Kind == registry.KindRollback:
			m.Kind, m.Label = "rollback", "↩ v"+strconv.Itoa(d.Version)+" "+d.Env
		case d.State == deploystate.RolledBack:
			m.Label += " (rolled back)"
		}
		markers = append(markers, m)
	}
	return markers
}

// metricChart draws metric name over runs (oldest first), with its gate's
// bounds as lines.
func metricChart(name string, sp report.Spec, runs []*store.Run, markers []chartMarker) chart {
	c := chart{Title: name + " on the default branch", Markers: markers}
	for _, run := range runs {
		if p, ok := runPoint(run, name, sp); ok {
			c.Points = append(c.Points, p)
		}
	}
	if sp.Min != nil {
		c.Lines = append(c.Lines, chartLine{Value: *sp.Min, Label: "min " + report.FormatNumber(*sp.Min)})
	}
	if sp.Max != nil {
		c.Lines = append(c.Lines, chartLine{Value: *sp.Max, Label: "max " + report.FormatNumber(*sp.Max)})
	}
	return c
}

// runPoint is run's value of metric name as a chart point, false when the
// run has none.
func runPoint(run *store.Run, name string, sp report.Spec) (chartPoint, bool) {
	v, ok := run.Metrics[name]
	if !ok || !run.HasMetrics() {
		return chartPoint{}, false
	}
	at := run.Finished
	if at.IsZero() {
		at = run.Created
	}
	label := shortSHA(run.SHA)
	if run.Branch != "" {
		label += " on " + run.Branch
	}
	return chartPoint{At: at, Value: v, Label: label, Href: "/runs/" + run.ID,
		Bad: (sp.Min != nil && v < *sp.Min) || (sp.Max != nil && v > *sp.Max)}, true
}
