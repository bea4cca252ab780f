package sweep

import (
	"math"
	"sort"
)

// Status is how a trial ended.
type Status string

// Trial statuses.
const (
	// StatusDone is a trial that produced its metric.
	StatusDone Status = "done"
	// StatusPruned is a Halving candidate that was not promoted to the
	// last rung; its Result is that of the last rung it ran.
	StatusPruned Status = "pruned"
	// StatusFailed is a trial that produced no metric (a step failed, it
	// timed out, it was cancelled).
	StatusFailed Status = "failed"
)

// Result is how a trial ended.
type Result struct {
	// Trial is the trial that ran.
	Trial Trial
	// Status is how it ended.
	Status Status
	// Metric is the value of the Spec's metric (StatusDone and
	// StatusPruned only).
	Metric float64
	// Passed reports whether the trial passed the gates of .mlbot.yml.
	Passed bool
}

// ok reports whether r has a usable metric.
func (r Result) ok() bool {
	return r.Status != StatusFailed && !math.IsNaN(r.Metric) && !math.IsInf(r.Metric, 0)
}

// better reports whether a ranks before b: results with a metric before
// those without (failed ones), done before pruned, a pruned result that
// reached a later rung first, then the better metric for goal
// ("minimize" or anything else for maximize), then the lower trial index.
func better(a, b Result, goal string) bool {
	if a.ok() != b.ok() {
		return a.ok()
	}
	if a.ok() {
		if (a.Status == StatusPruned) != (b.Status == StatusPruned) {
			return b.Status == StatusPruned
		}
		if a.Trial.Rung != b.Trial.Rung {
			return a.Trial.Rung > b.Trial.Rung
		}
		if a.Metric != b.Metric {
			if goal == "minimize" {
				return a.Metric < b.Metric
			}
			return a.Metric > b.Metric
		}
	}
	return a.Trial.Index < b.Trial.Index
}

// Rank returns results sorted best first by metric and goal ("maximize"
// or "minimize"): the trials that finished, then the pruned ones, then
// the failed ones; ties go to the lower trial index, so the order is the
// same on every run. results is not changed.
func Rank(results []Result, goal string) []Result {
	out := append([]Result(nil), results...)
	sort.SliceStable(out, func(i, j int) bool { return better(out[i], out[j], goal) })
	return out
}
