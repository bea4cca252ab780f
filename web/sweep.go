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

// SweepReader reads the sweeps the sweep page shows; store.Store
// satisfies it.
type SweepReader interface {
	// GetSweep returns the sweep with id, or an error wrapping
	// store.ErrNoSweep when there is none.
	GetSweep(ctx context.Context, id string) (*store.Sweep, error)
}

// sweepPlan is what the sweep page reads of a sweep's plan (the JSON of
// jobs/sweep.Spec, which web does not import).
type sweepPlan struct {
	Metric, Goal, Method string
	Seed                 int64
	Space                []struct{ Param string }
}

// sweepRow is one trial as the sweep page lists it.
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
	var plan sweepPlan
	json.Unmarshal(sw.Spec, &plan) // a plan it cannot read shows no metric
	params := make([]string, 0, len(plan.Space))
	for _, d := range plan.Space {
		params = append(params, d.Param)
	}
	if len(params) == 0 && len(sw.Trials) > 0 {
		for k := range sw.Trials[0].Params {
			params = append(params, k)
		}
		sort.Strings(params)
	}
	rows := make([]sweepRow, 0, len(sw.Trials))
	for _, t := range sw.Trials {
		row := sweepRow{Number: t.Index + 1, Rung: t.Rung, State: "not started"}
		for _, name := range params {
			row.Values = append(row.Values, t.Params[name])
		}
		if t.RunID != "" {
			run, err := s.opts.Runs.GetRun(ctx, t.RunID)
			if err != nil && !errors.Is(err, store.ErrNoRun) {
				s.log.Error("trial run unreadable", "sweep", id, "run", t.RunID, "err", err)
				s.unavailable(w, r, "the run store")
				return
			}
			if run != nil {
				row.Run, row.State = run, runState(run)
				if v, ok := run.Metrics[plan.Metric]; ok && run.HasMetrics() {
					row.value, row.done, row.Metric = v, true, report.FormatNumber(v)
				}
			}
		}
		rows = append(rows, row)
	}
	better := func(a, b float64) bool {
		if plan.Goal == "minimize" {
			return a < b
		}
		return a > b
	}
	// Finished trials first, best first; the others in trial order.
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].done != rows[j].done {
			return rows[i].done
		}
		return rows[i].done && better(rows[i].value, rows[j].value)
	})
	if len(rows) > 0 && rows[0].done {
		rows[0].Best = true
	}
	var charts []svgScatter
	for i, name := range params {
		c := scatter{ID: "param-" + strconv.Itoa(i), Title: plan.Metric + " against " + name, XLabel: name, YLabel: plan.Metric}
		numeric := true
		for _, row := range rows {
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
	}{sw, plan, params, rows, charts, pullRequestURL(sw.Repo, sw.PR), hostURL(sw.Repo, ""), commitURL(sw.Repo, sw.SHA)})
}
