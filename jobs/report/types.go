// Package report turns a run's metrics into what reviewers read: flattened
// metrics, a diff against the base run with gates, and the markdown comment.
// It does no I/O beyond reading metric files from a workspace.
package report

import "time"

// Marker is the hidden first line that identifies mlbot's PR comment so a
// later push edits it instead of adding another.
const Marker = "<!-- mlbot:train-eval -->"

// Outcome says how a run ended, as the comment and status present it.
type Outcome string

// Run outcomes.
const (
	OutcomePassed      Outcome = "passed"       // pipeline ran, every gate passed
	OutcomeGateFailed  Outcome = "gate_failed"  // pipeline ran, a gate failed
	OutcomeStepFailed  Outcome = "step_failed"  // train or evaluate exited non-zero
	OutcomeTimedOut    Outcome = "timed_out"    // pipeline.timeout reached, process group killed
	OutcomeConfigError Outcome = "config_error" // .mlbot.yml missing or invalid
	OutcomeError       Outcome = "error"        // mlbot could not run it (clone failed, …)
	OutcomeCanceled    Outcome = "canceled"     // stopped by /cancel or a newer push
	OutcomeForkNotRun  Outcome = "fork_not_run" // fork PR, not run until the trust model lands
	// OutcomeAwaitingApproval: an untrusted pull request waits for a
	// maintainer's /ok-to-test before any of its code runs.
	OutcomeAwaitingApproval Outcome = "awaiting_approval"
	// OutcomeSkipped: the changes since the base touch none of
	// pipeline.paths, so nothing ran and the base's model version is
	// still the one that counts. Its commit status is a success.
	OutcomeSkipped Outcome = "skipped"
)

// Gate is one checked threshold of one metric.
type Gate struct {
	Kind  string  // "min", "max", "max_drop" or "non_inferiority"
	Limit float64 // the configured threshold
	Pass  bool
	// Alpha is the significance level of a max_drop gate with
	// significance (0: plain max_drop), and P the Holm-adjusted p-value it
	// was judged with (nil when it fell back).
	Alpha float64  `json:",omitempty"`
	P     *float64 `json:",omitempty"`
	// Bound is the lower end of the confidence interval, in the goal's
	// direction, that a non_inferiority gate was judged with.
	Bound *float64 `json:",omitempty"`
	// Fallback is true when the gate wanted per-example results and, for
	// want of them, was judged as a plain max_drop.
	Fallback bool `json:",omitempty"`
}

// Row is one metric in the diff table.
type Row struct {
	Name string
	Goal string   // "maximize", "minimize" or "" (not configured)
	Base *float64 // nil when the base run lacks the metric
	Head *float64 // nil when the head run lacks it
	Abs  *float64 // head - base, when both exist
	Rel  *float64 // (head - base) / |base|, when both exist and base != 0
	// Better is +1 when the change goes the goal's way, -1 when against it,
	// 0 when unchanged or without a goal.
	Better int
	Gates  []Gate
	// Stat is the per-example comparison of the metric, nil without one.
	Stat *MetricStat
}

// Pass reports whether every gate of the row passed.
func (r Row) Pass() bool {
	for _, g := range r.Gates {
		if !g.Pass {
			return false
		}
	}
	return true
}

// Diff is the comparison of a head run against its base.
type Diff struct {
	Rows []Row
	// Failed names the metrics with a failing gate, in table order.
	Failed []string
	// Significance is the per-example comparison the diff used, nil when
	// there was none to make.
	Significance *Significance
}

// Pass reports whether no gate failed.
func (d Diff) Pass() bool { return len(d.Failed) == 0 }

// Comment is everything the PR comment shows.
type Comment struct {
	Outcome Outcome
	HeadSHA string
	BaseSHA string // "" when there is no base run
	// BaseNote explains a missing or failed base ("base run failed").
	BaseNote string
	Diff     Diff
	// Detail is the one-line reason for non-passing outcomes, e.g. the
	// failing step and exit code, or the .mlbot.yml error with line:col.
	Detail string
	RunURL string
	// ChartURL is a signed URL of the chart image (ChartImagePath) the
	// comment embeds under the table; "" embeds none.
	ChartURL string
	LogTail  string // last lines of the run log, shown collapsed on failure
	Train    time.Duration
	Eval     time.Duration
	// Paths are the pipeline.paths globs a skipped run's changes touch
	// none of; the comment lists them.
	Paths []string
}
