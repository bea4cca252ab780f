package report

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxLen is the longest comment Render produces, in characters. GitHub
// refuses bodies of 65,536 characters or more. Render counts UTF-16 code
// units, which are never fewer than characters, so the limit holds however
// the host counts.
const MaxLen = 65535

// Caps on single untrusted strings, so that one of them cannot crowd out the
// table, and the verdict can never grow past what the budget leaves for it.
const (
	maxNameLen     = 200   // metric names, in characters
	maxInlineLen   = 1000  // Detail and BaseNote shown inline
	maxConfigLen   = 20000 // the config error shown in a code block
	maxVerdictRows = 5     // failing metrics named in the verdict
	maxLogInput    = 4 * MaxLen
)

// Render returns the markdown body of the PR comment. Its first line is
// Marker, so the comment can be found and edited on the next push. The body
// never exceeds MaxLen: the log tail is shortened first (keeping its end,
// where the error is), then table rows, and the marker, heading and verdict
// are always kept. Metric names, details and log text are escaped so that
// they cannot break the table, hide text in HTML comments or mention users.
// An OutcomePassed comment whose Diff has failing gates is shown as failed:
// a green verdict over a red gate would be worse than either alone.
func Render(c Comment) string {
	if c.Outcome == OutcomePassed && !c.Diff.Pass() {
		c.Outcome = OutcomeGateFailed
	}
	showTable := len(c.Diff.Rows) > 0 && c.Outcome != OutcomeConfigError && c.Outcome != OutcomeForkNotRun
	if !showTable {
		c.ChartURL = ""
	}
	p := parts{
		head:   Marker + "\n" + heading(c) + "\n",
		after:  afterTable(c),
		footer: footer(c),
	}
	if showTable {
		p.tableHead = tableHeader(c)
		p.rows = make([]string, len(c.Diff.Rows))
		for i, r := range c.Diff.Rows {
			p.rows[i] = rowOf(c.Diff, r)
		}
	}
	log := ""
	if c.Outcome != OutcomePassed {
		log = cleanLog(c.LogTail)
	}
	return p.fit(log)
}

// parts are the comment's sections, kept apart so fit can shorten the
// log and the table without rebuilding the rest.
type parts struct {
	head      string   // marker and heading
	tableHead string   // "" when there is no table
	rows      []string // one line each, with the newline
	after     string   // base note, verdict, detail block
	footer    string
}

func (p parts) table(keep int) string {
	if p.tableHead == "" {
		return ""
	}
	var b strings.Builder
	b.WriteString("\n")
	b.WriteString(p.tableHead)
	for _, r := range p.rows[:keep] {
		b.WriteString(r)
	}
	if n := len(p.rows) - keep; n > 0 {
		b.WriteString(moreRow(n))
	}
	return b.String()
}

func (p parts) join(table, log string) string {
	return p.head + table + p.after + log + p.footer
}

func (p parts) fit(log string) string {
	all := p.table(len(p.rows))
	full := p.join(all, logSection(log, false))
	if textLen(full) <= MaxLen {
		return full
	}
	// The log goes first: its end, where the error is, matters more than
	// its start, and the table is what the comment is for.
	if log != "" {
		fixed := textLen(p.join(all, ""))
		fits := func(start int) bool {
			return fixed+textLen(logSection(log[start:], true)) <= MaxLen
		}
		if fits(len(log)) {
			// Smallest start (longest tail) that fits; sort.Search wants a
			// predicate that turns true, and a later start is always shorter.
			start := sort.Search(len(log)+1, func(i int) bool { return fits(lineStart(log, i)) })
			start = lineStart(log, start)
			if out := p.join(all, logSection(log[start:], true)); textLen(out) <= MaxLen {
				return out
			}
		}
	}
	logNote := ""
	if log != "" {
		logNote = logOmitted
	}
	fixed := textLen(p.join("", logNote))
	if p.tableHead != "" {
		rowLen := make([]int, len(p.rows))
		for i, r := range p.rows {
			rowLen[i] = textLen(r)
		}
		base := fixed + textLen("\n"+p.tableHead)
		keep, sum := 0, 0
		for keep < len(p.rows) {
			more := 0
			if keep+1 < len(p.rows) {
				more = textLen(moreRow(len(p.rows) - keep - 1))
			}
			if base+sum+rowLen[keep]+more > MaxLen {
				break
			}
			sum += rowLen[keep]
			keep++
		}
		if out := p.join(p.table(keep), logNote); textLen(out) <= MaxLen {
			return out
		}
	}
	// Unreachable with the caps above, but the limit is a hard one: keep
	// the marker, heading and verdict and cut whatever follows.
	out := p.join("", "")
	if textLen(out) > MaxLen {
		out = cutText(out, MaxLen)
	}
	return out
}

