package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mlbot/mlbot/examples"
)

// runcmdExec runs `mlbot run args...` in-process.
func runcmdExec(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	start := time.Now()
	code := run(ctx, append([]string{"run"}, args...), &out, &errb)
	t.Logf("mlbot run %s: exit %d in %s", strings.Join(args, " "), code, time.Since(start).Round(time.Millisecond))
	return code, out.String(), errb.String()
}

// TestRunCommand drives `mlbot run` on a git repository of the digits
// example: a pull request branch that lowers the learning rate passes
// against main, one that trains a single epoch fails the accuracy gate.
func TestRunCommand(t *testing.T) {
	dir := t.TempDir()
	if err := gitCmd(dir, "init", "--quiet", "--initial-branch=main"); err != nil {
		t.Fatal(err)
	}
	repo := &fakeHost{work: dir} // only its working-copy helpers are used
	if err := repo.writeFiles(examples.Digits, "digits"); err != nil {
		t.Fatal(err)
	}
	mainSHA, err := repo.commit("Add the digits model")
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.checkout("tune-lr", true); err != nil {
		t.Fatal(err)
	}

	// 1. lr 0.5 → 0.1 passes.
	if err := repo.edit(".mlbot.yml", "lr: 0.5", "lr: 0.1"); err != nil {
		t.Fatal(err)
	}
	head1, err := repo.commit("Lower the learning rate to 0.1")
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs := runcmdExec(t, "--dir", dir)
	if code != 0 {
		t.Errorf("lr 0.1: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	runcmdCheck(t, out, errs, mainSHA, head1, "**Verdict: passed**")
	runcmdCheckClean(t, dir)

	// 2. lr 0.001, epochs 1 fails the accuracy gate.
	if err := repo.edit(".mlbot.yml", "lr: 0.1\n  epochs: 40", "lr: 0.001\n  epochs: 1"); err != nil {
		t.Fatal(err)
	}
	head2, err := repo.commit("Train for a single epoch")
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs = runcmdExec(t, "--dir", dir, "--base", "main")
	if code != 1 {
		t.Errorf("lr 0.001, 1 epoch: exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	runcmdCheck(t, out, errs, mainSHA, head2, "**Verdict: failed**")
	if !strings.Contains(out, "`accuracy`") || !strings.Contains(out, "❌") {
		t.Errorf("the failed run does not show the failing accuracy gate:\n%s", out)
	}
	if strings.Contains(errs, "mlbot run:") && strings.Contains(errs, "exit status") {
		t.Errorf("a gate failure printed an error message:\n%s", errs)
	}
	runcmdCheckClean(t, dir)
}

// runcmdCheck checks the rendered comment of a run of head against base.
func runcmdCheck(t *testing.T, out, errs, base, head, verdict string) {
	t.Helper()
	const marker = "<!-- mlbot:train-eval -->"
	if !strings.HasPrefix(out, marker) {
		t.Errorf("stdout does not start with %s:\n%s", marker, out)
	}
	for _, want := range []string{
		"| Metric |",
		"head (`" + head[:7] + "`)",
		"base (`" + base[:7] + "`)",
		"| `accuracy` |",
		verdict,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "could not be evaluated") {
		t.Errorf("the base was not evaluated:\n%s", out)
	}
	for _, want := range []string{"head " + head[:7], "base " + base[:7]} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
}

// runcmdCheckClean checks that mlbot run left no worktree behind.
func runcmdCheckClean(t *testing.T, dir string) {
	t.Helper()
	list, err := gitOut(dir, "worktree", "list", "--porcelain")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(list, "worktree "); n != 1 {
		t.Errorf("mlbot run left %d worktrees:\n%s", n-1, list)
	}
}

func TestRunCommandOutsideGit(t *testing.T) {
	code, out, errs := runcmdExec(t, "--dir", t.TempDir())
	if code != 1 || !strings.Contains(errs, "not a git working copy") || out != "" {
		t.Errorf("mlbot run outside a repository: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
}
