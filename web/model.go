package web

import (
	"errors"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/mlbot/mlbot/jobs/deploystate"
	"github.com/mlbot/mlbot/jobs/registry"
	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/jobs/store"
)

// modelPage is what a model version's page shows.
type modelPage struct {
	V *registry.Version
	// Run is the run that made the version (nil once it expired).
	Run *store.Run
	// Metrics are the version's metrics with their gates, in the run's
	// order.
	Metrics []metricRow
	// RunsIn are the environments it runs in now; Deploys every deploy of
	// it that is kept.
	RunsIn  []registry.Deploy
	Deploys []registry.Deploy
	// CommitURL and PRURL link to the host.
	CommitURL, PRURL string
}

// metricRow is a metric of a version with its gates.
type metricRow struct {
	Name, Value, Goal string
	Gates             []report.GateCell
}

// serveModel serves GET /models/{forge}/{path...}/{version}: a model
// version's metrics, artifacts, how it was made and where it runs.
func (s *Server) serveModel(w http.ResponseWriter, r *http.Request, p *pageData) {
	forge := r.PathValue("forge")
	full := strings.Trim(r.PathValue("path"), "/")
	name, num := path.Split(full)
	name = strings.ToLower(strings.TrimSuffix(name, "/"))
	number, err := strconv.Atoi(num)
	if err != nil || number < 1 || name == "" {
		s.notFound(w, r, "a model's page is /models/<forge>/<owner>/<name>/<version>")
		return
	}
	if p.LoginOn && p.session.user(forge) == nil && s.logins[forge] != nil {
		http.Redirect(w, r, loginURL(forge, r), http.StatusFound)
		return
	}
	key := forge + ":" + name
	ctx := r.Context()
	v, err := s.opts.Models.Get(ctx, key, number)
	if errors.Is(err, registry.ErrNotFound) {
		// As for a version that exists: only a reader learns it does not.
		if s.allow(w, r, p, repoFromKey(key), true) {
			s.notFound(w, r, "no version "+num+" of "+name+" on "+forgeTitle(forge))
		}
		return
	}
	if err != nil {
		s.log.Error("version unreadable", "repo", key, "version", number, "err", err)
		s.unavailable(w, r, "the model registry")
		return
	}
	pg := modelPage{V: v}
	if v.RunID != "" {
		if run, err := s.opts.Runs.GetRun(ctx, v.RunID); err == nil {
			pg.Run = run
		} else if !errors.Is(err, store.ErrNoRun) {
			s.log.Error("run unreadable", "id", v.RunID, "err", err)
			s.unavailable(w, r, "the run store")
			return
		}
	}
	repo := repoFromKey(key)
	if pg.Run != nil {
		repo = pg.Run.Repo
	}
	if !s.allow(w, r, p, repo, true) {
		return
	}
	envs, err := s.opts.Models.Environments(ctx, key)
	if err != nil {
		s.log.Error("environments unreadable", "repo", key, "err", err)
		s.unavailable(w, r, "the model registry")
		return
	}
	for _, env := range envs {
		hist, err := s.opts.Models.Deploys(ctx, key, env)
		if err != nil {
			s.log.Error("deploys unreadable", "repo", key, "err", err)
			s.unavailable(w, r, "the model registry")
			return
		}
		current := true
		for _, d := range hist {
			if d.State == deploystate.Succeeded && current {
				current = false
				if d.Version == number {
					pg.RunsIn = append(pg.RunsIn, d)
				}
			}
			if d.Version == number {
				pg.Deploys = append(pg.Deploys, d)
			}
		}
	}
	sort.SliceStable(pg.Deploys, func(i, j int) bool { return pg.Deploys[i].Requested.After(pg.Deploys[j].Requested) })
	pg.Metrics = versionMetrics(v, pg.Run)
	pg.CommitURL = commitURL(repo, v.SHA)
	if pg.Run != nil {
		pg.PRURL = pullRequestURL(repo, pg.Run.PR)
	}
	p.Title = "Model v" + num + " of " + repo.FullName
	p.Crumbs = []crumb{{Title: repo.FullName, Href: repoHref(repo)}, {Title: "model v" + num}}
	s.render(w, r, modelPageTemplate, p, pg)
}

// versionMetrics lists v's metrics with the gates of the run that made
// it (when it is still kept): the comment's rows without a base.
func versionMetrics(v *registry.Version, run *store.Run) []metricRow {
	var (
		specs map[string]report.Spec
		order []string
	)
	if run != nil {
		specs, order = run.Specs, run.Order
	}
	d := report.ViewOf(report.Comment{Outcome: report.OutcomePassed, Diff: report.Compute(nil, v.Metrics, specs, order)})
	out := make([]metricRow, 0, len(d.Rows))
	for _, r := range d.Rows {
		out = append(out, metricRow{Name: r.Name, Value: r.Head, Goal: r.Goal, Gates: r.Gates})
	}
	return out
}
