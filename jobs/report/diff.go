package report

import (
	"math"
	"slices"
)

// Spec is the part of a metric's .mlbot.yml entry that the diff needs. It
// mirrors configs.MetricSpec so this package does not depend on configs;
// the caller converts.
type Spec struct {
	Goal    string   // "maximize", "minimize" or "" (shown, not judged)
	Min     *float64 // head must be >= Min
	Max     *float64 // head must be <= Max
	MaxDrop *float64 // worsening against Goal, in the metric's own units
}

// Goals.
const (
	GoalMaximize = "maximize"
	GoalMinimize = "minimize"
)

// Gate kinds.
const (
	GateMin     = "min"
	GateMax     = "max"
	GateMaxDrop = "max_drop"
)

// noise is the change below which two values count as equal: metrics that
// went through JSON, Redis and back differ in the last bits, and calling
// that an improvement would be noise in the comment.
const noise = 1e-12

// Compute compares head metrics with base metrics and checks the gates in
// specs. Rows come in table order: first the metrics named in order (the
// order of .mlbot.yml), then configured metrics missing from order, then
// every other metric present in head or base, sorted by name. A configured
// metric with gates that head does not report fails those gates, so a model
// cannot pass by ceasing to report accuracy. Non-finite values count as
// missing. base may be nil when there is no base run; max_drop is then
// skipped, since there is nothing to drop from.
func Compute(base, head map[string]float64, specs map[string]Spec, order []string) Diff {
	var d Diff
	seen := map[string]bool{}
	add := func(name string) {
		if seen[name] {
			return
		}
		seen[name] = true
		row := computeRow(name, base, head, specs[name])
		if !row.Pass() {
			d.Failed = append(d.Failed, name)
		}
		d.Rows = append(d.Rows, row)
	}
	for _, name := range order {
		add(name)
	}
	// Configured metrics missing from order come next, then the rest.
	addSorted := func(ms ...map[string]struct{}) {
		var names []string
		for _, m := range ms {
			for name := range m {
				if !seen[name] {
					names = append(names, name)
				}
			}
		}
		slices.Sort(names)
		names = slices.Compact(names)
		for _, name := range names {
			add(name)
		}
	}
	addSorted(keys(specs))
	addSorted(keys(head), keys(base))
	return d
}

func keys[V any](m map[string]V) map[string]struct{} {
	out := make(map[string]struct{}, len(m))
	for k := range m {
		out[k] = struct{}{}
	}
	return out
}

func lookup(m map[string]float64, name string) *float64 {
	v, ok := m[name]
	if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

func computeRow(name string, base, head map[string]float64, s Spec) Row {
	r := Row{Name: name, Goal: s.Goal, Base: lookup(base, name), Head: lookup(head, name)}
	if r.Base != nil && r.Head != nil {
		abs := *r.Head - *r.Base
		if math.Abs(abs) < noise {
			abs = 0
		}
		r.Abs = &abs
		if *r.Base != 0 {
			rel := abs / math.Abs(*r.Base)
			r.Rel = &rel
		}
		switch {
		case abs == 0:
		case s.Goal == GoalMaximize:
			r.Better = sign(abs)
		case s.Goal == GoalMinimize:
			r.Better = -sign(abs)
		}
	}
	if s.Min != nil {
		r.Gates = append(r.Gates, Gate{Kind: GateMin, Limit: *s.Min,
			Pass: r.Head != nil && *r.Head >= *s.Min-tolerance(*s.Min)})
	}
	if s.Max != nil {
		r.Gates = append(r.Gates, Gate{Kind: GateMax, Limit: *s.Max,
			Pass: r.Head != nil && *r.Head <= *s.Max+tolerance(*s.Max)})
	}
	if s.MaxDrop != nil && (r.Base != nil || r.Head == nil) {
		pass := false
		if drop, ok := r.Drop(); ok {
			pass = drop <= *s.MaxDrop+tolerance(*r.Base)
		}
		r.Gates = append(r.Gates, Gate{Kind: GateMaxDrop, Limit: *s.MaxDrop, Pass: pass})
	}
	return r
}

// Drop returns how far head worsened from base in the goal's direction
// (negative when it improved), and false when either value is missing.
// Without a goal any change counts as worsening, since a max_drop with no
// direction can only mean "stay put".
func (r Row) Drop() (float64, bool) {
	if r.Base == nil || r.Head == nil {
		return 0, false
	}
	switch r.Goal {
	case GoalMaximize:
		return *r.Base - *r.Head, true
	case GoalMinimize:
		return *r.Head - *r.Base, true
	default:
		return math.Abs(*r.Head - *r.Base), true
	}
}

// tolerance absorbs float rounding when a value sits exactly on a limit:
// 0.95 - 0.945 is 0.0050000000000000044, which must pass max_drop 0.005.
func tolerance(scale float64) float64 { return noise * math.Max(1, math.Abs(scale)) }

func sign(f float64) int {
	if f > 0 {
		return 1
	}
	return -1
}
