package configs

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// Limits and defaults of a sweep: block.
const (
	// DefaultMaxTrials is how many trials a sweep runs when max_trials is
	// not given.
	DefaultMaxTrials = 16
	// MaxTrialsCap is the most trials a sweep may run, whatever it asks.
	MaxTrialsCap = 64
	// DefaultSweepParallel is how many trials of one sweep run at once
	// when parallel is not given.
	DefaultSweepParallel = 2
	// DefaultEta is successive halving's reduction factor: each rung keeps
	// the best 1/eta of the one before.
	DefaultEta = 3
)

// sweepMethods are the values of sweep.method; "" lets the space decide.
var sweepMethods = []string{"grid", "random", "halving"}

// Sweep is the `sweep:` block: the search space and how to explore it.
// configs checks its shape and that every name is a declared parameter;
// package jobs/sweep parses each dimension's expression (its syntax lives
// there) into a Spec.
type Sweep struct {
	// Space is the search space in file order: one dimension a parameter.
	Space []SweepDim
	// Metric is the metric trials are ranked by; it defaults to the first
	// metric under metrics: that has a goal.
	Metric string
	// Goal is "maximize" or "minimize"; it defaults to the metric's goal.
	Goal string
	// MaxTrials is how many trials run at most (DefaultMaxTrials, at most
	// MaxTrialsCap).
	MaxTrials int
	// Parallel is how many trials of this sweep run at once
	// (DefaultSweepParallel).
	Parallel int
	// Seed seeds the random sampling (0 unless given).
	Seed int64
	// Method is "grid", "random", "halving" or "" (grid when the space
	// allows it, random otherwise).
	Method string
	// Resource is the number parameter successive halving gives each rung
	// more of (such as epochs); required with method halving.
	Resource string
	// Eta is successive halving's reduction factor (DefaultEta, at least 2).
	Eta int
}

// SweepDim is one dimension of a search space as written in the file.
type SweepDim struct {
	// Param is the declared parameter the dimension varies.
	Param string
	// Expr is the dimension's expression ("0.05,0.1", "uniform(0,1)"); a
	// YAML list is joined with commas.
	Expr string
	// Line and Col locate the expression in the file, for errors.
	Line, Col int
}

// sweep decodes the sweep: block on its own; checkSweep checks it against
// the parameters and metrics once the whole file is read.
func (d *decoder) sweep(v *yaml.Node) *Sweep {
	s := &Sweep{MaxTrials: DefaultMaxTrials, Parallel: DefaultSweepParallel, Eta: DefaultEta}
	positive := func(v *yaml.Node, path string, min, max int, dst *int) {
		n, ok := d.integer(v, path)
		if ok && (n < min || n > max) {
			d.errorf(v, "%s: must be between %d and %d, got %d", path, min, max, n)
			return
		}
		if ok {
			*dst = n
		}
	}
	d.object(v, "sweep", []field{
		{"space", func(_, v *yaml.Node) {
			ps, ok := d.mapping(v, "sweep.space")
			if !ok {
				return
			}
			for _, p := range ps {
				name := resolve(p.key).Value
				dim := SweepDim{Param: name, Line: p.value.Line, Col: p.value.Column}
				val := resolve(p.value)
				switch {
				case isNull(p.value):
					d.errorf(p.key, "sweep.space.%s: values are required (such as 0.1,0.2 or uniform(0.01,1))", name)
					continue
				case val.Kind == yaml.SequenceNode:
					items, ok := d.strList(p.value, "sweep.space."+name, nil)
					if !ok {
						continue
					}
					if len(items) == 0 {
						d.errorf(p.value, "sweep.space.%s: the list is empty", name)
						continue
					}
					dim.Expr = strings.Join(items, ",")
				case val.Kind == yaml.ScalarNode:
					dim.Expr = val.Value
				default:
					d.errorf(p.value, "sweep.space.%s: values expected (a list or an expression such as uniform(0.01,1)), got %s", name, describe(p.value))
					continue
				}
				s.Space = append(s.Space, dim)
			}
		}},
		{"metric", func(_, v *yaml.Node) { s.Metric, _ = d.str(v, "sweep.metric") }},
		{"goal", func(_, v *yaml.Node) {
			g, ok := d.str(v, "sweep.goal")
			if ok && indexOf(goals, g) < 0 {
				d.errorf(v, "sweep.goal: goal must be maximize or minimize, got %q%s", g, suggestOnly(g, goals))
				return
			}
			s.Goal = g
		}},
		{"max_trials", func(_, v *yaml.Node) { positive(v, "sweep.max_trials", 1, MaxTrialsCap, &s.MaxTrials) }},
		{"parallel", func(_, v *yaml.Node) { positive(v, "sweep.parallel", 1, MaxTrialsCap, &s.Parallel) }},
		{"seed", func(_, v *yaml.Node) {
			n, ok := d.integer(v, "sweep.seed")
			if ok {
				s.Seed = int64(n)
			}
		}},
		{"method", func(_, v *yaml.Node) {
			m, ok := d.str(v, "sweep.method")
			if ok && indexOf(sweepMethods, m) < 0 {
				d.errorf(v, "sweep.method: unknown method %q%s", m, didYouMean(m, sweepMethods))
				return
			}
			s.Method = m
		}},
		{"resource", func(_, v *yaml.Node) { s.Resource, _ = d.str(v, "sweep.resource") }},
		{"eta", func(_, v *yaml.Node) { positive(v, "sweep.eta", 2, MaxTrialsCap, &s.Eta) }},
	})
	return s
}

