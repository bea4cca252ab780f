package report

import (
	"fmt"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// CheckOutput is what a check run shows: a one-line title beside the
// check's name, the summary (the metric table and the verdict) and the
// text (per-metric notes and, on failure, the end of the log). Summary
// and Text are markdown of at most MaxLen characters each; Title is plain
// text on one line.
type CheckOutput struct {
	Title   string
	Summary string
	Text    string
}

// maxCheckTitle bounds a check run's title, which is shown on one line.
const maxCheckTitle = 200

// Check returns the check run output of a finished run, or of one waiting
// for approval: the same table, verdict and log as the comment Render
// makes of c, spread over the check's title, summary and text. Metric
// names, details and log text are escaped as in the comment.
func Check(c Comment) CheckOutput {
	if c.Outcome == OutcomePassed && !c.Diff.Pass() {
		c.Outcome = OutcomeGateFailed
	}
	p := parts{after: afterTable(c), footer: footer(c)}
	if len(c.Diff.Rows) > 0 && c.Outcome != OutcomeConfigError && c.Outcome != OutcomeForkNotRun {
		p.tableHead = tableHeader(c)
		p.rows = make([]string, len(c.Diff.Rows))
		for i, r := range c.Diff.Rows {
			p.rows[i] = rowOf(c.Diff, r)
		}
	}
	summary := strings.TrimLeft(p.fit(""), "\n")
	return CheckOutput{Title: checkTitle(c), Summary: summary, Text: checkText(c)}
}

// CheckProgress returns the output of a queued or running check run: msg
// ("running: train and evaluate", "waiting for a GPU node") as its title,
// and a summary saying which commit is trained and where its log is.
func CheckProgress(sha, msg, runURL string) CheckOutput {
	title := oneLine(msg, maxCheckTitle)
	var b strings.Builder
	b.WriteString(sentence(inlineText(upperFirst(msg), maxInlineLen)))
	if s := shortSHA(sha); s != "" {
		b.WriteString(" Commit " + s + ".")
	}
	if u := safeURL(runURL); u != "" {
		b.WriteString("\n\nThe log streams live on the [run page](" + u + ").")
	}
	return CheckOutput{Title: title, Summary: b.String()}
}

// checkTitle is the one line beside the check's name: the headline
// metric with its change and how many gates passed, or why there is no
// such line.
func checkTitle(c Comment) string {
	var s string
	switch c.Outcome {
	case OutcomePassed, OutcomeGateFailed:
		s = headline(c)
	case OutcomeStepFailed:
		s = "Step failed"
	case OutcomeTimedOut:
		s = "Timed out"
	case OutcomeConfigError:
		s = "Invalid .mlbot.yml"
	case OutcomeError:
		s = "mlbot could not run the pipeline"
	case OutcomeCanceled:
		s = "Cancelled"
	case OutcomeForkNotRun:
		s = "Not run: pull request from a fork"
	case OutcomeAwaitingApproval:
		s = "Waiting for /ok-to-test from a maintainer"
	case OutcomeSkipped:
		s = "No model changes (paths)"
	default:
		s = string(c.Outcome)
	}
	switch c.Outcome {
	case OutcomePassed, OutcomeGateFailed, OutcomeAwaitingApproval, OutcomeForkNotRun, OutcomeSkipped:
	default:
		if d := firstLine(c.Detail); d != "" {
			s += ": " + d
		}
	}
	return oneLine(s, maxCheckTitle)
}

// headline names the first metric with a value, its change against the
// base, and the gates: "accuracy 0.951 (+0.0089) · 3 of 3 gates passed".
func headline(c Comment) string {
	var parts []string
	for _, r := range c.Diff.Rows {
		if r.Head == nil {
			continue
		}
		s := flatten(r.Name) + " " + fmtNum(*r.Head)
		if r.Abs != nil {
			s += " (" + signed(*r.Abs) + ")"
		}
		parts = append(parts, s)
		break
	}
	gates, failed := 0, 0
	for _, r := range c.Diff.Rows {
		for _, g := range r.Gates {
			gates++
			if !g.Pass {
				failed++
			}
		}
	}
	switch {
	case gates == 0:
		parts = append(parts, "no gates configured")
	case failed == 0:
		parts = append(parts, fmt.Sprintf("%d of %d gates passed", gates, gates))
	default:
		parts = append(parts, fmt.Sprintf("%d of %d gates failed: %s", failed, gates, strings.Join(c.Diff.Failed, ", ")))
	}
	if c.BaseSHA == "" {
		parts = append(parts, "nothing to compare with")
	}
	return strings.Join(parts, " · ")
}

// checkText is the check's details: a note per metric, then the log's
// end for a run that failed. The notes come first and are shortened
// first by whole metrics, the log from its start, so that its end, where
// the error is, stays.
func checkText(c Comment) string {
	var notes []string
	if c.Outcome == OutcomePassed || c.Outcome == OutcomeGateFailed {
		for _, r := range c.Diff.Rows {
			notes = append(notes, metricNote(r))
		}
	}
	log := ""
	if c.Outcome != OutcomePassed && c.Outcome != OutcomeAwaitingApproval {
		log = cleanLog(c.LogTail)
	}
	head := ""
	if len(notes) > 0 {
		head = "### Metrics\n\n"
	}
	// The notes may take what the log leaves, and at most half when there
	// is a log: a table of thousands of metrics must not push it out.
	budget := MaxLen
	if log != "" {
		budget = MaxLen / 2
	}
	var b strings.Builder
	b.WriteString(head)
	for i, n := range notes {
		more := ""
		if rest := len(notes) - i - 1; rest > 0 {
			more = fmt.Sprintf("- … %d more\n", rest)
		}
		if textLen(b.String())+textLen(n)+textLen(more) > budget {
			fmt.Fprintf(&b, "- … %d more\n", len(notes)-i)
			break
		}
		b.WriteString(n)
	}
	text := b.String()
	if log == "" {
		return text
	}
	section := func(l string, cut bool) string {
		if cut {
			l = "… (earlier lines cut to fit; see the run log)\n" + l
		}
		f := fence(l)
		sep := ""
		if text != "" {
			sep = "\n"
		}
		return sep + "### Last lines of the log\n\n" + f + "text\n" + l + "\n" + f + "\n"
	}
	if out := text + section(log, false); textLen(out) <= MaxLen {
		return out
	}
	// The longest tail that fits: a later start is always shorter.
	fits := func(i int) bool { return textLen(text+section(log[lineStart(log, i):], true)) <= MaxLen }
	start := lineStart(log, sort.Search(len(log)+1, fits))
	out := text + section(log[start:], true)
	if textLen(out) > MaxLen {
		out = cutText(out, MaxLen)
	}
	return out
}

// metricNote is one metric's line of the check's details: its value, its
// change against the base, and each gate with how it went.
func metricNote(r Row) string {
	var b strings.Builder
	b.WriteString("- " + codeSpan(r.Name, false) + ": ")
	switch {
	case r.Head == nil:
		b.WriteString("missing from this run")
	default:
		b.WriteString(fmtNum(*r.Head))
	}
	if r.Base != nil {
		b.WriteString(", base " + fmtNum(*r.Base))
	}
	if r.Abs != nil {
		b.WriteString(", change " + signed(*r.Abs))
		if r.Rel != nil {
			b.WriteString(" (" + signedPct(*r.Rel) + ")")
		}
		switch r.Better {
		case 1:
			b.WriteString(", better")
		case -1:
			b.WriteString(", worse")
		}
	}
	if r.Stat != nil {
		b.WriteString(", 95% CI " + ciText(*r.Stat) + ", p " + pText(*r.Stat))
	}
	if r.Goal != "" {
		b.WriteString("; goal: " + inlineText(r.Goal, 40))
	}
	for _, g := range r.Gates {
		if g.Pass {
			b.WriteString("; ✅ " + gateRuleOf(r, g))
		} else {
			b.WriteString("; ❌ " + failReason(r, g))
		}
	}
	b.WriteString("\n")
	return b.String()
}

// oneLine makes s plain single-line text of at most n characters.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(flatten(s)), " ")
	if textLen(s) > n {
		s = cutText(s, n-1) + "…"
	}
	return s
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func upperFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToUpper(r)) + s[n:]
}