// lineStart moves i forward to the start of the next line, so a cut log
// does not begin mid-line; a log that is one long line is cut mid-line.
func lineStart(log string, i int) int {
	if i <= 0 || i >= len(log) {
		return min(max(i, 0), len(log))
	}
	if log[i-1] == '\n' {
		return i
	}
	if j := strings.IndexByte(log[i:], '\n'); j >= 0 && i+j+1 < len(log) {
		return i + j + 1
	}
	for i < len(log) && !utf8.RuneStart(log[i]) {
		i++
	}
	return i
}

const logOmitted = "\n_The log was left out to keep this comment within GitHub's size limit; see the run log._\n"

func moreRow(n int) string {
	s := "metrics"
	if n == 1 {
		s = "metric"
	}
	return fmt.Sprintf("| … %d more %s | | | | |\n", n, s)
}

func logSection(log string, cut bool) string {
	if log == "" && !cut {
		return ""
	}
	if cut {
		log = strings.TrimRight("… (earlier lines cut to fit the comment; see the run log)\n"+log, "\n")
	}
	f := fence(log)
	return "\n<details><summary>Last lines of the log</summary>\n\n" +
		f + "text\n" + log + "\n" + f + "\n\n</details>\n"
}

// fence returns a backtick fence longer than any backtick run in s, so a
// log that prints markdown cannot close the code block early.
func fence(s string) string {
	longest, run := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return strings.Repeat("`", max(3, longest+1))
}

func heading(c Comment) string {
	const title = "mlbot: train-eval"
	switch c.Outcome {
	case OutcomePassed:
		return "### ✅ " + title + " passed"
	case OutcomeGateFailed:
		return "### ❌ " + title + " failed" + gateHeadline(c.Diff, markdown)
	case OutcomeStepFailed:
		return "### ❌ " + title + " step failed"
	case OutcomeTimedOut:
		return "### ⏱️ " + title + " timed out"
	case OutcomeConfigError:
		return "### ⚠️ " + title + " config error"
	case OutcomeError:
		return "### ⚠️ " + title + " error"
	case OutcomeCanceled:
		return "### ⏹️ " + title + " canceled"
	case OutcomeForkNotRun:
		return "### ⏸️ " + title + " not run (fork pull request)"
	case OutcomeAwaitingApproval:
		return "### ⏸️ " + title + " waiting for `/ok-to-test`"
	case OutcomeSkipped:
		return "### ⏭️ " + title + " not needed"
	default:
		return "### ❔ " + title + " " + inlineText(string(c.Outcome), 40)
	}
}

// gateHeadline names the first failing metric and why, so the PR's
// notification says what to look at.
func gateHeadline(d Diff, st style) string {
	r, ok := firstFailing(d)
	if !ok {
		return ""
	}
	why := "failed its gate"
	if r.Head == nil {
		why = "missing"
	} else if g, ok := firstFailingGate(r); ok {
		switch g.Kind {
		case GateMin:
			why = "below gate"
		case GateMax:
			why = "above gate"
		case GateMaxDrop:
			why = "dropped more than allowed"
			if g.P != nil {
				why = "dropped significantly more than allowed"
			}
		case GateNonInferiority:
			why = "not shown non-inferior"
		}
	}
	s := " — " + st.code(r.Name) + " " + why
	if n := len(d.Failed) - 1; n > 0 {
		s += fmt.Sprintf(" (and %d more)", n)
	}
	return s
}

func firstFailingGate(r Row) (Gate, bool) {
	for _, g := range r.Gates {
		if !g.Pass {
			return g, true
		}
	}
	return Gate{}, false
}

func firstFailing(d Diff) (Row, bool) {
	for _, r := range d.Rows {
		if !r.Pass() {
			return r, true
		}
	}
	return Row{}, false
}

