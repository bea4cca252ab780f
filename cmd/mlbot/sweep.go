package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/jobs"
	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/jobs/sweep"
)

// sweepRequest is what `mlbot run --sweep` was asked.
type sweepRequest struct {
	exec     *jobs.Executor
	top      string // the working copy's top directory
	head     string // its HEAD commit
	baseRef  string // --base
	args     string // the search space given, "" for the sweep: block's
	parallel int    // --parallel, 0 for the Spec's
	tmp      string // a scratch directory, removed by the caller
}

// runSweep runs a sweep on the working copy: it plans the Spec from
// .mlbot.yml and the arguments, evaluates the base once, runs every trial
// (at most parallel at once) through the executor in a copy of the working
// copy with the trial's parameters, and prints the table best first. It
// exits 1 when no trial passes the gates.
func runSweep(ctx context.Context, req sweepRequest, stdout, stderr io.Writer) error {
	data, err := os.ReadFile(filepath.Join(req.top, configs.RepoConfigFile))
	if err != nil {
		return fmt.Errorf("mlbot run --sweep: %w", err)
	}
	cfg, err := configs.ParseRepoConfig(configs.RepoConfigFile, data)
	if err != nil {
		return err
	}
	spec, err := sweep.NewSpec(cfg, req.args)
	if err != nil {
		return fmt.Errorf("mlbot run --sweep: %w", err)
	}
	if req.parallel > 0 {
		spec.Parallel = req.parallel
	}
	files, err := gitOut(req.top, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	if err != nil {
		return err
	}

	var base *jobs.Run
	note := ""
	if ref, err := resolveBase(req.top, req.baseRef); err != nil {
		note = err.Error()
	} else if base, err = runBase(ctx, req.exec, req.top, ref, filepath.Join(req.tmp, "base"), stderr); err != nil {
		return err
	} else if !base.HasMetrics() {
		note = "the base " + ref[:7] + " could not be evaluated: " + base.Detail
		base = nil
	}
	if note != "" {
		fmt.Fprintf(stderr, "mlbot run --sweep: %s; no Δ vs base\n", note)
	}

	s := &trialRunner{req: req, spec: spec, base: base, files: strings.Split(strings.TrimRight(files, "\x00"), "\x00"), stderr: stderr}
	var rows []sweep.Row
	planned := len(spec.Candidates())
	if spec.Method == sweep.MethodHalving {
		h, err := sweep.NewHalving(spec)
		if err != nil {
			return err
		}
		var all []sweep.Row
		trials, done := h.Next(nil)
		for !done {
			got, err := s.runAll(ctx, trials)
			if err != nil {
				return err
			}
			all = append(all, got...)
			results := make([]sweep.Result, len(got))
			for i, r := range got {
				results[i] = r.Result
			}
			trials, done = h.Next(results)
		}
		results := make([]sweep.Result, len(all))
		for i, r := range all {
			results[i] = r.Result
		}
		// One row a candidate: that of the last rung it ran.
		for _, fin := range h.Final(results) {
			for _, r := range all {
				if r.Trial.Index == fin.Trial.Index && r.Trial.Rung == fin.Trial.Rung {
					r.Result = fin
					rows = append(rows, r)
				}
			}
		}
	} else if rows, err = s.runAll(ctx, spec.Candidates()); err != nil {
		return err
	}

	t := sweep.Table{Spec: spec, Rows: rows, Planned: planned, Compute: s.compute}
	if base != nil {
		if v, ok := base.Metrics[spec.Metric]; ok {
			t.Base = &v
		}
	}
	fmt.Fprintf(stdout, "### mlbot sweep of %s at %s\n\n", filepath.Base(req.top), req.head[:7])
	fmt.Fprint(stdout, t.Markdown())
	for _, r := range rows {
		if r.Status == sweep.StatusDone && r.Passed {
			return nil
		}
	}
	return exitError(1)
}

// trialRunner runs the trials of one sweep.
type trialRunner struct {
	req    sweepRequest
	spec   sweep.Spec
	base   *jobs.Run
	files  []string // the working copy's files, tracked or not ignored
	stderr io.Writer

	mu      sync.Mutex // guards compute and writes to stderr
	compute time.Duration
}

// runAll runs trials, at most spec.Parallel at once, and returns their
// rows in the order of trials.
func (s *trialRunner) runAll(ctx context.Context, trials []sweep.Trial) ([]sweep.Row, error) {
	rows := make([]sweep.Row, len(trials))
	errs := make([]error, len(trials))
	sem := make(chan struct{}, max(1, s.spec.Parallel))
	var wg sync.WaitGroup
	for i, tr := range trials {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			rows[i], errs[i] = s.run(ctx, tr)
		}()
	}
	wg.Wait()
	return rows, errors.Join(errs...)
}

