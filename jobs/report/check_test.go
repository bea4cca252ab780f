package report

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheck(t *testing.T) {
	base := map[string]float64{"accuracy": 0.9421, "loss": 0.2134}
	tests := []struct {
		name  string
		c     Comment
		title string
		// summary and text list substrings each must hold; notSummary and
		// notText substrings they must not.
		summary, text       []string
		notSummary, notText []string
	}{
		{
			name: "passed",
			c: Comment{Outcome: OutcomePassed, HeadSHA: headSHA, BaseSHA: baseSHA, RunURL: "https://mlbot.example.com/runs/42",
				Diff: Compute(base, map[string]float64{"accuracy": 0.951, "loss": 0.2011}, specs, order)},
			title: "accuracy 0.951 (+0.0089) · 3 of 3 gates passed",
			summary: []string{"| Metric | base (`abc1234`) | head (`def5678`) | Δ | gate |\n",
				"| `accuracy` | 0.9421 | 0.951 | +0.0089 (+0.94%) 🟢 | ✅ ≥ 0.9 · ✅ drop ≤ 0.005 |\n",
				"| ✅ ≤ 0.5 |\n\n**Verdict: passed**",
				"[Run log](https://mlbot.example.com/runs/42)"},
			text:       []string{"- `accuracy`: 0.951, base 0.9421, change +0.0089 (+0.94%), better; goal: maximize; ✅ ≥ 0.9; ✅ drop ≤ 0.005\n", "- `loss`: 0.2011"},
			notSummary: []string{Marker, "###"},
			notText:    []string{"Last lines of the log"},
		},
		{
			name: "skipped by pipeline.paths: the title says why, the summary lists the paths",
			c: Comment{Outcome: OutcomeSkipped, HeadSHA: headSHA, Detail: "none of the 1 files changed since abc1234 matches pipeline.paths",
				Paths: []string{"model/**"}},
			title:      "No model changes (paths)",
			summary:    []string{"**Verdict: not needed** — no model changes", "`model/**`"},
			notSummary: []string{"| Metric |"},
			notText:    []string{"Last lines of the log"},
		},
		{
			name: "gate failed, with its log left out: the metrics are the reason",
			c: Comment{Outcome: OutcomeGateFailed, HeadSHA: headSHA, BaseSHA: baseSHA, LogTail: "epoch 3\n",
				Diff: Compute(base, map[string]float64{"accuracy": 0.9221, "loss": 0.61}, specs, order)},
			title:   "accuracy 0.9221 (−0.02) · 2 of 3 gates failed: accuracy, loss",
			summary: []string{"**Verdict: failed** — `accuracy`: drop 0.02 > max_drop 0.005"},
			text:    []string{"❌ drop 0.02 > max_drop 0.005", "- `loss`: 0.61, base 0.2134, change +0.3966 (+185.85%), worse; goal: minimize; ❌ 0.61 > max 0.5", "### Last lines of the log\n\n```text\nepoch 3\n```"},
		},
		{
			name: "passed with nothing to compare",
			c: Comment{Outcome: OutcomePassed, HeadSHA: headSHA,
				Diff: Compute(nil, map[string]float64{"accuracy": 0.95, "loss": 0.2}, specs, order)},
			title:   "accuracy 0.95 · 2 of 2 gates passed · nothing to compare with",
			summary: []string{"_No base run to compare with._", "no base run to compare with."},
		},
		{
			name: "a passed outcome with a failing gate is a failure",
			c: Comment{Outcome: OutcomePassed, HeadSHA: headSHA, BaseSHA: baseSHA,
				Diff: Compute(base, map[string]float64{"loss": 0.2}, specs, order)},
			title:   "loss 0.2 (−0.0134) · 2 of 3 gates failed: accuracy",
			summary: []string{"**Verdict: failed**"},
			text:    []string{"- `accuracy`: missing from this run, base 0.9421; goal: maximize; ❌ missing from head (min 0.9)"},
		},
		{
			name: "step failed shows the log's end",
			c: Comment{Outcome: OutcomeStepFailed, HeadSHA: headSHA, Detail: "evaluate exited with status 1\nmore",
				LogTail: "Epoch 1/3\n\x1b[31mTraceback\x1b[0m\nKeyError: 'accuracy'\n"},
			title:   "Step failed: evaluate exited with status 1",
			summary: []string{"**Verdict: failed** — evaluate exited with status 1 more."},
			text:    []string{"### Last lines of the log\n\n```text\nEpoch 1/3\nTraceback\nKeyError: 'accuracy'\n```\n"},
			notText: []string{"### Metrics", "\x1b"},
		},
		{
			name:    "waiting for approval",
			c:       Comment{Outcome: OutcomeAwaitingApproval, HeadSHA: headSHA},
			title:   "Waiting for /ok-to-test from a maintainer",
			summary: []string{"**Verdict: not run yet**", "`/ok-to-test`"},
		},
		{
			name:    "cancelled",
			c:       Comment{Outcome: OutcomeCanceled, HeadSHA: headSHA, Detail: "superseded by 1234567"},
			title:   "Cancelled: superseded by 1234567",
			summary: []string{"**Verdict: canceled** — superseded by 1234567."},
		},
		{
			name:    "config error quotes the error",
			c:       Comment{Outcome: OutcomeConfigError, HeadSHA: headSHA, Detail: ".mlbot.yml:3:3: unknown field \"trian\"\n  3 |   trian: x"},
			title:   `Invalid .mlbot.yml: .mlbot.yml:3:3: unknown field "trian"`,
			summary: []string{"```text\n.mlbot.yml:3:3: unknown field \"trian\"\n  3 |   trian: x\n```"},
		},
		{
			name: "hostile names stay code and plain text",
			c: Comment{Outcome: OutcomePassed, HeadSHA: headSHA, BaseSHA: baseSHA,
				Diff: Compute(nil, map[string]float64{"acc\u202euracy\n@octocat <!-- x -->": 1}, nil, nil)},
			title:   "accuracy @octocat <!-- x --> 1 · no gates configured",
			summary: []string{"| `accuracy @octocat <!\u200d-- x -->` |"},
			text:    []string{"- `accuracy @octocat <!\u200d-- x -->`: 1"},
			notText: []string{"\u202e"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := Check(tt.c)
			if out.Title != tt.title {
				t.Errorf("title %q, want %q", out.Title, tt.title)
			}
			for _, w := range tt.summary {
				if !strings.Contains(out.Summary, w) {
					t.Errorf("summary lacks %q:\n%s", w, out.Summary)
				}
			}
			for _, w := range tt.text {
				if !strings.Contains(out.Text, w) {
					t.Errorf("text lacks %q:\n%s", w, out.Text)
				}
			}
			for _, w := range tt.notSummary {
				if strings.Contains(out.Summary, w) {
					t.Errorf("summary holds %q:\n%s", w, out.Summary)
				}
			}
			for _, w := range tt.notText {
				if strings.Contains(out.Text, w) {
					t.Errorf("text holds %q:\n%s", w, out.Text)
				}
			}
			if strings.HasPrefix(out.Summary, "\n") || strings.Contains(out.Title, "\n") {
				t.Errorf("summary starts blank or title spans lines: %q / %q", out.Summary, out.Title)
			}
		})
	}
}