func tableHeader(c Comment) string {
	base := "base"
	if s := shortSHA(c.BaseSHA); s != "" {
		base += " (" + s + ")"
	}
	head := "head"
	if s := shortSHA(c.HeadSHA); s != "" {
		head += " (" + s + ")"
	}
	if withStats(c.Diff) {
		return "| Metric | " + base + " | " + head + " | Δ | 95% CI | p | gate |\n| --- | ---: | ---: | ---: | ---: | ---: | --- |\n"
	}
	return "| Metric | " + base + " | " + head + " | Δ | gate |\n| --- | ---: | ---: | ---: | --- |\n"
}

// shortSHA shows the usual 7 characters; anything but letters and digits is
// dropped since the SHA may come from a webhook body.
func shortSHA(sha string) string {
	var b strings.Builder
	for _, r := range sha {
		if r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			b.WriteRune(r)
			if b.Len() == 7 {
				break
			}
		}
	}
	if b.Len() == 0 {
		return ""
	}
	return "`" + b.String() + "`"
}

func tableRow(r Row) string {
	cells := []string{codeSpan(r.Name, true), optNum(r.Base), optNum(r.Head), deltaCell(r), gateCell(r)}
	return "| " + strings.Join(cells, " | ") + " |\n"
}

func optNum(v *float64) string {
	if v == nil {
		return "—"
	}
	return fmtNum(*v)
}

func deltaCell(r Row) string {
	s := deltaText(r)
	switch r.Better {
	case 1:
		s += " 🟢"
	case -1:
		s += " 🔴"
	}
	return s
}

func gateCell(r Row) string {
	var cells []string
	for _, g := range gateCells(r) {
		mark := "✅ "
		if !g.Pass {
			mark = "❌ "
		}
		s := mark + g.Rule
		if g.Note != "" {
			s += " (" + g.Note + ")"
		}
		cells = append(cells, s)
	}
	return strings.Join(cells, " · ")
}

func gateRule(g Gate) string {
	switch g.Kind {
	case GateMin:
		return "≥ " + fmtNum(g.Limit)
	case GateMax:
		return "≤ " + fmtNum(g.Limit)
	case GateMaxDrop:
		if g.Alpha > 0 && !g.Fallback {
			return "drop ≤ " + fmtNum(g.Limit) + " or not significant at " + fmtNum(g.Alpha)
		}
		return "drop ≤ " + fmtNum(g.Limit)
	case GateNonInferiority:
		if g.Fallback {
			return "drop ≤ " + fmtNum(g.Limit)
		}
		return "CI low > " + signed(-g.Limit)
	default:
		return inlineText(g.Kind, 40) + " " + fmtNum(g.Limit)
	}
}

func afterTable(c Comment) string {
	var b strings.Builder
	if len(c.Diff.Rows) > 0 && c.Outcome != OutcomeConfigError && c.Outcome != OutcomeForkNotRun {
		note := c.BaseNote
		if note == "" && c.BaseSHA == "" {
			note = "No base run to compare with."
		}
		if note != "" {
			b.WriteString("\n_" + inlineText(note, maxInlineLen) + "_\n")
		}
	}
	b.WriteString("\n" + verdict(c) + "\n")
	switch c.Outcome {
	case OutcomeConfigError:
		if c.Detail != "" {
			d := cleanLog(c.Detail)
			if textLen(d) > maxConfigLen {
				d = cutText(d, maxConfigLen) + "\n…"
			}
			f := fence(d)
			b.WriteString("\n" + f + "text\n" + d + "\n" + f + "\n")
		}
	case OutcomePassed, OutcomeGateFailed:
		// Their verdict is about the metrics; a Detail, if any, comes next.
		if c.Detail != "" {
			b.WriteString("\n" + sentence(inlineText(c.Detail, maxInlineLen)) + "\n")
		}
	}
	return b.String()
}

func verdict(c Comment) string {
	word, summary := verdictParts(c, markdown)
	v := "**Verdict: " + word + "**"
	if summary != "" {
		v += " — " + summary
	}
	return v
}

