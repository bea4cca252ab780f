package sweep

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Row is one trial of a sweep's table: its result and what the table says
// about its run.
type Row struct {
	Result
	// Delta is the metric minus the base's; nil without a base.
	Delta *float64
	// Detail says why a failed trial failed, or which gate a done one
	// failed ("" when it passed).
	Detail string
	// Run is the run column: a run id, or a markdown link to its page.
	Run string
}

// Table is everything a sweep's table shows.
type Table struct {
	// Spec is the sweep.
	Spec Spec
	// Rows are the trials, one a candidate (see Halving.Final), in any
	// order: Markdown ranks them.
	Rows []Row
	// Planned is the number of candidates the sweep runs in all.
	Planned int
	// Base is the base's value of the metric; nil without a base.
	Base *float64
	// Compute is the training and evaluation time the trials used, summed.
	Compute time.Duration
}

// Markdown renders the table best first: "# | params… | metric | Δ vs
// base | gates | run", the best trial in bold and marked, the pruned and
// failed at the bottom, then a footer with the method, seed, the trials
// done, pruned and failed, the compute time, and the warning that the
// best of N trials is optimistically biased on the test set it was
// chosen on.
func (t Table) Markdown() string {
	results := make([]Result, len(t.Rows))
	byIndex := make(map[int]Row, len(t.Rows))
	for i, r := range t.Rows {
		results[i] = r.Result
		byIndex[r.Trial.Index] = r
	}
	ranked := Rank(results, t.Spec.Goal)
	var b strings.Builder
	params := t.Spec.Params()
	if t.Spec.Method == MethodHalving {
		params = append(params, t.Spec.Resource)
	}
	b.WriteString("| # | " + strings.Join(params, " | ") + " | " + t.Spec.Metric + " | Δ vs base | gates | run |\n")
	b.WriteString("| ---: |" + strings.Repeat(" ---: |", len(params)) + " ---: | ---: | :--- | :--- |\n")
	var done, pruned, failed int
	for i, res := range ranked {
		r := byIndex[res.Trial.Index]
		num := strconv.Itoa(res.Trial.Index + 1)
		best := i == 0 && res.Status == StatusDone
		if best {
			num = "**" + num + "** 🏆"
		}
		cells := []string{num}
		for _, p := range params {
			cells = append(cells, "`"+res.Trial.Params[p]+"`")
		}
		metric, delta, gates := "—", "—", ""
		switch res.Status {
		case StatusDone:
			done++
			metric = formatMetric(res.Metric)
			gates = "✅"
			if !res.Passed {
				gates = "❌ " + r.Detail
			}
		case StatusPruned:
			pruned++
			metric = formatMetric(res.Metric)
			gates = fmt.Sprintf("✂️ pruned at rung %d", res.Trial.Rung+1)
		default:
			failed++
			gates = "💥 failed"
			if r.Detail != "" {
				gates += ": " + r.Detail
			}
		}
		if res.Status != StatusFailed && r.Delta != nil {
			delta = fmt.Sprintf("%+.4f", *r.Delta)
		}
		if best {
			metric = "**" + metric + "**"
		}
		cells = append(cells, metric, delta, strings.ReplaceAll(gates, "|", "\\|"), r.Run)
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	b.WriteString("\n")
	method := string(t.Spec.Method)
	if t.Spec.Method == MethodHalving {
		method = fmt.Sprintf("successive halving over %s (eta %d)", t.Spec.Resource, t.Spec.Eta)
	}
	base := "no base to compare with"
	if t.Base != nil {
		base = t.Spec.Metric + " " + formatMetric(*t.Base) + " on the base"
	}
	fmt.Fprintf(&b, "Method %s, seed %d, %s %s · %d/%d trials done, %d pruned, %d failed · compute %s · %s\n\n",
		method, t.Spec.Seed, t.Spec.Goal, t.Spec.Metric, done, t.Planned, pruned, failed, t.Compute.Round(100*time.Millisecond), base)
	fmt.Fprintf(&b, "⚠️ The best of %d trials is optimistically biased on the test set it was chosen on: confirm it on data the sweep did not see before trusting its gain.\n", t.Planned)
	return b.String()
}

func formatMetric(v float64) string {
	return strconv.FormatFloat(v, 'f', 4, 64)
}
