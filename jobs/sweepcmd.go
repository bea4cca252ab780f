package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/jobs/store"
	"github.com/mlbot/mlbot/jobs/sweep"
)

// SweepStatusContext is the commit status context of a pull request's
// sweep.
const SweepStatusContext = "mlbot/sweep"

// sweepLockWait bounds how long a sweep's dispatcher waits for another
// holding the sweep's lock before its task is retried.
const sweepLockWait = 10 * time.Second

// cmdSweep plans a sweep of the pull request's head from the search space
// in args (the sweep: block's without), records it and dispatches its
// first trials. The space, params and sweep settings come from the head's
// .mlbot.yml, which the trials train; who may sweep comes from the
// default branch's (permissions.sweep).
func (w *Worker) cmdSweep(ctx context.Context, cc *commandContext, args []string) (string, error) {
	pr, repo := cc.pr, cc.ev.Repo
	if pr.HeadSHA == "" {
		return "mlbot does not know this pull request's head commit yet; push a commit, then `/sweep`.", nil
	}
	admitted, trusted, err := w.admission(ctx, cc.f, repo, pr)
	if err != nil {
		return "", err
	}
	if !admitted {
		return "This pull request's head `" + short(pr.HeadSHA) + "` is waiting for `/ok-to-test` from a maintainer; `/sweep` cannot bypass that.", nil
	}
	cfg, err := w.configAt(ctx, cc.f, repo, pr.HeadSHA)
	var cerr *configs.ConfigError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "`" + short(pr.HeadSHA) + "` has no `.mlbot.yml`; there is nothing to sweep.", nil
	case errors.As(err, &cerr):
		return "`/sweep` cannot read `.mlbot.yml` of `" + short(pr.HeadSHA) + "`:\n\n```\n" + err.Error() + "\n```", nil
	case err != nil:
		return "", err
	}
	spec, err := sweep.NewSpec(cfg, strings.Join(args, " "))
	if err != nil {
		return "`/sweep` was not started: " + report.StripFormatMarkdown(err.Error()), nil
	}
	id, err := w.store.ClaimID(ctx, "sweep", cc.commentKey)
	if err != nil {
		return "", err
	}
	if _, err := w.store.GetSweep(ctx, id); err == nil {
		return "", nil // a retried task: this comment's sweep exists
	} else if !errors.Is(err, store.ErrNoSweep) {
		return "", err
	}
	// One sweep a pull request at a time: a new one replaces the old.
	if err := w.cancelSweep(ctx, repo, pr.Number, "replaced by a new `/sweep` of @"+cc.user, ""); err != nil {
		return "", err
	}
	sw, err := newSweep(id, repo, pr, trusted, spec, cc.user)
	if err != nil {
		return "", err
	}
	if err := w.store.SaveSweep(ctx, sw); err != nil {
		return "", err
	}
	if err := w.store.SetPRSweep(ctx, repo, pr.Number, id); err != nil {
		return "", err
	}
	if err := w.advanceSweep(ctx, id); err != nil {
		return "", err
	}
	return fmt.Sprintf("Sweeping `%s`: %d trials (%s, ranked by %s), at most %d at once; the sweep comment shows them as they finish.",
		short(pr.HeadSHA), sw.Planned, spec.MethodText(), report.StripFormatMarkdown(spec.Metric), spec.Parallel), nil
}

// newSweep plans sweep id of pull request pr by spec: every trial of a
// grid or random sweep, or the first rung of successive halving.
func newSweep(id string, repo bot.Repo, pr *bot.PullRequest, trusted bool, spec sweep.Spec, by string) (*store.Sweep, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	trials := spec.Candidates()
	planned := len(trials)
	if spec.Method == sweep.MethodHalving {
		h, err := sweep.NewHalving(spec)
		if err != nil {
			return nil, err
		}
		trials, _ = h.Next(nil)
	}
	sw := &store.Sweep{ID: id, Repo: repo, PR: pr, SHA: pr.HeadSHA, Trusted: trusted, Spec: b, Planned: planned,
		State: store.SweepRunning, By: by, Created: time.Now().UTC()}
	for _, t := range trials {
		sw.Trials = append(sw.Trials, store.SweepTrial{Index: t.Index, Rung: t.Rung, Params: t.Params})
	}
	return sw, nil
}