// verdictParts returns the verdict's word ("passed", "failed", …) and
// the sentence that follows it, in style st.
func verdictParts(c Comment, st style) (word, summary string) {
	detail := sentence(st.text(c.Detail, maxInlineLen))
	orElse := func(s string) string {
		if detail != "" {
			return detail
		}
		return s
	}
	switch c.Outcome {
	case OutcomePassed:
		return "passed", passSummary(c, st) + "."
	case OutcomeGateFailed:
		return "failed", failSummaryIn(c.Diff, st)
	case OutcomeStepFailed:
		return "failed", orElse("a pipeline step failed.")
	case OutcomeTimedOut:
		return "timed out", orElse("the run reached " + st.code("pipeline.timeout") + " and was stopped.")
	case OutcomeConfigError:
		return "config error", st.code(".mlbot.yml") + " could not be used; fix it and push again."
	case OutcomeError:
		return "error", strings.TrimSpace("mlbot could not run the pipeline. " + detail)
	case OutcomeCanceled:
		return "canceled", orElse("stopped by " + st.code("/cancel") + " or a newer push.")
	case OutcomeForkNotRun:
		return "not run", strings.TrimSpace("pull requests from forks are not run automatically. " + detail)
	case OutcomeAwaitingApproval:
		return "not run yet", strings.TrimSpace("this pull request comes from a fork or from an author without write access, so none of its code runs until a maintainer comments " + st.code("/ok-to-test") + ". A later push needs a new approval. " + detail)
	case OutcomeSkipped:
		return "not needed", skippedSummary(c, detail, st)
	default:
		return st.text(string(c.Outcome), 40), detail
	}
}

// maxListedPaths bounds the watched paths a skipped run's verdict names.
const maxListedPaths = 20

// skippedSummary says why nothing ran (detail, which names the changed
// files' count and the base), what that means for the model version, the
// globs that are watched, and how to run anyway.
func skippedSummary(c Comment, detail string, st style) string {
	s := "no model changes"
	if detail != "" {
		s += ": " + strings.TrimSuffix(detail, ".")
	}
	s += ". Nothing was trained or registered for this commit; the base's model version is still the one that counts."
	if len(c.Paths) > 0 {
		globs := make([]string, 0, min(len(c.Paths), maxListedPaths)+1)
		for i, p := range c.Paths {
			if i == maxListedPaths {
				globs = append(globs, fmt.Sprintf("and %d more", len(c.Paths)-i))
				break
			}
			globs = append(globs, st.code(p))
		}
		s += " Watched paths (" + st.code("pipeline.paths") + ", plus " + st.code(".mlbot.yml") + "): " + strings.Join(globs, ", ") + "."
	}
	return s + " Comment " + st.code("/retrain") + " to train and evaluate it anyway."
}

func passSummary(c Comment, st style) string {
	gates := 0
	for _, r := range c.Diff.Rows {
		gates += len(r.Gates)
	}
	var parts []string
	switch gates {
	case 0:
		parts = append(parts, "no gates configured")
	case 1:
		parts = append(parts, "1 gate passes")
	default:
		parts = append(parts, fmt.Sprintf("%d gates pass", gates))
	}
	compared := 0
	for _, r := range c.Diff.Rows {
		if r.Goal == "" || r.Abs == nil {
			continue
		}
		name := st.code(r.Name)
		switch r.Better {
		case 1:
			parts = append(parts, name+" improved by "+fmtNum(math.Abs(*r.Abs)))
		case -1:
			parts = append(parts, name+" worsened by "+fmtNum(math.Abs(*r.Abs)))
		default:
			parts = append(parts, name+" unchanged")
		}
		if compared++; compared == 3 {
			break
		}
	}
	if compared == 0 && c.BaseSHA == "" {
		parts = append(parts, "no base run to compare with")
	}
	return strings.Join(parts, "; ")
}

func failSummary(d Diff) string { return failSummaryIn(d, markdown) }

// failSummaryIn names each failing metric and why, in style st.
func failSummaryIn(d Diff, st style) string {
	var parts []string
	failing := 0
	for _, r := range d.Rows {
		if r.Pass() {
			continue
		}
		if failing++; failing > maxVerdictRows {
			continue
		}
		var why []string
		for _, g := range r.Gates {
			if !g.Pass {
				why = append(why, failReasonIn(r, g, st))
			}
		}
		parts = append(parts, st.code(r.Name)+": "+strings.Join(why, ", "))
	}
	if failing == 0 {
		return "a gate failed."
	}
	if n := failing - maxVerdictRows; n > 0 {
		parts = append(parts, fmt.Sprintf("and %d more", n))
	}
	return strings.Join(parts, "; ") + "."
}

