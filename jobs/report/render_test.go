package report

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/render")

const (
	headSHA = "def5678abcdef0123456789abcdef0123456789"
	baseSHA = "abc1234fedcba9876543210fedcba9876543210"
)

var specs = map[string]Spec{
	"accuracy": {Goal: GoalMaximize, Min: f(0.9), MaxDrop: f(0.005)},
	"loss":     {Goal: GoalMinimize, Max: f(0.5)},
}

var order = []string{"accuracy", "loss"}

func TestRender(t *testing.T) {
	base := map[string]float64{"accuracy": 0.9421, "loss": 0.2134, "per_class.0": 0.91, "epochs": 10}
	tests := []struct {
		name string
		c    Comment
		// want are substrings the golden file must contain, as a guard
		// against accepting a wrong golden with -update.
		want []string
	}{
		{
			name: "passed",
			c: Comment{
				Outcome: OutcomePassed, HeadSHA: headSHA, BaseSHA: baseSHA,
				Diff:   Compute(base, map[string]float64{"accuracy": 0.951, "loss": 0.2011, "per_class.0": 0.93, "epochs": 10}, specs, order),
				RunURL: "https://mlbot.example.com/runs/42", Train: 3200 * time.Millisecond, Eval: 400 * time.Millisecond,
			},
			want: []string{"### ✅ mlbot: train-eval passed", "| `accuracy` | 0.9421 | 0.951 | +0.0089 (+0.94%) 🟢 | ✅ ≥ 0.9 · ✅ drop ≤ 0.005 |",
				"**Verdict: passed** — 3 gates pass; `accuracy` improved by 0.0089; `loss` improved by 0.0123.", "train 3.2s · evaluate 0.4s", "[Run log](https://mlbot.example.com/runs/42)"},
		},
		{
			name: "gate_failed",
			c: Comment{
				Outcome: OutcomeGateFailed, HeadSHA: headSHA, BaseSHA: baseSHA,
				Diff:   Compute(base, map[string]float64{"accuracy": 0.9221, "loss": 0.61, "per_class.0": 0.9}, specs, order),
				RunURL: "https://mlbot.example.com/runs/43", Train: 95 * time.Second, Eval: 2 * time.Second,
			},
			want: []string{"### ❌ mlbot: train-eval failed — `accuracy` dropped more than allowed (and 1 more)",
				"❌ drop ≤ 0.005 (dropped 0.02)", "−0.02 (−2.12%) 🔴",
				"**Verdict: failed** — `accuracy`: drop 0.02 > max_drop 0.005; `loss`: 0.61 > max 0.5"},
		},
		{
			name: "passed_outcome_with_failing_gate_shows_failed",
			c: Comment{
				Outcome: OutcomePassed, HeadSHA: headSHA, BaseSHA: baseSHA,
				Diff: Compute(base, map[string]float64{"loss": 0.2}, specs, order),
			},
			want: []string{"failed — `accuracy` missing", "❌ ≥ 0.9 (missing)", "`accuracy`: missing from head (min 0.9)"},
		},
		{
			name: "no_base",
			c: Comment{
				Outcome: OutcomePassed, HeadSHA: headSHA, BaseNote: "The base run failed, so there is nothing to compare with.",
				Diff: Compute(nil, map[string]float64{"accuracy": 0.95, "loss": 0.2}, specs, order),
			},
			want: []string{"| Metric | base | head (`def5678`) | Δ | gate |", "| `accuracy` | — | 0.95 | — | ✅ ≥ 0.9 |",
				"_The base run failed, so there is nothing to compare with._", "**Verdict: passed** — 2 gates pass; no base run to compare with."},
		},
		{
			name: "step_failed",
			c: Comment{
				Outcome: OutcomeStepFailed, HeadSHA: headSHA, BaseSHA: baseSHA,
				Detail:  "evaluate exited with status 1",
				LogTail: "Epoch 1/3 ... loss 0.4\n\x1b[31mTraceback (most recent call last):\x1b[0m\n  File \"eval.py\", line 12, in <module>\n    main()\nKeyError: 'accuracy'\n",
				RunURL:  "https://mlbot.example.com/runs/44", Train: 3 * time.Second, Eval: 150 * time.Millisecond,
			},
			want: []string{"### ❌ mlbot: train-eval step failed", "**Verdict: failed** — evaluate exited with status 1.",
				"<details><summary>Last lines of the log</summary>\n\n```text\nEpoch 1/3", "KeyError: 'accuracy'\n```\n\n</details>"},
		},
		{
			name: "timed_out",
			c: Comment{
				Outcome: OutcomeTimedOut, HeadSHA: headSHA, BaseSHA: baseSHA,
				Detail:  "train ran past pipeline.timeout (2h0m0s); its process group was killed",
				LogTail: "step 1000\rstep 2000\rstep 3000\nstill training\n",
				Train:   2 * time.Hour,
			},
			want: []string{"### ⏱️ mlbot: train-eval timed out", "**Verdict: timed out** — train ran past pipeline.timeout (2h0m0s); its process group was killed.",
				"```text\nstep 3000\nstill training\n```", "train 2h"},
		},
		{
			name: "config_error",
			c: Comment{
				Outcome: OutcomeConfigError, HeadSHA: headSHA,
				Detail: ".mlbot.yml:7:12: metrics.accuracy.goal: want maximize or minimize, got \"maximise\"\n" +
					"  7 |   accuracy: {goal: maximise}\n    |            ^",
				Diff: Compute(nil, map[string]float64{"accuracy": 1}, nil, nil),
			},
			want: []string{"### ⚠️ mlbot: train-eval config error", "```text\n.mlbot.yml:7:12: metrics.accuracy.goal", "    |            ^\n```"},
		},
		{
			name: "error",
			c: Comment{
				Outcome: OutcomeError, HeadSHA: headSHA,
				Detail: "git clone: authentication failed for <https://github.com/acme/model> @octocat",
			},
			want: []string{"**Verdict: error** — mlbot could not run the pipeline. git clone: authentication failed for \\<https://github.com/acme/model\\> @\u200doctocat."},
		},
		{
			name: "canceled",
			c:    Comment{Outcome: OutcomeCanceled, HeadSHA: headSHA},
			want: []string{"### ⏹️ mlbot: train-eval canceled", "**Verdict: canceled** — stopped by `/cancel` or a newer push."},
		},
		{
			name: "fork_not_run",
			c:    Comment{Outcome: OutcomeForkNotRun, HeadSHA: headSHA},
			want: []string{"**Verdict: not run** — pull requests from forks are not run automatically."},
		},
		{
			name: "skipped",
			c: Comment{
				Outcome: OutcomeSkipped, HeadSHA: headSHA, RunURL: "https://mlbot.example.com/runs/47",
				Detail: "none of the 2 files changed since abc1234 matches pipeline.paths",
				Paths:  []string{"model/**", "data/**", "x` @all <!-- y"},
			},
			want: []string{"### ⏭️ mlbot: train-eval not needed",
				"**Verdict: not needed** — no model changes: none of the 2 files changed since abc1234 matches pipeline.paths.",
				"the base's model version is still the one that counts",
				"Watched paths (`pipeline.paths`, plus `.mlbot.yml`): `model/**`, `data/**`, ", "Comment `/retrain` to train and evaluate it anyway."},
		},
		{
			name: "log_with_fences",
			c: Comment{
				Outcome: OutcomeStepFailed, HeadSHA: headSHA, Detail: "train exited with status 2",
				LogTail: "printing markdown:\n```python\nprint('hi')\n```\n````\n</details>\n<!-- mlbot:train-eval --> @octocat\n",
			},
			want: []string{"`````text\nprinting markdown:\n```python", "````\n</details>\n<!\u200d-- mlbot:train-eval --> @octocat\n`````\n\n</details>"},
		},
		{
			name: "hostile_metric_names",
			c: Comment{
				Outcome: OutcomePassed, HeadSHA: headSHA, BaseSHA: baseSHA,
				Diff: Compute(nil, map[string]float64{"a|b": 1, "line\nbreak": 2, "<!-- x -->": 3, "@octocat": 4, "`tick`": 5, "x<br>y": 6}, nil, nil),
			},
			want: []string{"| `a\\|b` |", "| `line break` |", "| `<!\u200d-- x -->` |", "| `@octocat` |", "| `` `tick` `` |"},
		},
		{
			name: "huge_log",
			c: Comment{
				Outcome: OutcomeStepFailed, HeadSHA: headSHA, BaseSHA: baseSHA, Detail: "train exited with status 137",
				Diff:    Compute(base, map[string]float64{"loss": 0.3}, specs, order),
				LogTail: hugeLog(20000),
				RunURL:  "https://mlbot.example.com/runs/45",
			},
			want: []string{"… (earlier lines cut to fit the comment; see the run log)\n", "line 19999: the end of the log\n```",
				"**Verdict: failed** — train exited with status 137.", "[Run log](https://mlbot.example.com/runs/45)"},
		},
		{
			name: "many_metrics",
			c: Comment{
				Outcome: OutcomeGateFailed, HeadSHA: headSHA, BaseSHA: baseSHA,
				Diff:    manyMetrics(5000),
				LogTail: hugeLog(100),
				Train:   time.Minute,
			},
			want: []string{"| `accuracy` | 0.98 | 0.95 |", "more metrics | | | | |", "**Verdict: failed** — `accuracy`: drop 0.03 > max_drop 0.005",
				"_The log was left out to keep this comment within GitHub's size limit; see the run log._", "train 1m"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Render(tt.c)
			checkInvariants(t, got)
			golden := filepath.Join("testdata", "render", tt.name+".md")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("Render() differs from %s (run with -update to accept):\n%s", golden, got)
			}
			for _, s := range tt.want {
				if !strings.Contains(got, s) {
					t.Errorf("Render() lacks %q", s)
				}
			}
		})
	}
}