// TestCheckLimits feeds Check more than a check run holds: thousands of
// metrics and a huge log. Summary and text each stay within MaxLen, the
// log keeps its end, and the title stays one short line.
func TestCheckLimits(t *testing.T) {
	head := map[string]float64{}
	for i := range 5000 {
		head[fmt.Sprintf("metric_%05d_%s", i, strings.Repeat("x", 40))] = float64(i)
	}
	log := strings.Repeat("progress 🚀 line of output\n", 20000) + "the error at the end\n"
	for _, o := range []Outcome{OutcomeGateFailed, OutcomeStepFailed, OutcomePassed} {
		c := Comment{Outcome: o, HeadSHA: headSHA, Detail: strings.Repeat("detail ", 100), LogTail: log,
			Diff: Compute(nil, head, map[string]Spec{"metric_00000_" + strings.Repeat("x", 40): {Min: f(1)}}, nil)}
		out := Check(c)
		for name, s := range map[string]string{"summary": out.Summary, "text": out.Text} {
			if n := textLen(s); n > MaxLen {
				t.Errorf("%s: %s of %d UTF-16 units, over %d", o, name, n, MaxLen)
			}
			if !utf8.ValidString(s) {
				t.Errorf("%s: %s is not valid UTF-8", o, name)
			}
		}
		if !strings.Contains(out.Summary, "more metrics |") {
			t.Errorf("%s: the summary's table was not shortened", o)
		}
		if o != OutcomePassed && !strings.Contains(out.Text, "the error at the end\n```") {
			t.Errorf("%s: the text lost the log's end", o)
		}
		if o == OutcomeGateFailed && !strings.Contains(out.Text, "more\n") {
			t.Errorf("%s: the notes were not shortened", o)
		}
		if n := utf8.RuneCountInString(out.Title); n > maxCheckTitle {
			t.Errorf("%s: title of %d characters", o, n)
		}
	}
}

func TestCheckProgress(t *testing.T) {
	out := CheckProgress(headSHA, "waiting for a GPU node\n(the cluster is busy)", "https://mlbot.example.com/runs/7")
	if out.Title != "waiting for a GPU node (the cluster is busy)" {
		t.Errorf("title %q", out.Title)
	}
	want := "Waiting for a GPU node (the cluster is busy). Commit `def5678`.\n\nThe log streams live on the [run page](https://mlbot.example.com/runs/7)."
	if out.Summary != want {
		t.Errorf("summary\n%q\nwant\n%q", out.Summary, want)
	}
	if out := CheckProgress("", "queued", "javascript:alert(1)"); out.Summary != "Queued." {
		t.Errorf("summary %q, want no link to a non-http URL", out.Summary)
	}
}
