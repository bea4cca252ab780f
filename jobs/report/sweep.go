package report

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SweepMarker starts mlbot's sweep comment on a pull request, the second
// sticky comment beside Marker's: found by it and edited as trials finish.
const SweepMarker = "<!-- mlbot:sweep -->"

// Trial statuses a sweep's table shows.
const (
	TrialDone      = "done"
	TrialPruned    = "pruned"
	TrialFailed    = "failed"
	TrialQueued    = "queued"
	TrialRunning   = "running"
	TrialCancelled = "cancelled"
)

// SweepRow is one trial of a sweep's table.
type SweepRow struct {
	// Index numbers the trial from 0 (shown from 1); Rung is its halving
	// rung.
	Index, Rung int
	// Values are the trial's parameter values, in SweepTable.Params order.
	Values []string
	// Status is one of the Trial* constants.
	Status string
	// Metric is the ranked metric's value (done and pruned trials).
	Metric float64
	// Delta is Metric minus the base's; nil without a base. Low and High
	// bound its 95% confidence interval where per-example results of both
	// runs exist (CI set).
	Delta     *float64
	CI        bool
	Low, High float64
	// Passed reports whether a done trial passed every gate; Detail says
	// which failed, or why a trial failed.
	Passed bool
	Detail string
	// Run is the run column: a run id, or a URL of its page.
	Run string
	// Version is the model version the trial registered (0: none).
	Version int
}

// SweepTable is everything a sweep's table shows. Rows come ranked best
// first (finished trials, then pruned, queued and running, then failed
// and cancelled); the first done row is the best.
type SweepTable struct {
	// Params are the parameter columns.
	Params []string
	// Metric is the ranked metric and Goal its goal.
	Metric, Goal string
	// Method describes the method ("grid", "successive halving over
	// epochs (eta 3)"); Seed is the sweep's seed.
	Method string
	Seed   int64
	// Planned is the number of candidates.
	Planned int
	Rows    []SweepRow
	// Base is the base's value of the metric; nil without a base.
	Base *float64
	// Compute is the training and evaluation time the trials used.
	Compute time.Duration
}