// checkInvariants holds for every comment: the marker first, the size
// limit, a verdict, and a table whose rows have exactly their five cells.
func checkInvariants(t *testing.T, got string) {
	t.Helper()
	if !strings.HasPrefix(got, Marker+"\n") {
		t.Errorf("first line is not the marker: %.80q", got)
	}
	if n := utf8.RuneCountInString(got); n >= 65536 || textLen(got) > MaxLen {
		t.Errorf("comment has %d characters (%d UTF-16 units), limit %d", n, textLen(got), MaxLen)
	}
	if strings.Count(got, "**Verdict: ") != 1 {
		t.Errorf("comment has no single verdict line")
	}
	if strings.Count(got, "<!--") != 1 {
		t.Errorf("comment has an HTML comment besides the marker")
	}
	inFence := ""
	for _, line := range strings.Split(got, "\n") {
		if inFence != "" {
			if line == inFence {
				inFence = ""
			}
			continue
		}
		if strings.HasPrefix(line, "```") {
			inFence = strings.TrimRight(line, "abcdefghijklmnopqrstuvwxyz")
			continue
		}
		if strings.HasPrefix(line, "| ") {
			if cells := strings.Count(line, "|") - strings.Count(line, `\|`); cells != 6 {
				t.Errorf("table row with %d pipes: %q", cells, line)
			}
		}
	}
	if inFence != "" {
		t.Errorf("code fence %q never closed", inFence)
	}
}