func failReason(r Row, g Gate) string { return failReasonIn(r, g, markdown) }

// failReasonIn says why gate g of row r failed, in style st.
func failReasonIn(r Row, g Gate, st style) string {
	if r.Head == nil {
		return "missing from head (" + g.Kind + " " + fmtNum(g.Limit) + ")"
	}
	switch g.Kind {
	case GateMin:
		return fmtNum(*r.Head) + " < min " + fmtNum(g.Limit)
	case GateMax:
		return fmtNum(*r.Head) + " > max " + fmtNum(g.Limit)
	case GateMaxDrop:
		if drop, ok := r.Drop(); ok {
			s := "drop " + fmtNum(drop) + " > max_drop " + fmtNum(g.Limit)
			if g.P != nil {
				s += ", significant (Holm p " + fmtP(*g.P) + " < " + fmtNum(g.Alpha) + ")"
			}
			return s
		}
	case GateNonInferiority:
		if g.Bound != nil && r.Goal == GoalMinimize {
			return "95% CI high " + signed(-*g.Bound) + " ≥ " + signed(g.Limit) + " (non_inferiority)"
		}
		if g.Bound != nil {
			return "95% CI low " + signed(*g.Bound) + " ≤ " + signed(-g.Limit) + " (non_inferiority)"
		}
		if drop, ok := r.Drop(); ok {
			return "drop " + fmtNum(drop) + " > non_inferiority " + fmtNum(g.Limit) + " (no per-example results)"
		}
	}
	return st.text(g.Kind, 40) + " " + fmtNum(g.Limit)
}

// ChartImagePath is the path, under mlbot's public URL, of the chart image
// of a run: its headline metric over the default branch with the run's own
// value marked. The web package serves it; the worker signs it.
func ChartImagePath(runID string) string { return "/charts/runs/" + runID + ".svg" }

func footer(c Comment) string {
	chart := ""
	if u := safeURL(c.ChartURL); u != "" {
		chart = "\n![the headline metric over the default branch, with this commit](" + u + ")\n"
	}
	var parts []string
	if u := safeURL(c.RunURL); u != "" {
		parts = append(parts, "[Run log]("+u+")")
	}
	if c.Train > 0 {
		parts = append(parts, "train "+fmtDuration(c.Train))
	}
	if c.Eval > 0 {
		parts = append(parts, "evaluate "+fmtDuration(c.Eval))
	}
	sig := significanceNote(c.Diff, markdown)
	if sig != "" {
		sig = "\n<sub>" + sig + "</sub>\n"
	}
	if len(parts) == 0 {
		return chart + sig
	}
	return chart + sig + "\n" + strings.Join(parts, " · ") + "\n"
}

// safeURL accepts only absolute http(s) URLs and percent-encodes what would
// end the markdown link early.
func safeURL(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	return strings.NewReplacer("(", "%28", ")", "%29", " ", "%20", "<", "%3C", ">", "%3E").Replace(u.String())
}

func fmtDuration(d time.Duration) string {
	switch {
	case d < 100*time.Millisecond:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	default:
		return HumanDuration(d) // "1m", "2h 5m", as the run page shows it
	}
}

// fmtNum shows up to 4 decimals, more for values below 1 so that they keep
// 4 significant digits, with trailing zeros trimmed. Only magnitudes no
// metric has in practice get scientific notation.
func fmtNum(v float64) string {
	a := math.Abs(v)
	switch {
	case v == 0:
		return "0"
	case a >= 1e15 || a < 1e-6:
		return strconv.FormatFloat(v, 'g', 4, 64)
	}
	decimals := 4
	if a < 1 {
		decimals = max(4, 3-int(math.Floor(math.Log10(a))))
	}
	s := strconv.FormatFloat(v, 'f', decimals, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	if s == "-0" {
		s = "0"
	}
	return s
}

// signed writes a change with an explicit sign and a true minus sign, which
// lines up with the plus in a right-aligned column.
func signed(v float64) string {
	switch s := fmtNum(v); {
	case s == "0":
		return s
	case v < 0:
		return "−" + strings.TrimPrefix(s, "-")
	default:
		return "+" + s
	}
}

func signedPct(rel float64) string {
	pct := rel * 100
	prec := 2
	if math.Abs(pct) >= 10000 {
		prec = 0
	}
	s := strconv.FormatFloat(math.Abs(pct), 'f', prec, 64)
	switch {
	case pct < 0:
		return "−" + s + "%"
	case pct > 0:
		return "+" + s + "%"
	default:
		return s + "%"
	}
}

// sentence ends s with a full stop unless it has other final punctuation.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	switch s[len(s)-1] {
	case '.', '!', '?', ':':
		return s
	}
	return s + "."
}

