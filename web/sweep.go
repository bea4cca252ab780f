package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strconv"

	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/jobs/store"
)

// SweepReader reads the sweeps the sweep page and the repository's page
// show; store.Store satisfies it.
type SweepReader interface {
	// GetSweep returns the sweep with id, or an error wrapping
	// store.ErrNoSweep when there is none.
	GetSweep(ctx context.Context, id string) (*store.Sweep, error)
	// RecentSweeps returns the kept sweeps among the newest n of a
	// repository (a store.RepoKey), newest first.
	RecentSweeps(ctx context.Context, repo string, n int) ([]*store.Sweep, error)
}

// sweepPlan is what the pages read of a sweep's plan (the JSON of
// jobs/sweep.Spec, which web does not import).
type sweepPlan struct {
	Metric, Goal, Method string
	Seed                 int64
	Space                []struct{ Param string }
}

// sweepRow is one trial as the pages list it.
type sweepRow struct {
	// Number counts trials from 1; Rung is a halving rung.
	Number, Rung int
	Values       []string
	// State is the run's outcome, or its state while it has none, or
	// "not started".
	State  string
	Metric string
	Run    *store.Run
	Best   bool
	value  float64
	done   bool
}

// sweepView is a sweep with its trials read and ranked.
type sweepView struct {
	Sweep *store.Sweep
	Plan  sweepPlan
	// Params are the parameters' names, in the plan's order.
	Params []string
	// Rows are the trials: those with the metric first, best first, then
	// the others in trial order.
	Rows []sweepRow
	// Finished counts the trials whose runs finished, whatever their
	// outcome.
	Finished int
}

// Best is the best trial, nil while none has the metric.
func (v sweepView) Best() *sweepRow {
	if len(v.Rows) > 0 && v.Rows[0].Best {
		return &v.Rows[0]
	}
	return nil
}

// BestParams are the best trial's parameters as "name=value", in the
// plan's order.
func (v sweepView) BestParams() []string {
	b := v.Best()
	if b == nil {
		return nil
	}
	out := make([]string, len(v.Params))
	for i, name := range v.Params {
		out[i] = name + "=" + b.Values[i]
	}
	return out
}

// Progress is the sweep's state as its pages show it: "running k/N"
// (N the trials planned so far), "done" or "cancelled".
func (v sweepView) Progress() string {
	switch v.Sweep.State {
	case store.SweepFinished:
		return "done"
	case store.SweepCancelled:
		return "cancelled"
	}
	return "running " + strconv.Itoa(v.Finished) + "/" + strconv.Itoa(max(len(v.Sweep.Trials), v.Sweep.Planned))
}

// trialRuns reads the runs of the trials of sweeps in one round trip, by
// id; runs whose records expired are missing.
func (s *Server) trialRuns(ctx context.Context, sweeps ...*store.Sweep) (map[string]*store.Run, error) {
	var ids []string
	for _, sw := range sweeps {
		for _, t := range sw.Trials {
			if t.RunID != "" {
				ids = append(ids, t.RunID)
			}
		}
	}
	runs, err := s.opts.Runs.GetRuns(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*store.Run, len(runs))
	for _, r := range runs {
		out[r.ID] = r
	}
	return out, nil
}