func hugeLog(lines int) string {
	var b strings.Builder
	for i := range lines - 1 {
		fmt.Fprintf(&b, "line %d: epoch %d step %d loss %.4f\n", i, i/100, i%100, 1/float64(i+1))
	}
	fmt.Fprintf(&b, "line %d: the end of the log\n", lines-1)
	return b.String()
}

func manyMetrics(n int) Diff {
	base := map[string]float64{"accuracy": 0.98, "loss": 0.2}
	head := map[string]float64{"accuracy": 0.95, "loss": 0.21}
	for i := range n {
		name := fmt.Sprintf("per_class.%04d.f1", i)
		base[name] = float64(i%100) / 100
		head[name] = float64((i+7)%100) / 100
	}
	return Compute(base, head, specs, order)
}

func TestRenderHugeDetailKeepsVerdict(t *testing.T) {
	for _, o := range []Outcome{OutcomeStepFailed, OutcomeConfigError, OutcomeError, OutcomeGateFailed} {
		t.Run(string(o), func(t *testing.T) {
			got := Render(Comment{
				Outcome: o, HeadSHA: headSHA, BaseNote: strings.Repeat("note ", 50000),
				Detail:  strings.Repeat("x|y@z ", 100000),
				Diff:    manyMetrics(5000),
				LogTail: strings.Repeat("🟢", 200000),
			})
			checkInvariants(t, got)
		})
	}
}

func TestFmtNum(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0"},
		{0.95, "0.95"},
		{0.9512345, "0.9512"},
		{0.012345, "0.01235"},
		{0.0019000000000000128, "0.0019"},
		{1234.56789, "1234.5679"},
		{60000, "60000"},
		{-0.25, "-0.25"},
		{1e-3, "0.001"},
		{2.5e-7, "2.5e-07"},
		{1e15, "1e+15"},
		{-1e-13, "-1e-13"},
		{0.99999, "1"}, // 4 decimals, as the table promises
		{1.99999, "2"},
	}
	for _, tt := range tests {
		if got := fmtNum(tt.in); got != tt.want {
			t.Errorf("fmtNum(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDeltaCell(t *testing.T) {
	tests := []struct {
		name string
		row  Row
		want string
	}{
		{"better", Row{Abs: f(0.0123), Rel: f(0.013), Better: 1}, "+0.0123 (+1.30%) 🟢"},
		{"worse", Row{Abs: f(-0.02), Rel: f(-0.021), Better: -1}, "−0.02 (−2.10%) 🔴"},
		{"no goal", Row{Abs: f(2), Rel: f(0.2)}, "+2 (+20.00%)"},
		{"unchanged", Row{Abs: f(0), Rel: f(0)}, "0 (0.00%)"},
		{"zero base", Row{Abs: f(3), Better: -1}, "+3 🔴"},
		{"missing", Row{}, "—"},
	}
	for _, tt := range tests {
		if got := deltaCell(tt.row); got != tt.want {
			t.Errorf("%s: deltaCell() = %q, want %q", tt.name, got, tt.want)
		}
	}
}
