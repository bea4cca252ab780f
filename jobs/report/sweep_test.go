package report

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

func f64(v float64) *float64 { return &v }

// TestRenderSweep renders sweep comments: the best done trial marked,
// the Δ with its confidence interval where one exists, queued, running,
// cancelled and failed trials, the footer and the cancel reason.
func TestRenderSweep(t *testing.T) {
	table := SweepTable{Params: []string{"lr"}, Metric: "accuracy", Goal: "maximize", Method: "grid", Seed: 3, Planned: 5,
		Base: f64(0.9), Compute: 1500 * time.Millisecond,
		Rows: []SweepRow{
			{Index: 2, Values: []string{"0.3"}, Status: TrialDone, Metric: 0.95, Delta: f64(0.05), CI: true, Low: 0.01, High: 0.09, Passed: true, Run: "https://mlbot.example.com/runs/abc", Version: 4},
			{Index: 0, Values: []string{"0.1"}, Status: TrialDone, Metric: 0.90, Delta: f64(0), Passed: true, Run: "https://mlbot.example.com/runs/def"},
			{Index: 1, Values: []string{"0.2"}, Status: TrialRunning},
			{Index: 3, Values: []string{"0.4"}, Status: TrialQueued},
			{Index: 4, Values: []string{"0.5"}, Status: TrialFailed, Detail: "step failed: train exited 3"},
		}}
	tests := []struct {
		name    string
		c       SweepComment
		want    []string
		notWant []string
	}{
		{"running", SweepComment{HeadSHA: "5d1c0e2aa", State: "running", Finished: 3, Total: 5, Table: table}, []string{
			SweepMarker + "\n### ⏳ mlbot sweep of `5d1c0e2`: 3/5 done",
			"| # | `lr` | `accuracy` | Δ vs base (95% CI) | gates | run |",
			"| **3** 🏆 | `0.3` | **0.9500** | +0.0500 [+0.0100, +0.0900] | ✅ | [run](https://mlbot.example.com/runs/abc) · v4 |",
			"| 1 | `0.1` | 0.9000 | +0.0000 | ✅ | [run](https://mlbot.example.com/runs/def) |",
			"| 2 | `0.2` | — | — | 🏃 running |",
			"| 4 | `0.4` | — | — | ⏳ queued |",
			"| 5 | `0.5` | — | — | 💥 failed: step failed: train exited 3 |",
			"Method grid, seed 3, maximize `accuracy` · 2/5 trials done, 0 pruned, 1 failed · compute 1.5s · `accuracy` 0.9000 on the base",
			"The best of 5 trials is optimistically biased",
		}, []string{"cancelled"}},
		{"cancelled", SweepComment{HeadSHA: "5d1c0e2", State: "cancelled", Detail: "superseded by 7777777", Finished: 2, Total: 5, Table: table},
			[]string{"### 🚫 mlbot sweep of `5d1c0e2`: cancelled (2/5 done)", "Cancelled: superseded by 7777777. Trials still queued or running were stopped."}, nil},
		{"finished", SweepComment{HeadSHA: "5d1c0e2", State: "finished", Finished: 5, Total: 5, Table: table},
			[]string{"### mlbot sweep of `5d1c0e2`: 5/5 done"}, []string{"⏳ mlbot"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := RenderSweep(tt.c)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("lacks %q:\n%s", w, got)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(got, w) {
					t.Errorf("has %q:\n%s", w, got)
				}
			}
		})
	}
}

// TestRenderSweepAttack: parameter values, metric names and failure
// details come from a comment or a pull request's .mlbot.yml. None of
// them may add table cells, mention anyone, forge another mlbot marker
// or inject a link or HTML.
func TestRenderSweepAttack(t *testing.T) {
	evil := "x|y`<img src=x>` @admin <!-- mlbot:train-eval --> [a](https://evil.example)\u202e"
	c := SweepComment{HeadSHA: "5d1c0e2", State: "cancelled", Detail: evil, Finished: 1, Total: 2, Table: SweepTable{
		Params: []string{"lr|x"}, Metric: evil, Goal: "maximize", Method: "grid", Planned: 2,
		Rows: []SweepRow{
			{Index: 0, Values: []string{evil}, Status: TrialDone, Metric: 0.5, Detail: evil, Run: "https://mlbot.example.com/runs/a) [x](https://evil.example"},
			{Index: 1, Values: []string{"0.2"}, Status: TrialFailed, Detail: evil, Run: evil},
		}}}
	got := RenderSweep(c)
	// The marker starts the comment; nothing else can pass for one (an
	// HTML comment needs an unescaped "<!--").
	if !strings.HasPrefix(got, SweepMarker) || regexp.MustCompile(`(^|[^\\])<!--`).FindAllStringIndex(got, -1)[0][0] != 0 ||
		len(regexp.MustCompile(`(^|[^\\])<!--`).FindAllString(got, -1)) != 1 {
		t.Errorf("a forged marker:\n%s", got)
	}
	// Outside code spans (which GitHub and GitLab render literally) no
	// mention and no link is left.
	prose := regexp.MustCompile("`[^`]*`").ReplaceAllString(regexp.MustCompile("``.*?``").ReplaceAllString(got, ""), "")
	if strings.Contains(prose, "@admin") {
		t.Errorf("a mention reaches the comment:\n%s", got)
	}
	if strings.Contains(got, "\u202e") {
		t.Errorf("a format character reaches the comment:\n%s", got)
	}
	if regexp.MustCompile(`[^\\]\]\(https://evil`).MatchString(prose) || strings.Contains(prose, "<img") {
		t.Errorf("a link reaches the comment:\n%s", got)
	}
	// Every table line has as many cell separators as the header.
	unescaped := regexp.MustCompile(`(^|[^\\])\|`)
	var header int
	for _, line := range strings.Split(got, "\n") {
		if !strings.HasPrefix(line, "|") {
			continue
		}
		// Pipes inside code spans are escaped too (GitHub splits cells first).
		n := len(unescaped.FindAllString(line, -1))
		if header == 0 {
			header = n
		} else if n != header {
			t.Errorf("line has %d cell separators, the header %d: %s", n, header, line)
		}
	}
	if header != 7 {
		t.Errorf("header has %d separators, want 7:\n%s", header, got)
	}
}
