package report

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/mlbot/mlbot/jobs/report/stats"
)

// maxNamedFields bounds the metrics a significance note names.
const maxNamedFields = 5

// withStats reports whether the diff's table gets the confidence
// interval and p-value columns.
func withStats(d Diff) bool {
	return d.Significance != nil && len(d.Significance.Metrics) > 0
}

// rowOf is row r of d's table, with the statistics columns when the
// table has them.
func rowOf(d Diff, r Row) string {
	if !withStats(d) {
		return tableRow(r)
	}
	ci, p := "—", "—"
	if r.Stat != nil {
		ci, p = ciText(*r.Stat), pText(*r.Stat)
	}
	cells := []string{codeSpan(r.Name, true), optNum(r.Base), optNum(r.Head), deltaCell(r), ci, p, gateCell(r)}
	return "| " + strings.Join(cells, " | ") + " |\n"
}

// ciText is a metric's 95% interval of head − base: "[−0.021, −0.0034]".
func ciText(m MetricStat) string {
	return "[" + signed(m.Low) + ", " + signed(m.High) + "]"
}

// pText is a metric's p-value, with the Holm-adjusted one when the
// metric is in the family: "0.0031", "0.012 (Holm 0.024)".
func pText(m MetricStat) string {
	s := fmtP(m.P)
	if m.PHolm != nil && *m.PHolm != m.P {
		s += " (Holm " + fmtP(*m.PHolm) + ")"
	}
	return s
}

// fmtP writes a p-value with two significant digits, "< 0.0001" below
// what 10,000 resamples can tell.
func fmtP(p float64) string {
	switch {
	case p < 0.0001:
		return "< 0.0001"
	case p >= 0.995:
		return "1"
	}
	digits := max(2, 1-int(math.Floor(math.Log10(p))))
	return strconv.FormatFloat(p, 'f', digits, 64)
}

// gateRuleOf is gateRule for a gate of row r. A non_inferiority gate of a
// metric to minimise bounds the interval's upper end, the head's
// worst case, as the table shows the interval of head − base.
func gateRuleOf(r Row, g Gate) string {
	if g.Kind == GateNonInferiority && !g.Fallback && r.Goal == GoalMinimize {
		return "CI high < " + signed(g.Limit)
	}
	return gateRule(g)
}

// exampleGateNote adds to a gate cell's note what the per-example
// results did to the gate: a drop let through for want of significance,
// the interval's end a non-inferiority gate was judged by, or a fall back
// to plain max_drop.
func exampleGateNote(r Row, g Gate, note string) string {
	add := func(s string) string {
		if note == "" {
			return s
		}
		return note + "; " + s
	}
	switch {
	case g.Fallback:
		return add("no per-example results: plain max_drop")
	case g.Kind == GateMaxDrop && g.P != nil && g.Pass:
		if drop, ok := r.Drop(); ok && drop > g.Limit+tolerance(g.Limit) {
			return add("dropped " + fmtNum(drop) + ", not significant: Holm p " + fmtP(*g.P))
		}
	case g.Kind == GateNonInferiority && g.Bound != nil && r.Goal == GoalMinimize:
		return add("CI high " + signed(-*g.Bound))
	case g.Kind == GateNonInferiority && g.Bound != nil:
		return add("CI low " + signed(*g.Bound))
	}
	return note
}

// significanceNote is the comment's footnote on the per-example
// comparison: the method, resamples, seed and n, or why nothing was
// compared; "" when no metric asked for it and no run wrote examples.
func significanceNote(d Diff, st style) string {
	fallback := false
	for _, r := range d.Rows {
		for _, g := range r.Gates {
			fallback = fallback || g.Fallback
		}
	}
	sig := d.Significance
	if sig == nil && !fallback {
		return ""
	}
	var parts []string
	if withStats(d) {
		var mcnemar []string
		for _, r := range d.Rows {
			if r.Stat != nil && r.Stat.Test == stats.McNemarTest {
				mcnemar = append(mcnemar, r.Name)
			}
		}
		s := fmt.Sprintf("Δ with its 95%% paired bootstrap interval (percentile, %s resamples, seed %d) over n = %s examples paired by id; p two-sided",
			thousands(sig.Resamples), sig.Seed, thousands(sig.N))
		if len(mcnemar) > 0 {
			s += ", exact McNemar for 0/1 fields (" + nameList(mcnemar, st) + "), bootstrap otherwise"
		} else {
			s += " from the bootstrap"
		}
		switch {
		case sig.Family > 1:
			s += fmt.Sprintf("; Holm's correction across the %d metrics with a significance gate", sig.Family)
		case sig.Family == 1:
			s += "; one metric has a significance gate, so Holm's correction changes nothing"
		}
		parts = append(parts, s+".")
	} else {
		why := "neither run wrote per-example results (" + st.code("pipeline.examples") + ")"
		if sig != nil && sig.Note != "" {
			why = st.text(sig.Note, maxInlineLen)
		}
		parts = append(parts, "No significance: "+sentence(why))
	}
	if fallback {
		var names []string
		for _, r := range d.Rows {
			if slices.ContainsFunc(r.Gates, func(g Gate) bool { return g.Fallback }) {
				names = append(names, r.Name)
			}
		}
		parts = append(parts, "The significance and non_inferiority gates of "+nameList(names, st)+" fell back to plain max_drop for want of per-example values in both runs.")
	}
	return strings.Join(parts, " ")
}

// nameList names at most maxNamedFields metrics, and how many more.
func nameList(names []string, st style) string {
	var out []string
	for i, n := range names {
		if i == maxNamedFields {
			out = append(out, fmt.Sprintf("%d more", len(names)-i))
			break
		}
		out = append(out, st.code(n))
	}
	return strings.Join(out, ", ")
}

// thousands writes n with comma separators: 10,000.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