// run runs one trial in its own copy of the working copy (trials write
// their outputs side by side) and judges it against the base.
func (s *trialRunner) run(ctx context.Context, tr sweep.Trial) (sweep.Row, error) {
	id := fmt.Sprintf("trial-%d", tr.Index+1)
	if tr.Rung > 0 {
		id = fmt.Sprintf("trial-%d-rung-%d", tr.Index+1, tr.Rung+1)
	}
	dir := filepath.Join(s.req.tmp, id)
	if err := copyFiles(s.req.top, dir, s.files); err != nil {
		return sweep.Row{}, err
	}
	defer os.RemoveAll(dir)
	var desc []string
	for _, p := range s.spec.Params() {
		desc = append(desc, p+"="+tr.Params[p])
	}
	if s.spec.Resource != "" {
		desc = append(desc, s.spec.Resource+"="+tr.Params[s.spec.Resource])
	}
	s.mu.Lock() // trials run side by side; their progress lines share stderr
	fmt.Fprintf(s.stderr, "mlbot run --sweep: %s %s\n", id, strings.Join(desc, " "))
	s.mu.Unlock()
	run := &jobs.Run{ID: id, Kind: jobs.KindPullRequest, SHA: s.req.head, Params: tr.Params}
	if _, err := s.req.exec.Run(ctx, dir, run); err != nil {
		return sweep.Row{}, err
	}
	if run.Outcome == "" {
		jobs.Decide(run, s.base)
	}
	s.mu.Lock()
	s.compute += run.Train + run.Evaluate
	s.mu.Unlock()
	row := sweep.Row{Result: sweep.Result{Trial: tr, Status: sweep.StatusFailed}, Run: id}
	v, ok := run.Metrics[s.spec.Metric]
	switch {
	case !run.HasMetricsOutcome():
		row.Detail = strings.ReplaceAll(string(run.Outcome), "_", " ") + ": " + firstLine(run.Detail)
	case !ok:
		row.Detail = "no metric " + s.spec.Metric
	default:
		row.Status, row.Metric, row.Passed = sweep.StatusDone, v, run.Outcome == report.OutcomePassed
		if !row.Passed {
			row.Detail = failedGates(run, s.base)
		}
		if s.base != nil {
			if b, ok := s.base.Metrics[s.spec.Metric]; ok {
				d := v - b
				row.Delta = &d
			}
		}
	}
	return row, nil
}

// failedGates names the metrics whose gates run failed.
func failedGates(run, base *jobs.Run) string {
	var baseMetrics map[string]float64
	if base != nil {
		baseMetrics = base.Metrics
	}
	failed := report.Compute(baseMetrics, run.Metrics, run.Specs, run.Order).Failed
	if len(failed) == 0 {
		return "gate failed"
	}
	return strings.Join(failed, ", ")
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if r := []rune(s); len(r) > 80 {
		s = string(r[:80]) + "…"
	}
	return s
}

// copyFiles copies the regular files names (relative to src) into dst;
// symbolic links are copied as links, anything else is skipped.
func copyFiles(src, dst string, names []string) error {
	for _, name := range names {
		if name == "" {
			continue
		}
		from, to := filepath.Join(src, name), filepath.Join(dst, name)
		fi, err := os.Lstat(from)
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted in the working copy
		}
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return err
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(from)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, to); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(from)
			if err != nil {
				return err
			}
			if err := os.WriteFile(to, b, fi.Mode().Perm()); err != nil {
				return err
			}
		}
	}
	return nil
}
