package report

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/mlbot/mlbot/jobs/deploystate"
)

// maxDeployMetrics bounds the metric table of a deploy reply.
const maxDeployMetrics = 12

// maxStatusText bounds GateText, which goes into commit statuses.
const maxStatusText = 120

// DeployGate is the check of a model version against the version an
// environment runs now, under the repository's gates.
type DeployGate struct {
	// Running is the version the environment runs, and its commit.
	Running    int
	RunningSHA string
	// Diff compares Running (as base) with the version to deploy (as head).
	Diff Diff
}

// Refusal is mlbot's answer when a deploy is refused before anything ran:
// a version worse than what the environment runs now (Gate set), or a
// version made by an untrusted run (Untrusted set).
type Refusal struct {
	Env     string
	Version int
	SHA     string
	// Why says who asked ("merge of #3", "`/deploy` by @maria from #3");
	// mlbot writes it, so it is markdown already.
	Why       string
	Gate      *DeployGate
	Untrusted bool
	// ForceHint, when set, is the command that deploys anyway.
	ForceHint string
	LogURL    string
}

// RenderRefusal returns the markdown of a refused deploy, without a marker
// line (the caller adds its own).
func RenderRefusal(r Refusal) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### ⛔ Model v%d not deployed to %s\n\n", r.Version, codeSpan(r.Env, false))
	if r.Why != "" {
		fmt.Fprintf(&b, "%s — commit %s.\n\n", strings.TrimSpace(r.Why), shortSHA(r.SHA))
	}
	switch {
	case r.Untrusted:
		b.WriteString(untrustedText(r.Version) + "\n")
	case r.Gate != nil:
		fmt.Fprintf(&b, "It is worse than model v%d (%s), which %s runs now: %s\n",
			r.Gate.Running, shortSHA(r.Gate.RunningSHA), codeSpan(r.Env, false), failSummary(r.Gate.Diff))
		b.WriteString(gateTable(r.Gate, r.Env, r.Version))
	}
	if r.ForceHint != "" && !r.Untrusted {
		fmt.Fprintf(&b, "\nA maintainer can deploy it anyway with `%s`.\n", inlineText(r.ForceHint, 100))
	}
	if u := safeURL(r.LogURL); u != "" {
		fmt.Fprintf(&b, "\n[Deploy record](%s)\n", u)
	}
	return b.String()
}

// untrustedText says why a version of an untrusted run is not deployed.
func untrustedText(version int) string {
	return fmt.Sprintf("Model v%d was made by an untrusted run (a pull request approved with `/ok-to-test`). "+
		"A deploy runs the environment's command with its secrets in a checkout of the version's commit, "+
		"so only versions of trusted runs are deployed. Merge the pull request to deploy its model.", version)
}

// UntrustedText is the plain-text reason an untrusted run's version is not
// deployed, for deploy records and statuses.
func UntrustedText(version int) string {
	return fmt.Sprintf("model v%d was made by an untrusted run; only versions of trusted runs are deployed", version)
}

func gateTable(g *DeployGate, env string, version int) string {
	if len(g.Diff.Rows) == 0 {
		return ""
	}
	rows := g.Diff.Rows
	more := 0
	if len(rows) > maxDeployMetrics {
		more, rows = len(rows)-maxDeployMetrics, rows[:maxDeployMetrics]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n| Metric | v%d (%s now) | v%d | Δ | gate |\n| --- | ---: | ---: | ---: | --- |\n",
		g.Running, inlineText(env, 60), version)
	for _, r := range rows {
		b.WriteString(tableRow(r))
	}
	if more > 0 {
		b.WriteString(moreRow(more))
	}
	return b.String()
}

// GateText is a one-line plain-text summary of a check's failing gates,
// for commit statuses and deploy records: "accuracy: drop 0.05 > max_drop
// 0.02". Metric names are flattened and cut, not escaped: the host shows
// statuses as text.
func GateText(d Diff) string {
	var parts []string
	for _, r := range d.Rows {
		if r.Pass() {
			continue
		}
		var why []string
		for _, g := range r.Gates {
			if !g.Pass {
				why = append(why, failReason(r, g))
			}
		}
		name := flatten(r.Name)
		if textLen(name) > 40 {
			name = cutText(name, 39) + "…"
		}
		parts = append(parts, name+": "+strings.Join(why, ", "))
	}
	s := strings.Join(parts, "; ")
	if textLen(s) > maxStatusText {
		s = cutText(s, maxStatusText-1) + "…"
	}
	return s
}

// Deploy is what mlbot says in a thread when a deploy ends.
type Deploy struct {
	// State is the deploy's final state (package deploystate):
	// succeeded, failed, rolled_back, dropped or refused.
	State   string
	Env     string
	Version int
	SHA     string
	// Why says who asked; mlbot writes it, so it is markdown already.
	Why string
	// EnvURL is where the environment answers, shown on success.
	EnvURL string
	// Detail is the plain-text outcome (error, verification), escaped here.
	Detail string
	// Forced names who skipped the check against the running version, and
	// Against is that version (0: none ran).
	Forced  string
	Against int
	Metrics map[string]float64
	LogTail string
	LogURL  string
}

