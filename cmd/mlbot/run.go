package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/mlbot/mlbot/jobs"
	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/runners"
	"github.com/mlbot/mlbot/runners/git"
	"github.com/mlbot/mlbot/runners/local"
)

// cmdRun runs the pipeline on a local working copy and on its base, and
// prints the markdown the pull request would get. It exits 1 when the run
// does not pass.
func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mlbot run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", ".", "the working copy (a git repository) to run")
	baseRef := fs.String("base", "", "base to compare against (default: the merge base with origin's default branch, main or master)")
	sweepArgs := fs.String("sweep", "", "run a sweep instead: a search space such as 'lr=0.05,0.1,0.5 epochs=10,20' ('' for the sweep: block's)")
	parallel := fs.Int("parallel", 0, "with --sweep: trials run at once (default: the sweep: block's parallel)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("mlbot run: unexpected arguments %q (quote the --sweep space as one argument)", fs.Args())
	}
	sweeping := false
	fs.Visit(func(f *flag.Flag) { sweeping = sweeping || f.Name == "sweep" })
	top, err := gitOut(*dir, "rev-parse", "--show-toplevel")
	if err != nil {
		return fmt.Errorf("%s is not a git working copy: %w", *dir, err)
	}
	head, err := git.Head(ctx, top)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "mlbot-run-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	exec := &jobs.Executor{Runners: runners.Set{runners.Local: local.New()}, LogDir: filepath.Join(tmp, "logs")}
	if sweeping {
		return runSweep(ctx, sweepRequest{exec: exec, top: top, head: head, baseRef: *baseRef, args: *sweepArgs, parallel: *parallel, tmp: tmp}, stdout, stderr)
	}

	// The head runs in place, uncommitted changes included: this is the
	// change about to be pushed.
	fmt.Fprintf(stderr, "mlbot run: head %s (working copy %s)\n", head[:7], top)
	run := &jobs.Run{ID: "head", Kind: jobs.KindPullRequest, SHA: head}
	if _, err := exec.Run(ctx, top, run); err != nil {
		return err
	}
	var base *jobs.Run
	if run.Outcome == "" {
		ref, err := resolveBase(top, *baseRef)
		if err != nil {
			run.BaseNote = err.Error()
		} else {
			base, err = runBase(ctx, exec, top, ref, filepath.Join(tmp, "base"), stderr)
			if err != nil {
				return err
			}
			if base != nil && !base.HasMetrics() {
				run.BaseNote = "the base " + ref[:7] + " could not be evaluated: " + base.Detail
				base = nil
			}
		}
		jobs.Decide(run, base)
	}
	fmt.Fprintln(stdout, report.Render(jobs.CommentFor(run, base, "")))
	if run.Outcome != report.OutcomePassed {
		return exitError(1)
	}
	return nil
}

// resolveBase returns the commit to compare against: ref's merge base with
// HEAD, where ref defaults to origin's default branch, then main, master.
func resolveBase(top, ref string) (string, error) {
	candidates := []string{ref}
	if ref == "" {
		candidates = nil
		if sym, err := gitOut(top, "symbolic-ref", "--quiet", "refs/remotes/origin/HEAD"); err == nil {
			candidates = append(candidates, sym)
		}
		candidates = append(candidates, "origin/main", "main", "origin/master", "master")
	}
	for _, c := range candidates {
		if mb, err := gitOut(top, "merge-base", "HEAD", c); err == nil && mb != "" {
			return mb, nil
		}
	}
	return "", errors.New("no base found: pass --base REF")
}

// runBase runs the pipeline on base in a temporary worktree.
func runBase(ctx context.Context, exec *jobs.Executor, top, base, dir string, stderr io.Writer) (*jobs.Run, error) {
	fmt.Fprintf(stderr, "mlbot run: base %s\n", base[:7])
	if err := gitCmd(top, "worktree", "add", "--detach", "--force", dir, base); err != nil {
		return nil, err
	}
	defer gitCmd(top, "worktree", "remove", "--force", dir)
	run := &jobs.Run{ID: "base", Kind: jobs.KindBaseline, SHA: base}
	if _, err := exec.Run(ctx, dir, run); err != nil {
		return nil, err
	}
	// The base is judged on its own (absolute gates only): it is what the
	// head is compared with, not what is under review.
	jobs.Decide(run, nil)
	run.State = jobs.RunFinished
	return run, nil
}