// newSweepView ranks sw's trials by their runs: those with the plan's
// metric first, best first by its goal, then the others in trial order.
func newSweepView(sw *store.Sweep, runs map[string]*store.Run) sweepView {
	v := sweepView{Sweep: sw}
	json.Unmarshal(sw.Spec, &v.Plan) // a plan it cannot read shows no metric
	for _, d := range v.Plan.Space {
		v.Params = append(v.Params, d.Param)
	}
	if len(v.Params) == 0 && len(sw.Trials) > 0 {
		for k := range sw.Trials[0].Params {
			v.Params = append(v.Params, k)
		}
		sort.Strings(v.Params)
	}
	v.Rows = make([]sweepRow, 0, len(sw.Trials))
	for _, t := range sw.Trials {
		row := sweepRow{Number: t.Index + 1, Rung: t.Rung, State: "not started"}
		for _, name := range v.Params {
			row.Values = append(row.Values, t.Params[name])
		}
		if run := runs[t.RunID]; t.RunID != "" && run != nil {
			row.Run, row.State = run, runState(run)
			if run.State == store.RunFinished {
				v.Finished++
			}
			if m, ok := run.Metrics[v.Plan.Metric]; ok && run.HasMetrics() {
				row.value, row.done, row.Metric = m, true, report.FormatNumber(m)
			}
		}
		v.Rows = append(v.Rows, row)
	}
	better := func(a, b float64) bool {
		if v.Plan.Goal == "minimize" {
			return a < b
		}
		return a > b
	}
	sort.SliceStable(v.Rows, func(i, j int) bool {
		if v.Rows[i].done != v.Rows[j].done {
			return v.Rows[i].done
		}
		return v.Rows[i].done && better(v.Rows[i].value, v.Rows[j].value)
	})
	if len(v.Rows) > 0 && v.Rows[0].done {
		v.Rows[0].Best = true
	}
	return v
}

// serveSweep serves GET /sweeps/{id}: a sweep's trials ranked best first,
// with their parameters, metric and runs, and the metric drawn against
// each numeric parameter.
func (s *Server) serveSweep(w http.ResponseWriter, r *http.Request, p *pageData) {
	id := r.PathValue("id")
	if !idPattern.MatchString(id) || s.opts.Sweeps == nil {
		s.notFound(w, r, "no such sweep")
		return
	}
	ctx := r.Context()
	sw, err := s.opts.Sweeps.GetSweep(ctx, id)
	if errors.Is(err, store.ErrNoSweep) {
		if p.LoginOn && len(p.Users) == 0 {
			// Whoever is not logged in learns nothing before they are.
			http.Redirect(w, r, p.LoginHref, http.StatusFound)
			return
		}
		s.notFound(w, r, "no such sweep: sweeps are kept for 90 days")
		return
	}
	if err != nil {
		s.log.Error("sweep unreadable", "id", id, "err", err)
		s.unavailable(w, r, "the run store")
		return
	}
	if !s.allow(w, r, p, sw.Repo, true) {
		return
	}
	runs, err := s.trialRuns(ctx, sw)
	if err != nil {
		s.log.Error("trial runs unreadable", "sweep", id, "err", err)
		s.unavailable(w, r, "the run store")
		return
	}
	v := newSweepView(sw, runs)
	var charts []svgScatter
	for i, name := range v.Params {
		c := scatter{ID: "param-" + strconv.Itoa(i), Title: v.Plan.Metric + " against " + name, XLabel: name, YLabel: v.Plan.Metric}
		numeric := true
		for _, row := range v.Rows {
			if !row.done {
				continue
			}
			x, err := strconv.ParseFloat(row.Values[i], 64)
			if err != nil {
				numeric = false // strings and booleans are not drawn
				break
			}
			c.Points = append(c.Points, scatterPoint{X: x, Y: row.value, Best: row.Best,
				Label: "trial " + strconv.Itoa(row.Number), Href: "/runs/" + row.Run.ID})
		}
		if numeric {
			charts = append(charts, c.layout())
		}
	}
	p.Title = "Sweep of " + sw.Repo.FullName
	p.Crumbs = []crumb{{Title: sw.Repo.FullName, Href: repoHref(sw.Repo)}, {Title: "sweep " + shortSHA(sw.SHA)}}
	s.render(w, r, sweepPageTemplate, p, struct {
		Sweep          *store.Sweep
		Plan           sweepPlan
		Params         []string
		Rows           []sweepRow
		Charts         []svgScatter
		PRURL, HostURL string
		CommitURL      string
	}{sw, v.Plan, v.Params, v.Rows, charts, pullRequestURL(sw.Repo, sw.PR), hostURL(sw.Repo, ""), commitURL(sw.Repo, sw.SHA)})
}
