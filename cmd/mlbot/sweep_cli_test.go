package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// sweepModel is a tiny model: its score is 100 − (x − 3)² plus the epochs
// it trained, from the parameters mlbot passes; x = 7 crashes. Its gate
// asks for a score of at least min.
func sweepModel(t *testing.T, extra string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		".mlbot.yml": `version: 1
params:
  x: 0
  epochs: 0
pipeline:
  train: sh train.sh
  metrics: [m.json]
metrics:
  score: {goal: maximize, min: 98}
` + extra,
		"train.sh": `set -e
x=$MLBOT_PARAM_X; e=$MLBOT_PARAM_EPOCHS
[ "$x" != 7 ] || { echo "x=7 diverged" >&2; exit 3; }
echo "{\"score\": $((100 - (x - 3) * (x - 3) + e))}" > m.json
echo "$MLBOT_PARAMS" > params.json
`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := gitCmd(dir, "init", "--quiet", "--initial-branch=main"); err != nil {
		t.Fatal(err)
	}
	if err := gitCmd(dir, "add", "-A"); err != nil {
		t.Fatal(err)
	}
	if err := gitCmd(dir, "-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "--quiet", "-m", "model"); err != nil {
		t.Fatal(err)
	}
	return dir
}

// tableRows returns the trial rows of a sweep table: for each, the
// trial number, its parameter cells, metric, Δ and gates.
func tableRows(t *testing.T, out string) [][]string {
	t.Helper()
	var rows [][]string
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| # ") || strings.HasPrefix(line, "| ---") {
			continue
		}
		var cells []string
		for _, c := range strings.Split(strings.Trim(line, "| "), " | ") {
			cells = append(cells, strings.Trim(c, "`* 🏆"))
		}
		rows = append(rows, cells)
	}
	return rows
}

// TestSweepCommand drives `mlbot run --sweep` on a tiny model: the table
// ranks the trials best first with the failed ones at the bottom, shows
// the delta against the base, the footer counts, and the exit status says
// whether any trial passed the gates.
func TestSweepCommand(t *testing.T) {
	dir := sweepModel(t, "")
	// x = 1..7: scores 96 99 100 99 96 91 and a crash; 2, 3, 4 pass.
	code, out, errs := runcmdExec(t, "--dir", dir, "--sweep", "x=1,2,3,4,5,6,7", "--parallel", "3")
	if code != 0 {
		t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	rows := tableRows(t, out)
	want := [][]string{
		{"3", "3", "100.0000", "+9.0000", "✅", "trial-3"},
		{"2", "2", "99.0000", "+8.0000", "✅", "trial-2"},
		{"4", "4", "99.0000", "+8.0000", "✅", "trial-4"},
		{"1", "1", "96.0000", "+5.0000", "❌ score", "trial-1"},
		{"5", "5", "96.0000", "+5.0000", "❌ score", "trial-5"},
		{"6", "6", "91.0000", "+0.0000", "❌ score", "trial-6"},
		{"7", "7", "—", "—", "💥 failed: step failed: train exited with status 3", "trial-7"},
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d:\n%s", len(rows), len(want), out)
	}
	for i := range want {
		if strings.Join(rows[i], "|") != strings.Join(want[i], "|") {
			t.Errorf("row %d = %q, want %q", i, rows[i], want[i])
		}
	}
	for _, s := range []string{
		"| # | `x` | `score` | Δ vs base (95% CI) | gates | run |",
		"| **3** 🏆 |",
		"Method grid, seed 0, maximize `score` · 6/7 trials done, 0 pruned, 1 failed",
		"`score` 91.0000 on the base",
		"The best of 7 trials is optimistically biased on the test set it was chosen on",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("stdout lacks %q:\n%s", s, out)
		}
	}
	runcmdCheckClean(t, dir)

	// No trial passes: exit 1, the table still printed.
	code, out, _ = runcmdExec(t, "--dir", dir, "--sweep", "x=0,6")
	if code != 1 || len(tableRows(t, out)) != 2 {
		t.Errorf("x=0,6: exit %d with %d rows, want 1 with 2:\n%s", code, len(tableRows(t, out)), out)
	}

	// A malformed space is refused before anything runs, quoting it.
	code, out, errs = runcmdExec(t, "--dir", dir, "--sweep", "x=uniform(5,1)")
	if code != 1 || out != "" || !strings.Contains(errs, "x=uniform(5,1): the lower bound 5 must be below the upper bound 1") || strings.Contains(errs, "trial-") {
		t.Errorf("malformed space: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	code, _, errs = runcmdExec(t, "--dir", dir, "--sweep", "lr=0.1")
	if code != 1 || !strings.Contains(errs, `"lr=0.1": lr is not a parameter declared under params: (declared: x, epochs)`) {
		t.Errorf("undeclared parameter: exit %d\nstderr:\n%s", code, errs)
	}
}

// TestSweepCommandHalving runs the sweep: block's successive halving over
// epochs: 9 candidates at 1 epoch, the best 3 at 3, the best at 9; the
// table shows the winner, 7 pruned trials and the crashed x = 7, and the
// footer its method.
func TestSweepCommandHalving(t *testing.T) {
	dir := sweepModel(t, "sweep:\n  space:\n    x: range(0, 9)\n  method: halving\n  resource: epochs\n  parallel: 3\n")
	if err := gitCmd(dir, "config", "user.name", "T"); err != nil {
		t.Fatal(err)
	}
	// The full budget is epochs' default: 9 (uncommitted: the working copy is swept).
	b, _ := os.ReadFile(filepath.Join(dir, ".mlbot.yml"))
	if err := os.WriteFile(filepath.Join(dir, ".mlbot.yml"), []byte(strings.Replace(string(b), "epochs: 0", "epochs: 9", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runcmdExec(t, "--dir", dir, "--sweep", "")
	if code != 0 {
		t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	rows := tableRows(t, out)
	if len(rows) != 9 {
		t.Fatalf("%d rows, want 9:\n%s", len(rows), out)
	}
	// Columns: #, x, epochs, score, Δ, gates, run. x = 3 (trial 4) wins with 9 epochs.
	if got := strings.Join(rows[0][:4], " "); got != "4 3 9 109.0000" {
		t.Errorf("winner = %q, want trial 4, x 3, 9 epochs, score 109:\n%s", got, out)
	}
	pruned := 0
	for _, r := range rows[1:] {
		if strings.HasPrefix(r[5], "✂️ pruned at rung") {
			pruned++
		}
	}
	if pruned != 7 || !strings.HasPrefix(rows[8][5], "💥 failed") {
		t.Errorf("%d pruned rows, want 7 and the failed x = 7 last:\n%s", pruned, out)
	}
	// 9 trials at 1 epoch, 3 at 3, 1 at 9: 13 runs.
	if n := len(regexp.MustCompile(`(?m)^mlbot run --sweep: trial-`).FindAllString(errs, -1)); n != 13 {
		t.Errorf("%d trial runs, want 13:\n%s", n, errs)
	}
	for _, s := range []string{"| # | `x` | `epochs` | `score` |", "Method successive halving over epochs (eta 3)", "1/9 trials done, 7 pruned, 1 failed"} {
		if !strings.Contains(out, s) {
			t.Errorf("stdout lacks %q:\n%s", s, out)
		}
	}
}