// checkSweep checks what the sweep: block names against the rest of the
// file: declared parameters and metrics. at is the sweep: key.
func (d *decoder) checkSweep(c *RepoConfig, at *yaml.Node) {
	s := c.Sweep
	declared := make([]string, len(c.Params))
	for i, p := range c.Params {
		declared[i] = p.Name
	}
	seen := make(map[string]bool)
	for _, dim := range s.Space {
		n := &yaml.Node{Line: dim.Line, Column: dim.Col}
		if _, ok := c.Param(dim.Param); !ok {
			d.errorf(n, "sweep.space: %q is not a parameter declared under params:%s", dim.Param, didYouMean(dim.Param, declared))
		}
		seen[dim.Param] = true
	}
	if s.Metric == "" {
		for _, name := range c.MetricOrder {
			if c.Metrics[name].Goal != "" {
				s.Metric = name
				break
			}
		}
		if s.Metric == "" {
			d.errorf(at, "sweep: set metric (the metric trials are ranked by); no metric under metrics: has a goal to default to")
		}
	} else if _, ok := c.Metrics[s.Metric]; !ok {
		d.errorf(at, "sweep.metric: %q is not a metric under metrics:%s", s.Metric, didYouMean(s.Metric, c.MetricOrder))
		return
	}
	if s.Goal == "" && s.Metric != "" {
		s.Goal = c.Metrics[s.Metric].Goal
		if s.Goal == "" {
			d.errorf(at, "sweep: set goal (maximize or minimize): metrics.%s has none", s.Metric)
		}
	}
	switch {
	case s.Method == "halving" && s.Resource == "":
		d.errorf(at, "sweep: method halving needs resource: the number parameter each rung gets more of (such as epochs)")
	case s.Resource != "" && s.Method != "halving":
		d.errorf(at, "sweep.resource: only method halving uses a resource; add method: halving or remove it")
	case s.Resource != "":
		p, ok := c.Param(s.Resource)
		switch {
		case !ok:
			d.errorf(at, "sweep.resource: %q is not a parameter declared under params:%s", s.Resource, didYouMean(s.Resource, declared))
		case p.Kind != ParamNumber:
			d.errorf(at, "sweep.resource: parameter %s is a %s; the resource must be a number (its default is the full budget)", s.Resource, p.Kind)
		case seen[s.Resource]:
			d.errorf(at, "sweep.resource: %s is in the search space; halving sets it itself, so remove it from space:", s.Resource)
		}
	}
	if s.Parallel > s.MaxTrials {
		s.Parallel = s.MaxTrials
	}
}
