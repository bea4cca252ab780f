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
	// Significance, when set, makes MaxDrop fail only when the drop is
	// also significant at this level after Holm's correction.
	Significance *float64 `json:",omitempty"`
	// NonInferiority, when set, fails unless the lower end of the 95%
	// confidence interval of the change (in the goal's direction) is above
	// −NonInferiority.
	NonInferiority *float64 `json:",omitempty"`
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
	// GateNonInferiority is the non_inferiority gate.
	GateNonInferiority = "non_inferiority"
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
	return ComputeWith(base, head, specs, order, nil)
}

// ComputeWith is Compute with the per-example comparison of head with
// base (nil when there is none): rows with per-example values carry their
// statistics, and the significance and non_inferiority gates use them.
// Without them those gates fall back to plain max_drop (non_inferiority
// to a max_drop of its margin) and say so.
func ComputeWith(base, head map[string]float64, specs map[string]Spec, order []string, sig *Significance) Diff {
	d := Diff{Significance: sig}
	seen := map[string]bool{}
	add := func(name string) {
		if seen[name] {
			return
		}
		seen[name] = true
		row := computeRow(name, base, head, specs[name], statOf(sig, name))
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

func statOf(sig *Significance, name string) *MetricStat {
	if sig == nil {
		return nil
	}
	st, ok := sig.Metrics[name]
	if !ok {
		return nil
	}
	return &st
}

func computeRow(name string, base, head map[string]float64, s Spec, st *MetricStat) Row {
	r := Row{Name: name, Goal: s.Goal, Base: lookup(base, name), Head: lookup(head, name), Stat: st}
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
		g := Gate{Kind: GateMaxDrop, Limit: *s.MaxDrop, Pass: pass}
		if s.Significance != nil {
			g.Alpha = *s.Significance
			if p, ok := statP(st); ok {
				// A drop past max_drop fails only when it is significant.
				g.P = &p
				if !pass && r.Head != nil && p >= g.Alpha {
					g.Pass = true
				}
			} else {
				g.Fallback = true
			}
		}
		r.Gates = append(r.Gates, g)
	}
	if s.NonInferiority != nil && (r.Base != nil || r.Head == nil) {
		r.Gates = append(r.Gates, nonInferiority(r, *s.NonInferiority, st))
	}
	return r
}

func statP(st *MetricStat) (float64, bool) {
	if st == nil {
		return 0, false
	}
	return st.GateP()
}

// nonInferiority checks that the change of r is no worse than margin: the
// lower end of its confidence interval, turned to the goal's direction,
// above −margin. Without per-example values it checks the drop against
// margin, as max_drop would.
func nonInferiority(r Row, margin float64, st *MetricStat) Gate {
	g := Gate{Kind: GateNonInferiority, Limit: margin}
	if r.Head == nil {
		return g
	}
	if st == nil {
		g.Fallback = true
		if drop, ok := r.Drop(); ok {
			g.Pass = drop <= margin+tolerance(*r.Base)
		}
		return g
	}
	low := st.Low
	if r.Goal == GoalMinimize {
		low = -st.High
	}
	g.Bound = &low
	g.Pass = low > -margin
	return g
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