// Markdown renders the table: "# | params… | metric | Δ vs base (95% CI)
// | gates | run", the best trial in bold and marked, then a footer with
// the method, seed, the trials done, pruned and failed, the compute time,
// and the warning that the best of N trials is optimistically biased on
// the test set it was chosen on.
func (t SweepTable) Markdown() string {
	var b strings.Builder
	params := make([]string, len(t.Params))
	for i, p := range t.Params {
		params[i] = codeSpan(p, true)
	}
	metricName := codeSpan(t.Metric, true)
	b.WriteString("| # | " + strings.Join(params, " | ") + " | " + metricName + " | Δ vs base (95% CI) | gates | run |\n")
	b.WriteString("| ---: |" + strings.Repeat(" ---: |", len(params)) + " ---: | ---: | :--- | :--- |\n")
	var done, pruned, failed int
	best := -1
	for i, r := range t.Rows {
		if r.Status == TrialDone {
			best = i
			break
		}
	}
	for i, r := range t.Rows {
		num := strconv.Itoa(r.Index + 1)
		if i == best {
			num = "**" + num + "** 🏆"
		}
		cells := []string{num}
		for _, v := range r.Values {
			cells = append(cells, codeSpan(v, true))
		}
		metric, delta, gates := "—", "—", ""
		switch r.Status {
		case TrialDone:
			done++
			metric = formatSweepMetric(r.Metric)
			gates = "✅"
			if !r.Passed {
				gates = "❌ " + inlineText(r.Detail, 200)
			}
		case TrialPruned:
			pruned++
			metric = formatSweepMetric(r.Metric)
			gates = fmt.Sprintf("✂️ pruned at rung %d", r.Rung+1)
		case TrialQueued:
			gates = "⏳ queued"
		case TrialRunning:
			gates = "🏃 running"
		case TrialCancelled:
			gates = "🚫 cancelled"
		default:
			failed++
			gates = "💥 failed"
			if r.Detail != "" {
				gates += ": " + inlineText(r.Detail, 200)
			}
		}
		if (r.Status == TrialDone || r.Status == TrialPruned) && r.Delta != nil {
			delta = fmt.Sprintf("%+.4f", *r.Delta)
			if r.CI {
				delta += fmt.Sprintf(" [%+.4f, %+.4f]", r.Low, r.High)
			}
		}
		if i == best {
			metric = "**" + metric + "**"
		}
		run := inlineText(r.Run, 200)
		if strings.HasPrefix(r.Run, "http://") || strings.HasPrefix(r.Run, "https://") {
			run = "[run](" + strings.NewReplacer("(", "%28", ")", "%29", " ", "%20", "|", "%7C").Replace(r.Run) + ")"
		}
		if r.Version > 0 {
			run += fmt.Sprintf(" · v%d", r.Version)
		}
		cells = append(cells, metric, delta, gates, run)
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	b.WriteString("\n")
	base := "no base to compare with"
	if t.Base != nil {
		base = metricName + " " + formatSweepMetric(*t.Base) + " on the base"
	}
	fmt.Fprintf(&b, "Method %s, seed %d, %s %s · %d/%d trials done, %d pruned, %d failed · compute %s · %s\n\n",
		inlineText(t.Method, 200), t.Seed, t.Goal, metricName, done, t.Planned, pruned, failed, t.Compute.Round(100*time.Millisecond), base)
	fmt.Fprintf(&b, "⚠️ The best of %d trials is optimistically biased on the test set it was chosen on: confirm it on data the sweep did not see before trusting its gain.\n", t.Planned)
	return b.String()
}

// SweepComment is mlbot's sweep comment on a pull request.
type SweepComment struct {
	// HeadSHA is the commit the trials train.
	HeadSHA string
	// State is "running", "finished" or "cancelled"; Detail says why a
	// sweep was cancelled.
	State, Detail string
	// Finished is the number of trials finished (any outcome), Total the
	// number planned so far.
	Finished, Total int
	Table           SweepTable
	// PageURL is the sweep's page on mlbot ("" links none).
	PageURL string
}

// RenderSweep renders the sweep comment, starting with SweepMarker.
func RenderSweep(c SweepComment) string {
	var b strings.Builder
	b.WriteString(SweepMarker + "\n")
	sha := c.HeadSHA
	if len(sha) > 7 {
		sha = sha[:7]
	}
	sha = inlineText(sha, 40)
	switch c.State {
	case "cancelled":
		fmt.Fprintf(&b, "### 🚫 mlbot sweep of `%s`: cancelled (%d/%d done)\n\n", sha, c.Finished, c.Total)
	case "finished":
		fmt.Fprintf(&b, "### mlbot sweep of `%s`: %d/%d done\n\n", sha, c.Finished, c.Total)
	default:
		fmt.Fprintf(&b, "### ⏳ mlbot sweep of `%s`: %d/%d done\n\n", sha, c.Finished, c.Total)
	}
	b.WriteString(RenderSweepCheck(c))
	return b.String()
}

// RenderSweepCheck renders the summary of the sweep's check run: the
// sweep comment without its marker and heading, which the check run's
// name and title stand for.
func RenderSweepCheck(c SweepComment) string {
	var b strings.Builder
	if c.State == "cancelled" && c.Detail != "" {
		b.WriteString("Cancelled: " + inlineText(c.Detail, 300) + ". Trials still queued or running were stopped.\n\n")
	}
	b.WriteString(c.Table.Markdown())
	if u := safeURL(c.PageURL); u != "" {
		b.WriteString("\n[Sweep page: every trial, and the metric against each parameter](" + u + ")\n")
	}
	return b.String()
}

func formatSweepMetric(v float64) string {
	return strconv.FormatFloat(v, 'f', 4, 64)
}
