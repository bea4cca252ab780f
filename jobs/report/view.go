package report

import (
	"strconv"
	"strings"
	"time"
)

// style is how a piece of the comment shows code and untrusted text:
// markdown for the comment, plain text for the web page (whose template
// escapes it for HTML).
type style struct {
	// code shows a name (a metric, a command, a file) as code.
	code func(name string) string
	// text shows untrusted text on one line, cut at limit characters.
	text func(s string, limit int) string
}

var (
	markdown = style{code: func(name string) string { return codeSpan(name, false) }, text: inlineText}
	plain    = style{code: plainName, text: plainText}
)

// plainName is a name as plain text: one line, cut like a code span.
func plainName(name string) string {
	s := flatten(name)
	if textLen(s) > maxNameLen {
		s = cutText(s, maxNameLen-1) + "…"
	}
	return s
}

// plainText is untrusted text as plain text: one line, cut at limit.
func plainText(s string, limit int) string {
	s = strings.TrimSpace(flatten(s))
	if textLen(s) > limit {
		s = cutText(s, limit-1) + "…"
	}
	return s
}

// deltaText is a row's change: the signed difference and, when the base is
// not zero, the relative change; "—" when either value is missing.
func deltaText(r Row) string {
	if r.Abs == nil {
		return "—"
	}
	s := signed(*r.Abs)
	if r.Rel != nil {
		s += " (" + signedPct(*r.Rel) + ")"
	}
	return s
}

// GateCell is one gate of a row as the comment's gate column shows it.
type GateCell struct {
	// Pass says whether the gate held.
	Pass bool
	// Rule is the gate as a rule: "≥ 0.9", "≤ 0.5", "drop ≤ 0.005".
	Rule string
	// Note says why a failing gate failed: "missing", "dropped 0.02".
	Note string
}

func gateCells(r Row) []GateCell {
	out := make([]GateCell, 0, len(r.Gates))
	for _, g := range r.Gates {
		c := GateCell{Pass: g.Pass, Rule: gateRuleOf(r, g)}
		if !g.Pass {
			if r.Head == nil {
				c.Note = "missing"
			} else if drop, ok := r.Drop(); ok && g.Kind == GateMaxDrop {
				c.Note = "dropped " + fmtNum(drop)
				if g.P != nil {
					c.Note += ", Holm p " + fmtP(*g.P)
				}
			}
		}
		c.Note = exampleGateNote(r, g, c.Note)
		out = append(out, c)
	}
	return out
}

// RowView is one metric of the diff table as plain text: the cells of
// the comment's table, for a page that escapes them itself.
type RowView struct {
	Name  string
	Goal  string
	Base  string // "—" when the base lacks the metric
	Head  string
	Delta string // "+0.0089 (+0.94%)", "—"
	// CI and P are the 95% confidence interval and p-value of Delta from
	// per-example results ("[−0.02, −0.004]", "0.0031"), "" without them.
	CI, P string
	// Better is +1 when the change goes the goal's way, -1 against it.
	Better int
	Gates  []GateCell
	// Pass is false when a gate of the row failed.
	Pass bool
}

// View is a run's comment as the web page shows it: the same diff table,
// gates and verdict that Render writes, computed by the same code, as
// plain text rather than markdown.
type View struct {
	// Outcome is the outcome as shown: a passed run with a failing gate
	// shows as failed, as in the comment.
	Outcome Outcome
	// Headline follows the outcome in the heading: the first failing
	// metric and why ("accuracy below gate (and 1 more)"), or "".
	Headline string
	// Table is false when the comment shows no table (no metrics, an
	// invalid .mlbot.yml, a fork's pull request).
	Table bool
	Rows  []RowView
	// BaseNote is the note under the table ("No base run to compare
	// with."), or "".
	BaseNote string
	// Verdict is the verdict's word ("passed", "failed", "timed out") and
	// Summary the sentence after it.
	Verdict, Summary string
	// Train and Eval are the steps' durations, as HumanDuration writes
	// them ("" when unknown).
	Train, Eval string
	// Significance is the comment's note on the per-example comparison
	// (method, resamples, seed, n, or why there is none), or "".
	Significance string
}

// ViewOf returns what the comment Render writes for c shows, as plain
// text.
func ViewOf(c Comment) View {
	if c.Outcome == OutcomePassed && !c.Diff.Pass() {
		c.Outcome = OutcomeGateFailed
	}
	v := View{Outcome: c.Outcome}
	if c.Outcome == OutcomeGateFailed {
		v.Headline = strings.TrimPrefix(gateHeadline(c.Diff, plain), " — ")
	}
	v.Table = len(c.Diff.Rows) > 0 && c.Outcome != OutcomeConfigError && c.Outcome != OutcomeForkNotRun
	if v.Table {
		for _, r := range c.Diff.Rows {
			v.Rows = append(v.Rows, RowView{
				Name: plainName(r.Name), Goal: r.Goal, Base: optNum(r.Base), Head: optNum(r.Head),
				Delta: deltaText(r), Better: r.Better, Gates: gateCells(r), Pass: r.Pass(),
			})
			if r.Stat != nil {
				v.Rows[len(v.Rows)-1].CI, v.Rows[len(v.Rows)-1].P = ciText(*r.Stat), pText(*r.Stat)
			}
		}
		v.BaseNote = plainText(c.BaseNote, maxInlineLen)
		if v.BaseNote == "" && c.BaseSHA == "" {
			v.BaseNote = "No base run to compare with."
		}
	}
	v.Verdict, v.Summary = verdictParts(c, plain)
	v.Significance = significanceNote(c.Diff, plain)
	if c.Train > 0 {
		v.Train = HumanDuration(c.Train)
	}
	if c.Eval > 0 {
		v.Eval = HumanDuration(c.Eval)
	}
	return v
}

// FormatNumber writes a metric value as the comment does: up to four
// decimals, four significant digits below 1, trailing zeros trimmed.
func FormatNumber(v float64) string { return fmtNum(v) }

// HumanDuration writes d the way people say it: "850ms", "12.8s",
// "1m 12s", "2h 5m", "3d 4h". It keeps the two largest units, so that a
// list of durations reads at a glance.
func HumanDuration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < 10*time.Second:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	case d < time.Minute:
		return strconv.Itoa(int(d.Round(time.Second)/time.Second)) + "s"
	}
	d = d.Round(time.Second)
	units := []struct {
		size time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}}
	var parts []string
	for _, u := range units {
		if n := d / u.size; n > 0 || len(parts) > 0 {
			parts = append(parts, strconv.FormatInt(int64(n), 10)+u.name)
			d -= n * u.size
		}
		if len(parts) == 2 {
			break
		}
	}
	if len(parts) == 2 && strings.HasPrefix(parts[1], "0") {
		parts = parts[:1]
	}
	return strings.Join(parts, " ")
}