// RenderDeploy returns the markdown of a deploy's outcome, without a marker
// line (the caller adds its own).
func RenderDeploy(d Deploy) string {
	var b strings.Builder
	icon := map[string]string{
		deploystate.Succeeded:  "🚀",
		deploystate.Failed:     "❌",
		deploystate.RolledBack: "↩️",
		deploystate.Dropped:    "⏭️",
		deploystate.Refused:    "⛔",
	}[d.State]
	state := strings.ReplaceAll(inlineText(d.State, 40), `\_`, " ")
	fmt.Fprintf(&b, "### %s Deploy of model v%d to %s: %s", icon, d.Version, codeSpan(d.Env, false), state)
	if d.Forced != "" {
		b.WriteString(" (forced)")
	}
	b.WriteString("\n\n")
	fmt.Fprintf(&b, "%s — commit %s.", strings.TrimSpace(d.Why), shortSHA(d.SHA))
	if u := safeURL(d.EnvURL); u != "" && d.State == deploystate.Succeeded {
		fmt.Fprintf(&b, " Serving at %s.", u)
	}
	b.WriteString("\n")
	if d.Forced != "" {
		against := "the version the environment ran"
		if d.Against > 0 {
			against = "model v" + strconv.Itoa(d.Against)
		}
		fmt.Fprintf(&b, "\n**Forced** by @%s with `--force`: the check against %s was skipped.\n", inlineText(d.Forced, 60), against)
	}
	if d.Detail != "" {
		fmt.Fprintf(&b, "\n%s\n", sentence(inlineText(d.Detail, maxInlineLen)))
	}
	if len(d.Metrics) > 0 {
		names := make([]string, 0, len(d.Metrics))
		for k := range d.Metrics {
			names = append(names, k)
		}
		sort.Strings(names)
		if len(names) > maxDeployMetrics {
			names = names[:maxDeployMetrics]
		}
		b.WriteString("\n| metric | value |\n| --- | ---: |\n")
		for _, n := range names {
			fmt.Fprintf(&b, "| %s | %s |\n", codeSpan(n, true), fmtNum(d.Metrics[n]))
		}
	}
	if d.State == deploystate.Failed && d.LogTail != "" {
		l := cleanLog(d.LogTail)
		f := fence(l)
		fmt.Fprintf(&b, "\n<details><summary>Last lines of the deploy log</summary>\n\n%stext\n%s\n%s\n</details>\n", f, l, f)
	}
	if u := safeURL(d.LogURL); u != "" {
		fmt.Fprintf(&b, "\n[Deploy log](%s)\n", u)
	}
	out := b.String()
	if textLen(out) > MaxLen {
		out = cutText(out, MaxLen-2) + "\n…"
	}
	return out
}

// MergeNotDeployed is the note on a merge whose own gates failed, so that
// nothing was deployed.
type MergeNotDeployed struct {
	SHA, Branch string
	Outcome     Outcome
	// BaseSHA is the commit it was compared with ("" when none).
	BaseSHA string
	Diff    Diff
	Envs    []string
	RunURL  string
}

// RenderMergeNotDeployed returns the markdown of that note, without a
// marker line.
func RenderMergeNotDeployed(m MergeNotDeployed) string {
	var b strings.Builder
	envs := make([]string, len(m.Envs))
	for i, e := range m.Envs {
		envs[i] = codeSpan(e, false)
	}
	fmt.Fprintf(&b, "### ⛔ Not deployed\n\nThe merge %s did not pass its gates on %s (%s), so nothing was deployed to %s.",
		shortSHA(m.SHA), codeSpan(m.Branch, false), strings.ReplaceAll(string(m.Outcome), "_", " "), strings.Join(envs, ", "))
	if m.BaseSHA != "" {
		fmt.Fprintf(&b, " Compared with %s", shortSHA(m.BaseSHA))
		if m.Outcome == OutcomeGateFailed {
			fmt.Fprintf(&b, ": %s", failSummary(m.Diff))
		} else {
			b.WriteString(".")
		}
	} else if m.Outcome == OutcomeGateFailed {
		fmt.Fprintf(&b, " %s", failSummary(m.Diff))
	}
	b.WriteString("\n")
	if u := safeURL(m.RunURL); u != "" {
		fmt.Fprintf(&b, "\n[Run](%s)\n", u)
	}
	return b.String()
}

// Forced is a /deploy --force that skips the check against the version an
// environment runs.
type Forced struct {
	Env string
	By  string
	// Gate is the check that was skipped (nil: nothing else ran there).
	Gate *DeployGate
}

// RenderForced returns the markdown that calls a forced deploy out.
func RenderForced(f Forced) string {
	s := fmt.Sprintf("**Forced** by @%s with `--force`: ", inlineText(f.By, 60))
	switch {
	case f.Gate == nil:
		return s + "no other version runs in " + codeSpan(f.Env, false) + ", so there was nothing to check against."
	case f.Gate.Diff.Pass():
		return s + fmt.Sprintf("the check against model v%d, which %s runs now, was skipped (it would have passed).", f.Gate.Running, codeSpan(f.Env, false))
	default:
		return s + fmt.Sprintf("the check against model v%d, which %s runs now, was skipped; it fails: %s", f.Gate.Running, codeSpan(f.Env, false), failSummary(f.Gate.Diff))
	}
}