// configAt reads and parses .mlbot.yml of commit sha; the error wraps
// fs.ErrNotExist when the commit has none and is a *configs.ConfigError
// when it is invalid.
func (w *Worker) configAt(ctx context.Context, f cloneAuthorizer, repo bot.Repo, sha string) (*configs.RepoConfig, error) {
	co, done, err := w.configCheckout(ctx, f, repo)
	if err != nil {
		return nil, fmt.Errorf("config of %s: %w", short(sha), err)
	}
	defer done()
	if err := co.Fetch(ctx, sha); err != nil {
		return nil, fmt.Errorf("config of %s: fetch: %w", short(sha), err)
	}
	data, err := co.ShowFile(ctx, sha, configs.RepoConfigFile)
	if err != nil {
		return nil, err
	}
	return configs.ParseRepoConfig(configs.RepoConfigFile, data)
}

// lockSweep takes sweep id's lock, waiting a little for another holder.
func (w *Worker) lockSweep(ctx context.Context, id string) (release func(), err error) {
	deadline := time.Now().Add(sweepLockWait)
	for {
		release, ok, err := w.store.Lock(ctx, "sweep:"+id, time.Minute)
		if err != nil || ok {
			return release, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("sweep %s: another worker holds its lock", id)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// advanceSweep brings sweep id forward and shows where it is: it plans
// halving's next rung once the one before it finished, starts trials
// until parallel of them are queued or running, marks the sweep finished
// once every trial is, and edits the sweep comment and the mlbot/sweep
// status. It runs when the sweep starts, whenever one of its trials
// finishes, and when it is cancelled; it is safe to run twice.
func (w *Worker) advanceSweep(ctx context.Context, id string) error {
	release, err := w.lockSweep(ctx, id)
	if err != nil {
		return err
	}
	defer release()
	sw, err := w.store.GetSweep(ctx, id)
	if err != nil {
		return err
	}
	var spec sweep.Spec
	if err := json.Unmarshal(sw.Spec, &spec); err != nil {
		return fmt.Errorf("sweep %s: %w", id, err)
	}
	runs, err := w.trialRuns(ctx, sw)
	if err != nil {
		return err
	}
	var h *sweep.Halving
	if sw.State == store.SweepRunning {
		done := true
		if spec.Method == sweep.MethodHalving {
			if h, done, err = replayHalving(sw, spec, runs); err != nil {
				return err
			}
		}
		if err := w.dispatchTrials(ctx, sw, spec, runs); err != nil {
			return err
		}
		if done && allFinished(sw.Trials, runs) {
			sw.State, sw.Finished = store.SweepFinished, time.Now().UTC()
		}
		if err := w.store.SaveSweep(ctx, sw); err != nil {
			return err
		}
	} else if spec.Method == sweep.MethodHalving {
		h, _, _ = replayHalving(sw, spec, runs) // for the pruned marks; plans nothing new once not running
	}
	return w.showSweep(ctx, sw, spec, runs, h)
}

// trialRuns reads the runs of sw's dispatched trials, by run id.
func (w *Worker) trialRuns(ctx context.Context, sw *store.Sweep) (map[string]*Run, error) {
	runs := make(map[string]*Run)
	for _, t := range sw.Trials {
		if t.RunID == "" {
			continue
		}
		run, err := w.store.GetRun(ctx, t.RunID)
		if errors.Is(err, ErrNoRun) {
			continue
		}
		if err != nil {
			return nil, err
		}
		runs[t.RunID] = run
	}
	return runs, nil
}

// finished reports whether trial t has run to its end.
func finished(t store.SweepTrial, runs map[string]*Run) bool {
	r := runs[t.RunID]
	return r != nil && r.State == RunFinished
}

func allFinished(trials []store.SweepTrial, runs map[string]*Run) bool {
	for _, t := range trials {
		if !finished(t, runs) {
			return false
		}
	}
	return true
}

// replayHalving rebuilds sw's successive halving from the results of its
// finished rungs (Halving is deterministic: the same results give the
// same promotions), appending the next rung's trials to sw once the rung
// before it finished. done reports that no rung is left to plan.
func replayHalving(sw *store.Sweep, spec sweep.Spec, runs map[string]*Run) (*sweep.Halving, bool, error) {
	h, err := sweep.NewHalving(spec)
	if err != nil {
		return nil, false, err
	}
	next, done := h.Next(nil)
	for rung := 0; !done; rung++ {
		var have []store.SweepTrial
		for _, t := range sw.Trials {
			if t.Rung == rung {
				have = append(have, t)
			}
		}
		if len(have) == 0 {
			if sw.State != store.SweepRunning {
				return h, false, nil
			}
			for _, t := range next {
				tr := store.SweepTrial{Index: t.Index, Rung: t.Rung, Params: t.Params}
				sw.Trials = append(sw.Trials, tr)
				have = append(have, tr)
			}
		}
		if !allFinished(have, runs) {
			return h, false, nil
		}
		results := make([]sweep.Result, 0, len(have))
		for _, t := range have {
			results = append(results, trialResult(spec, t, runs[t.RunID]))
		}
		next, done = h.Next(results)
	}
	return h, true, nil
}

// trialResult is how trial t ended in run (nil: not run).
func trialResult(spec sweep.Spec, t store.SweepTrial, run *Run) sweep.Result {
	res := sweep.Result{Trial: sweep.Trial{Index: t.Index, Rung: t.Rung, Params: t.Params}, Status: sweep.StatusFailed}
	if run == nil || run.State != RunFinished || !run.HasMetricsOutcome() {
		return res
	}
	if v, ok := run.Metrics[spec.Metric]; ok {
		res.Status, res.Metric, res.Passed = sweep.StatusDone, v, run.Outcome == report.OutcomePassed
	}
	return res
}

// dispatchTrials starts sw's trials in order until spec.Parallel of them
// are queued or running: a sweep holds at most that many places in the
// pipeline queue, so other pull requests' runs queue behind at most
// Parallel of its trials, never behind all of them.
func (w *Worker) dispatchTrials(ctx context.Context, sw *store.Sweep, spec sweep.Spec, runs map[string]*Run) error {
	active := 0
	for _, t := range sw.Trials {
		if t.RunID != "" && !finished(t, runs) {
			active++
		}
	}
	for i := range sw.Trials {
		if active >= max(1, spec.Parallel) {
			break
		}
		t := &sw.Trials[i]
		if t.RunID != "" {
			continue
		}
		run, err := w.startTrial(ctx, sw, *t)
		if err != nil {
			return err
		}
		t.RunID, runs[run.ID] = run.ID, run
		active++
		// Saved at once: a crash after the enqueue must not lose which
		// run the trial is (ClaimID gives a retry the same id anyway).
		if err := w.store.SaveSweep(ctx, sw); err != nil {
			return err
		}
	}
	return nil
}

// startTrial records trial t of sw as a pipeline run of its own and
// queues it on the pipeline queue, where any worker serving the queue
// takes it. The run is of the pull request's head with the trial's
// parameters; its base is found (and if need be trained, once for all
// trials) as for any pull request run.
func (w *Worker) startTrial(ctx context.Context, sw *store.Sweep, t store.SweepTrial) (*Run, error) {
	p := PipelinePayload{Kind: KindPullRequest, Repo: sw.Repo, SHA: sw.SHA, PR: sw.PR, Delivery: "sweep:" + sw.ID,
		Trusted: sw.Trusted, Params: t.Params, Force: true, Sweep: sw.ID, Trial: t.Index, Rung: t.Rung}
	key := paramsKey(runKey(sw.Repo, KindPullRequest, sw.SHA, sw.PR.Number, fmt.Sprintf("sweep:%s:%d:%d", sw.ID, t.Index, t.Rung)), t.Params)
	id, err := w.store.ClaimID(ctx, "run", key)
	if err != nil {
		return nil, err
	}
	p.RunID = id
	if _, err := w.store.CreateRun(ctx, p.newRun()); err != nil {
		return nil, err
	}
	if err := w.enqueuePipeline(ctx, p); err != nil {
		return nil, err
	}
	return w.store.GetRun(ctx, id)
}

// cancelSweep cancels the pull request's sweep, unless it is finished or
// of commit keep: its trials still queued or running are cancelled (the
// run machinery of /cancel), those not started never start, and the
// sweep comment says so.
func (w *Worker) cancelSweep(ctx context.Context, repo bot.Repo, number int, reason, keep string) error {
	id, err := w.store.PRSweep(ctx, repo, number)
	if err != nil || id == "" {
		return err
	}
	release, err := w.lockSweep(ctx, id)
	if err != nil {
		return err
	}
	sw, err := w.store.GetSweep(ctx, id)
	if errors.Is(err, store.ErrNoSweep) || (err == nil && (sw.State != store.SweepRunning || sw.SHA == keep)) {
		release()
		return nil
	}
	if err != nil {
		release()
		return err
	}
	sw.State, sw.Detail, sw.Finished = store.SweepCancelled, reason, time.Now().UTC()
	err = w.store.SaveSweep(ctx, sw)
	release()
	if err != nil {
		return err
	}
	for _, t := range sw.Trials {
		if t.RunID != "" {
			if err := w.cancelRun(ctx, t.RunID, reason); err != nil {
				return err
			}
		}
	}
	w.log.Info("sweep cancelled", "sweep", id, "repo", repo.FullName, "number", number, "reason", reason)
	return w.advanceSweep(ctx, id)
}

// cancelSweepOf cancels the pull request's sweep in flight, if any, and
// reports whether there was one.
func (w *Worker) cancelSweepOf(ctx context.Context, repo bot.Repo, number int, reason string) (bool, error) {
	id, err := w.store.PRSweep(ctx, repo, number)
	if err != nil || id == "" {
		return false, err
	}
	sw, err := w.store.GetSweep(ctx, id)
	if errors.Is(err, store.ErrNoSweep) {
		return false, nil
	}
	if err != nil || sw.State != store.SweepRunning {
		return false, err
	}
	return true, w.cancelSweep(ctx, repo, number, reason, "")
}

// showSweep edits the sweep comment and sets the mlbot/sweep status:
// running with "k/N done" while trials run, then its conclusion, linking
// the sweep page; on a host with check runs, the check run sweepCheck
// adds to it.
func (w *Worker) showSweep(ctx context.Context, sw *store.Sweep, spec sweep.Spec, runs map[string]*Run, h *sweep.Halving) error {
	f, err := w.forgeOf(sw.Repo)
	if err != nil {
		return err
	}
	table, err := w.sweepTable(ctx, sw, spec, runs, h)
	if err != nil {
		return err
	}
	total := sw.Planned
	if h != nil {
		total = 0
		for _, r := range h.Rungs() {
			total += r.Trials
		}
	}
	done := 0
	for _, t := range sw.Trials {
		if finished(t, runs) {
			done++
		}
	}
	page := w.opts.PublicURL + "/sweeps/" + sw.ID
	c := report.SweepComment{HeadSHA: sw.SHA, State: string(sw.State), Detail: sw.Detail, Finished: done, Total: total, Table: table.Report(),
		PageURL: page}
	if err := w.upsertSweepComment(ctx, f, sw.Repo, sw.PR.Number, report.RenderSweep(c)); err != nil {
		return err
	}
	st := bot.Status{Context: SweepStatusContext, Ref: sw.PR.HeadRef, State: bot.StateRunning,
		Description: fmt.Sprintf("%d/%d done", done, total), TargetURL: page}
	best := bestTrial(c.Table)
	switch sw.State {
	case store.SweepCancelled:
		st.State, st.Description = stateOf(report.OutcomeCanceled), report.StripFormat(fmt.Sprintf("cancelled (%d/%d done): %s", done, total, sw.Detail))
	case store.SweepFinished:
		st.State, st.Description = bot.StateFailure, fmt.Sprintf("%d/%d done; no trial passed the gates", done, total)
		if best != nil && best.Passed {
			st.State = bot.StateSuccess
			st.Description = fmt.Sprintf("%d/%d done; best: trial %d, %s %.4f", done, total, best.Index+1, spec.Metric, best.Metric)
		}
	}
	if showsCheckRuns(f) {
		sweepCheck(sw, c, best)(&st)
	}
	if len(st.Description) > 140 {
		st.Description = st.Description[:137] + "..."
	}
	return f.CreateStatus(ctx, sw.Repo, sw.SHA, st)
}

// bestTrial is the table's best done trial, nil when none is done.
func bestTrial(t report.SweepTable) *report.SweepRow {
	for i := range t.Rows {
		if t.Rows[i].Status == report.TrialDone {
			return &t.Rows[i]
		}
	}
	return nil
}

// sweepTable assembles sw's table: one row a candidate (for halving,
// the newest rung it reached), with the base's metric, the Δ and its
// confidence interval where per-example results exist.
func (w *Worker) sweepTable(ctx context.Context, sw *store.Sweep, spec sweep.Spec, runs map[string]*Run, h *sweep.Halving) (sweep.Table, error) {
	t := sweep.Table{Spec: spec, Planned: sw.Planned}
	bases := map[string]*Run{}
	var finals []sweep.Result
	newest := map[int]store.SweepTrial{}
	for _, tr := range sw.Trials {
		if prev, ok := newest[tr.Index]; !ok || tr.Rung >= prev.Rung {
			newest[tr.Index] = tr
		}
	}
	var results []sweep.Result
	for _, tr := range sw.Trials {
		run := runs[tr.RunID]
		if finished(tr, runs) {
			t.Compute += run.Train + run.Evaluate
			results = append(results, trialResult(spec, tr, run))
		}
	}
	if h != nil {
		finals = h.Final(results)
	} else {
		finals = results
	}
	final := map[[2]int]sweep.Result{}
	for _, r := range finals {
		final[[2]int{r.Trial.Index, r.Trial.Rung}] = r
	}
	for _, idx := range slices.Sorted(maps.Keys(newest)) {
		tr := newest[idx]
		run := runs[tr.RunID]
		row := sweep.Row{Result: sweep.Result{Trial: sweep.Trial{Index: tr.Index, Rung: tr.Rung, Params: tr.Params}}}
		if run != nil {
			row.Run = w.runURL(run.ID)
			row.Version = run.ModelVersion
		}
		res, ok := final[[2]int{tr.Index, tr.Rung}]
		switch {
		case ok && run != nil && run.Outcome == report.OutcomeCanceled:
			row.Pending = report.TrialCancelled
		case ok:
			row.Result = res
		case sw.State != store.SweepRunning:
			row.Pending = report.TrialCancelled
		case run != nil && run.State == RunRunning:
			row.Pending = report.TrialRunning
		default:
			row.Pending = report.TrialQueued
		}
		if ok && row.Pending == "" {
			if err := w.fillTrialRow(ctx, &row, spec, run, bases); err != nil {
				return t, err
			}
		}
		t.Rows = append(t.Rows, row)
	}
	for _, b := range bases {
		if b != nil {
			if v, ok := b.Metrics[spec.Metric]; ok {
				t.Base = &v
				break
			}
		}
	}
	return t, nil
}

// fillTrialRow adds to row what the finished run of its trial says: why
// it failed, which gates it failed, its Δ vs its base and that Δ's
// confidence interval. bases caches the base runs read.
func (w *Worker) fillTrialRow(ctx context.Context, row *sweep.Row, spec sweep.Spec, run *Run, bases map[string]*Run) error {
	if row.Status == sweep.StatusFailed {
		switch {
		case run == nil:
		case !run.HasMetricsOutcome():
			row.Detail = strings.ReplaceAll(string(run.Outcome), "_", " ") + ": " + firstLine(run.Detail)
		default:
			row.Detail = "no metric " + spec.Metric
		}
		if len(row.Detail) > 120 {
			row.Detail = row.Detail[:117] + "..."
		}
		return nil
	}
	var base *Run
	if run.BaseRunID != "" {
		b, ok := bases[run.BaseRunID]
		if !ok {
			var err error
			b, err = w.store.GetRun(ctx, run.BaseRunID)
			if err != nil && !errors.Is(err, ErrNoRun) {
				return err
			}
			bases[run.BaseRunID] = b
		}
		base = b
	}
	var baseMetrics map[string]float64
	if base != nil {
		baseMetrics = base.Metrics
	}
	if !row.Passed {
		row.Detail = strings.Join(report.ComputeWith(baseMetrics, run.Metrics, run.Specs, run.Order, run.Significance).Failed, ", ")
	}
	if b, ok := baseMetrics[spec.Metric]; ok {
		d := row.Metric - b
		row.Delta = &d
	}
	if run.Significance != nil {
		if m, ok := run.Significance.Metrics[spec.Metric]; ok {
			row.CI, row.Low, row.High = true, m.Low, m.High
		}
	}
	return nil
}
