package configs

import (
	"gopkg.in/yaml.v3"
)

// Per-example results and the gates that use them.
//
// `pipeline.examples` names a JSON Lines file the evaluate step writes:
// one object per example with an "id" (a string or a number) and numeric
// fields named like metrics, each field's mean over the examples being
// that metric. With it, mlbot compares a pull request's examples with its
// base's, pair by pair, and two gates of a metric may use the comparison:
//
//	metrics:
//	  accuracy: {goal: maximize, max_drop: 0.005, significance: 0.05}
//	  loss:     {goal: minimize, non_inferiority: 0.01}
//
// `significance: α` makes max_drop fail only when the drop is larger
// than max_drop and significant at level α after Holm's correction across
// the metrics that have the gate. `non_inferiority: m` fails unless the
// lower end of the 95% confidence interval of the change (in the goal's
// direction) is above −m. Without per-example results in both runs both
// fall back to plain max_drop (non_inferiority to "drop ≤ m").

// examples parses `pipeline.examples`: a path inside the checkout.
func (d *decoder) examples(v *yaml.Node) string {
	s, ok := d.str(v, "pipeline.examples")
	if !ok {
		return ""
	}
	if err := checkRelPath(s); err != nil {
		d.errorf(v, "pipeline.examples: %q %v", s, err)
		return ""
	}
	return s
}

// significance parses a metric's `significance:` level, in (0, 1).
func (d *decoder) significance(v *yaml.Node, where string) *float64 {
	f, ok := d.number(v, where+".significance")
	if !ok {
		return nil
	}
	if *f <= 0 || *f >= 1 {
		d.errorf(v, "%s.significance: a significance level between 0 and 1 (such as 0.05), got %v", where, *f)
		return nil
	}
	return f
}

// nonInferiority parses a metric's `non_inferiority:` margin, at least 0.
func (d *decoder) nonInferiority(v *yaml.Node, where string) *float64 {
	f, ok := d.number(v, where+".non_inferiority")
	if !ok {
		return nil
	}
	if *f < 0 {
		d.errorf(v, "%s.non_inferiority: a margin in the metric's units, not negative, got %v", where, *f)
		return nil
	}
	return f
}

// checkExampleGates checks that the gates of m that use per-example
// results have what they need: a goal, and for significance a max_drop.
// v is the metric's mapping, where the offending keys are.
func (d *decoder) checkExampleGates(v *yaml.Node, where string, m MetricSpec) {
	at := func(key string) *yaml.Node {
		r := resolve(v)
		for i := 0; i+1 < len(r.Content); i += 2 {
			if r.Content[i].Value == key {
				return r.Content[i]
			}
		}
		return v
	}
	if m.Significance != nil {
		switch {
		case m.Goal == "":
			d.errorf(at("significance"), "%s.significance: needs a goal (maximize or minimize) to know which direction is a drop", where)
		case m.MaxDrop == nil:
			d.errorf(at("significance"), "%s.significance: needs max_drop, the drop that fails once it is significant (max_drop: 0 fails any significant drop)", where)
		}
	}
	if m.NonInferiority != nil && m.Goal == "" {
		d.errorf(at("non_inferiority"), "%s.non_inferiority: needs a goal (maximize or minimize) to know which direction is worse", where)
	}
}
