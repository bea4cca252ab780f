package sweep

import (
	"fmt"
	"time"

	"github.com/mlbot/mlbot/jobs/report"
)

// Row is one trial of a sweep's table: its result and what the table says
// about its run.
type Row struct {
	Result
	// Pending is report.TrialQueued, TrialRunning or TrialCancelled for a
	// trial without a result yet ("" once it has one): such rows are not
	// ranked and come after the ranked ones, before the failed.
	Pending string
	// Delta is the metric minus the base's; nil without a base. Low and
	// High bound its 95% confidence interval when CI is set (per-example
	// results of trial and base).
	Delta     *float64
	CI        bool
	Low, High float64
	// Detail says why a failed trial failed, or which gate a done one
	// failed ("" when it passed).
	Detail string
	// Run is the run column: a run id, or the URL of its page.
	Run string
	// Version is the model version the trial registered (0: none).
	Version int
}

// Table is everything a sweep's table shows.
type Table struct {
	// Spec is the sweep.
	Spec Spec
	// Rows are the trials, one a candidate (see Halving.Final), in any
	// order: Report ranks them.
	Rows []Row
	// Planned is the number of candidates the sweep runs in all.
	Planned int
	// Base is the base's value of the metric; nil without a base.
	Base *float64
	// Compute is the training and evaluation time the trials used, summed.
	Compute time.Duration
}

// MethodText describes the spec's method for a table's footer.
func (s Spec) MethodText() string {
	if s.Method == MethodHalving {
		return fmt.Sprintf("successive halving over %s (eta %d)", s.Resource, s.Eta)
	}
	return string(s.Method)
}

// Columns are the parameter columns of the spec's table: the space's
// parameters, and halving's resource.
func (s Spec) Columns() []string {
	params := s.Params()
	if s.Method == MethodHalving {
		params = append(params, s.Resource)
	}
	return params
}

// Report ranks the rows best first (Rank: done, then pruned; then the
// pending ones in trial order; then the failed) and returns the table
// report.SweepTable renders.
func (t Table) Report() report.SweepTable {
	var results []Result
	byKey := make(map[[2]int]Row, len(t.Rows))
	var pending []Row
	for _, r := range t.Rows {
		if r.Pending != "" {
			pending = append(pending, r)
			continue
		}
		results = append(results, r.Result)
		byKey[[2]int{r.Trial.Index, r.Trial.Rung}] = r
	}
	ranked := Rank(results, t.Spec.Goal)
	var ordered []Row
	var failed []Row
	for _, res := range ranked {
		r := byKey[[2]int{res.Trial.Index, res.Trial.Rung}]
		if res.ok() {
			ordered = append(ordered, r)
		} else {
			failed = append(failed, r)
		}
	}
	ordered = append(append(ordered, pending...), failed...)
	cols := t.Spec.Columns()
	out := report.SweepTable{Params: cols, Metric: t.Spec.Metric, Goal: t.Spec.Goal, Method: t.Spec.MethodText(),
		Seed: t.Spec.Seed, Planned: t.Planned, Base: t.Base, Compute: t.Compute}
	for _, r := range ordered {
		row := report.SweepRow{Index: r.Trial.Index, Rung: r.Trial.Rung, Metric: r.Metric, Delta: r.Delta, CI: r.CI,
			Low: r.Low, High: r.High, Passed: r.Passed, Detail: r.Detail, Run: r.Run, Version: r.Version}
		for _, c := range cols {
			row.Values = append(row.Values, r.Trial.Params[c])
		}
		switch {
		case r.Pending != "":
			row.Status = r.Pending
		case r.Status == StatusDone:
			row.Status = report.TrialDone
		case r.Status == StatusPruned:
			row.Status = report.TrialPruned
		default:
			row.Status = report.TrialFailed
		}
		out.Rows = append(out.Rows, row)
	}
	return out
}

// Markdown renders the table best first (see report.SweepTable.Markdown).
func (t Table) Markdown() string { return t.Report().Markdown() }