// codeSpan shows an untrusted name as inline code, which GitHub renders
// without HTML, mentions or links. A backtick in the name lengthens the
// delimiter; inside a table a pipe must still be escaped, since GitHub
// splits cells before it parses code spans.
func codeSpan(name string, inTable bool) string {
	s := flatten(name)
	if textLen(s) > maxNameLen {
		s = cutText(s, maxNameLen-1) + "…"
	}
	if inTable {
		s = strings.ReplaceAll(s, "|", `\|`)
	}
	s = breakComments(s)
	longest, run := 0, 0
	for _, r := range s {
		if r == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	delim := strings.Repeat("`", longest+1)
	if s == "" || s[0] == '`' || s[len(s)-1] == '`' || strings.Trim(s, " ") == "" {
		s = " " + s + " "
	}
	return delim + s + delim
}

// inlineText escapes untrusted text for a markdown paragraph: one line,
// markdown and HTML punctuation backslash-escaped, and a zero-width joiner
// after each @ so that no one is mentioned.
func inlineText(s string, limit int) string {
	s = strings.TrimSpace(flatten(s))
	if textLen(s) > limit {
		s = cutText(s, limit-1) + "…"
	}
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '\\', '`', '*', '_', '[', ']', '<', '>', '|', '~', '&', '#':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '@':
			b.WriteString("@\u200d")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// flatten makes s valid single-line UTF-8 without control or format
// characters.
func flatten(s string) string {
	s = StripFormat(strings.ToValidUTF8(s, "\uFFFD"))
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			return ' '
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029':
			return -1
		}
		return r
	}, s)
}

var ansiEscape = regexp.MustCompile(`\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-Z\\-_])`)

// cleanLog turns raw process output into text a code block shows as the
// terminal did: colour codes removed, progress bars reduced to their last
// redraw, other control and format characters dropped. "<!--" is broken
// up so that no log line can pass for another mlbot marker to a later
// search.
func cleanLog(s string) string {
	if len(s) > maxLogInput {
		s = s[len(s)-maxLogInput:]
	}
	s = StripFormat(strings.ToValidUTF8(s, "\uFFFD"))
	s = ansiEscape.ReplaceAllString(s, "")
	lines := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	for i, l := range lines {
		l = strings.TrimRight(l, "\r")
		if j := strings.LastIndexByte(l, '\r'); j >= 0 {
			l = l[j+1:]
		}
		lines[i] = strings.TrimRightFunc(strings.Map(func(r rune) rune {
			if r != '\t' && unicode.IsControl(r) {
				return -1
			}
			return r
		}, l), unicode.IsSpace)
	}
	s = strings.Join(lines, "\n")
	return strings.Trim(breakComments(s), "\n")
}

// breakComments puts a zero-width joiner into "<!--". Code spans and blocks
// already show it as text, but the raw body is what a later search for an
// mlbot marker reads, and untrusted text must not be able to forge one.
func breakComments(s string) string { return strings.ReplaceAll(s, "<!--", "<!\u200d--") }

// textLen counts UTF-16 code units, the largest of the ways a host might
// count characters.
func textLen(s string) int {
	n := 0
	for _, r := range s {
		n++
		if r > 0xFFFF {
			n++
		}
	}
	return n
}

// cutText returns the longest prefix of s within n UTF-16 code units.
func cutText(s string, n int) string {
	used := 0
	for i, r := range s {
		w := 1
		if r > 0xFFFF {
			w = 2
		}
		if used+w > n {
			return s[:i]
		}
		used += w
	}
	return s
}
