package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hibiken/asynq"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/jobs/registry"
	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/runners/git"
)

// runLease is how long a run's lease lives without a heartbeat.
const runLease = 30 * time.Second

// pipelineHost is what a pipeline asks of its host: clone credentials
// and the running status.
type pipelineHost interface {
	cloneAuthorizer
	statusPoster
}

// handlePipeline checks out one commit, trains and evaluates it, finds and
// if need be runs its base, stores the result and queues its report. A
// run already finished is not run again; its report is queued again. The
// steps: lock the run; load it; unless it was cancelled, mark it running
// and execute it (or hand it over to the queue its .mlbot.yml names,
// handoff.go); decide how the attempt ended (retried, or finished);
// finish the run and queue its report.
func (w *Worker) handlePipeline(ctx context.Context, t *asynq.Task) error {
	w.inflight.Add(1)
	defer w.inflight.Done()
	p, f, err := w.readPipelineTask(t)
	if err != nil {
		return err
	}
	unlock, err := w.lockRun(ctx, p.RunID)
	if err != nil {
		return err
	}
	defer unlock()
	run, err := w.loadRun(ctx, p)
	if err != nil {
		return err
	}
	if run.State == RunFinished {
		return w.enqueueReport(ctx, run.ID)
	}
	log := w.log.With("run", run.ID, "repo", run.Repo.FullName, "sha", run.SHA)
	reason, err := w.store.CancelReason(ctx, run.ID)
	if err != nil {
		return err
	}
	if reason == "" {
		if err := w.markRunning(ctx, log, f, run); err != nil {
			return err
		}
		reason, err = w.executeRun(ctx, f, p, run)
		if h := (handOff{}); errors.As(err, &h) {
			return w.handOver(ctx, log, f, p, run, h.queue)
		}
	}
	ctx, err = w.endAttempt(ctx, log, run, reason, err)
	if err != nil {
		return err
	}
	return w.finishRun(ctx, log, run)
}

// readPipelineTask decodes a pipeline task and looks up the host of its
// repository.
func (w *Worker) readPipelineTask(t *asynq.Task) (PipelinePayload, pipelineHost, error) {
	var p PipelinePayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return p, nil, fmt.Errorf("pipeline payload: %v: %w", err, asynq.SkipRetry)
	}
	f, err := w.forgeOf(p.Repo)
	if err != nil {
		return p, nil, fmt.Errorf("run %s: %w", p.RunID, err)
	}
	return p, f, nil
}

// lockRun takes the lease of run id, kept alive by a heartbeat until
// unlock is called, or returns errWaitTurn (asynq retries soon) while
// another worker holds it. One worker runs a run at a time: a pull request
// may be running this very commit as its merge base.
func (w *Worker) lockRun(ctx context.Context, id string) (unlock func(), err error) {
	lease, ok, err := w.store.Lease(ctx, "run:"+id, runLease)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errWaitTurn
	}
	return hold(ctx, lease, runLease), nil
}

// loadRun reads the run p names, or makes it from p when it was never
// stored.
func (w *Worker) loadRun(ctx context.Context, p PipelinePayload) (*Run, error) {
	run, err := w.store.GetRun(ctx, p.RunID)
	if errors.Is(err, ErrNoRun) {
		return p.newRun(), nil
	}
	return run, err
}

// markRunning records that an attempt at run starts, and says so on the
// host. The status is best effort: the result matters more than this
// intermediate state, and GitLab shows "running" with the run's link.
func (w *Worker) markRunning(ctx context.Context, log *slog.Logger, f statusPoster, run *Run) error {
	run.State, run.Started, run.Attempts = RunRunning, time.Now().UTC(), run.Attempts+1
	if err := w.store.SaveRun(ctx, run); err != nil {
		return err
	}
	if run.Sweep != "" {
		return nil // a sweep's trial reports in the sweep's comment
	}
	if serr := w.setStatus(ctx, f, run.Repo, run.SHA, refOf(run.PR, run.Branch), bot.StateRunning, "running: train and evaluate", w.runURL(run.ID),
		w.progressCheck(run.ID, run.SHA, "running: train and evaluate")); serr != nil {
		log.Warn("running status not set", "err", serr)
	}
	return nil
}

// executeRun executes p into run. When it fails because its context
// ended, it returns the run's cancel reason too: the run may have been
// cancelled on request (asynq's CancelProcessing) rather than mlbot be
// shutting down.
func (w *Worker) executeRun(ctx context.Context, f cloneAuthorizer, p PipelinePayload, run *Run) (reason string, err error) {
	pipelinesRunning.Inc()
	err = w.execute(ctx, f, p, run)
	pipelinesRunning.Dec()
	if err != nil && ctx.Err() != nil {
		// Cancelled on request (asynq's CancelProcessing), or shutting down?
		reason, _ = w.store.CancelReason(context.WithoutCancel(ctx), run.ID)
	}
	return reason, err
}

// endAttempt decides how an attempt at run ended, given its cancel reason
// and the error of its execution. A cancelled run ends as cancelled, and
// one past the task's own deadline as timed out (retrying would only time
// out again); both are finished without the task's context, which has
// ended. Any other error leaves the run queued and is returned for asynq
// to retry, except on the last attempt, or for a clone host that is not
// the repository's, where the run ends as an error. It returns the context
// to finish the run with.
func (w *Worker) endAttempt(ctx context.Context, log *slog.Logger, run *Run, reason string, err error) (context.Context, error) {
	if reason != "" {
		ctx = context.WithoutCancel(ctx)
		run.Outcome, run.Detail, err = report.OutcomeCanceled, reason, nil
	}
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		// The task's own deadline: retrying would only time out again.
		ctx = context.WithoutCancel(ctx)
		run.Outcome, run.Detail, err = report.OutcomeTimedOut, "the pipeline did not finish within MLBOT_MAX_PIPELINE_TIMEOUT", nil
	}
	if err == nil {
		return ctx, nil
	}
	if ctx.Err() != nil {
		// Shutdown or lease loss: asynq requeues the task; leave the run
		// queued so the next attempt starts cleanly.
		run.State = RunQueued
		w.store.SaveRun(context.WithoutCancel(ctx), run)
		return ctx, err
	}
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	if retried < maxRetry && !errors.Is(err, bot.ErrForeignCloneHost) {
		log.Warn("pipeline attempt failed, will retry", "err", err, "attempt", run.Attempts)
		run.State = RunQueued
		if serr := w.store.SaveRun(ctx, run); serr != nil {
			return ctx, serr
		}
		return ctx, err
	}
	log.Error("pipeline failed for good", "err", err)
	run.Outcome, run.Detail = report.OutcomeError, redact(err.Error(), w.opts.Secrets)
	return ctx, nil
}

// finishRun records run as finished, keeps a default-branch run that
// produced metrics as a baseline for later comparisons, and queues the
// run's report.
func (w *Worker) finishRun(ctx context.Context, log *slog.Logger, run *Run) error {
	run.State, run.Finished = RunFinished, time.Now().UTC()
	if err := w.store.SaveRun(ctx, run); err != nil {
		return err
	}
	if run.Kind == KindBaseline && run.HasMetrics() {
		if err := w.store.AddBaseline(ctx, run.Repo, run.SHA, run.ID); err != nil {
			return err
		}
	}
	pipelinesFinished.WithLabelValues(string(run.Outcome)).Inc()
	log.Info("pipeline finished", "outcome", run.Outcome, "train", run.Train, "evaluate", run.Evaluate)
	return w.enqueueReport(ctx, run.ID)
}

// execute runs p into run: it checks out the head, skips the rest when
// the head changed none of pipeline.paths (paths.go), finds (and if need be
// runs) the base, runs the head's pipeline, decides it against the base
// and records its model version. It returns an error only for failures of
// mlbot's own machinery (clone, Redis, disk) that a retry may cure; the
// outcomes of the user's pipeline are recorded in run.
func (w *Worker) execute(ctx context.Context, f cloneAuthorizer, p PipelinePayload, run *Run) error {
	root := filepath.Join(w.opts.DataDir, "work", run.ID+"-"+strconv.Itoa(run.Attempts))
	if err := os.RemoveAll(root); err != nil {
		return err
	}
	defer os.RemoveAll(root)
	headDir := filepath.Join(root, "head")
	co, err := checkoutHead(ctx, f, p, headDir)
	if err != nil {
		return err
	}
	// Before a hand-over to another queue: a commit that changed no
	// watched path must not wait for a GPU worker only to run nothing.
	if w.skipUnchanged(ctx, p, co, run) {
		return nil
	}
	if queue := belongsElsewhere(ctx, headDir); queue != "" {
		return handOff{queue: queue}
	}
	// The base is found, and run if need be, before any of the head's code
	// runs: what an untrusted training leaves in .git must not touch the
	// base, which runs trusted.
	// A default-branch commit is compared like a pull request: against the
	// newest earlier commit of its branch, so that relative gates hold on
	// a direct push or a merge made over a red status too.
	base, note, err := w.findBase(ctx, p, co, root)
	if err != nil {
		return err
	}
	cfg, err := w.exec.Run(ctx, headDir, run)
	if err != nil {
		return err
	}
	if run.Outcome == "" {
		run.BaseNote = note
		if err := w.compareExamples(ctx, run, base); err != nil {
			return err
		}
		Decide(run, base)
	}
	setOnMerge(run, cfg)
	return w.recordVersion(ctx, run, cfg, headDir)
}

// checkoutHead clones p's repository into dir and checks p's commit out;
// for a pull request it fetches the base commit too, which findBase
// needs.
func checkoutHead(ctx context.Context, f cloneAuthorizer, p PipelinePayload, dir string) (git.Checkout, error) {
	auth, err := f.CloneAuth(ctx, p.Repo)
	if err != nil {
		return git.Checkout{}, fmt.Errorf("clone credentials: %w", err)
	}
	co := git.Checkout{URL: p.Repo.CloneURL, Auth: auth, Dir: dir}
	want := []string{p.SHA}
	if p.PR != nil && p.PR.BaseSHA != "" {
		want = append(want, p.PR.BaseSHA)
	}
	cloneStart := time.Now()
	if err := co.Fetch(ctx, want...); err != nil {
		return git.Checkout{}, fmt.Errorf("fetch %s: %w", p.SHA, err)
	}
	if err := co.Checkout(ctx, p.SHA); err != nil {
		return git.Checkout{}, fmt.Errorf("checkout %s: %w", p.SHA, err)
	}
	observeStage(stageClone, cloneStart)
	return co, nil
}

// setOnMerge names the environments a default-branch run deploys to once
// it passes; a pull request's inline base run of that commit sets it too,
// since the branch's own pipeline then only reports it.
func setOnMerge(run *Run, cfg *configs.RepoConfig) {
	if cfg == nil || run.Kind != KindBaseline || run.Branch != run.Repo.DefaultBranch {
		return
	}
	run.OnMerge = nil
	for _, name := range cfg.DeployOrder {
		if cfg.Deploy[name].OnMerge {
			run.OnMerge = append(run.OnMerge, name)
		}
	}
}

// recordVersion puts the artifacts of a run that produced metrics into the
// model registry, while its workspace still holds them.
func (w *Worker) recordVersion(ctx context.Context, run *Run, cfg *configs.RepoConfig, dir string) error {
	if cfg == nil || len(cfg.Pipeline.Artifacts) == 0 || !run.HasMetricsOutcome() {
		return nil
	}
	reason := "push to " + run.Branch
	pr := 0
	if run.PR != nil {
		pr, reason = run.PR.Number, fmt.Sprintf("pull request #%d", run.PR.Number)
	}
	if run.Sweep != "" {
		reason = fmt.Sprintf("sweep trial %d of %s", run.Trial+1, reason)
	}
	v, err := w.registry.Record(ctx, registry.Version{Repo: repoKey(run.Repo), SHA: run.SHA, RunID: run.ID, Metrics: run.Metrics,
		Reason: reason, Branch: run.Branch, PR: pr, Passed: run.Outcome == report.OutcomePassed, Trusted: run.Trusted, Params: run.Params}, dir, cfg.Pipeline.Artifacts)
	if errors.Is(err, registry.ErrBadArtifact) || errors.Is(err, fs.ErrNotExist) {
		run.Outcome, run.Detail = report.OutcomeStepFailed, "artifacts: "+err.Error()
		return nil
	}
	if err != nil {
		return fmt.Errorf("record model version: %w", err)
	}
	run.ModelVersion = v.Number
	return nil
}

// findBase returns the run p is compared against. For a pull request it
// is the newest baseline run of the base branch at or before the merge
// base; for a default-branch commit, the newest baseline run of its branch
// on its first-parent history strictly before it. When none is stored, the
// merge base (or the parent) is run now. note explains a missing base to
// the reader. The steps: list the history the base is found on; look for
// a stored baseline on it; otherwise claim the base's run (or take the
// result of whoever ran it meanwhile), check it out and run it.
func (w *Worker) findBase(ctx context.Context, p PipelinePayload, co git.Checkout, root string) (*Run, string, error) {
	branch, history, note, err := baseHistory(ctx, p, co)
	if err != nil || len(history) == 0 {
		return nil, note, err
	}
	base, err := w.store.FindBaseline(ctx, p.Repo, history)
	if err != nil || base != nil {
		return base, "", err
	}
	// No stored baseline: run the merge base (or the parent) now, with its
	// own .mlbot.yml, and keep it as a baseline for later runs.
	mb := history[0]
	brun, err := w.newBaseRun(ctx, p.Repo, branch, mb)
	if err != nil {
		return nil, "", err
	}
	release, done, err := w.claimBaseRun(ctx, brun.ID)
	if err != nil {
		return nil, "", err
	}
	if done != nil {
		return usableBase(done, mb)
	}
	defer release()
	dir := filepath.Join(root, "base")
	if err := checkoutBase(ctx, co, dir, mb); err != nil {
		return nil, "", err
	}
	return w.runBase(ctx, brun, dir, branch, history[1:])
}

// baseHistory returns the commits p's base is looked for on, newest
// first, and their branch: for a pull request the first-parent history of
// its merge base with the base branch, from the merge base on; for a
// default-branch commit its own first-parent history before it. An empty
// history comes with a note saying why nothing can be compared (none for
// a run of another kind).
func baseHistory(ctx context.Context, p PipelinePayload, co git.Checkout) (branch string, history []string, note string, err error) {
	switch p.Kind {
	case KindPullRequest:
		branch = p.PR.BaseRef
		baseSHA := p.PR.BaseSHA
		if baseSHA == "" {
			sha, err := co.FetchBranch(ctx, p.PR.BaseRef)
			if err != nil {
				return "", nil, "", fmt.Errorf("fetch base branch %s: %w", p.PR.BaseRef, err)
			}
			baseSHA = sha
		}
		mb, err := git.MergeBase(ctx, co.Dir, p.SHA, baseSHA)
		if err != nil {
			return "", nil, "no common ancestor with " + p.PR.BaseRef + "; nothing to compare against", nil
		}
		if history, err = git.FirstParents(ctx, co.Dir, mb, 200); err != nil {
			return "", nil, "", err
		}
		return branch, history, "", nil
	case KindBaseline:
		branch = p.Branch
		all, err := git.FirstParents(ctx, co.Dir, p.SHA, 201)
		if err != nil {
			return "", nil, "", err
		}
		if len(all) < 2 {
			return "", nil, short(p.SHA) + " is the first commit of " + branch + "; nothing to compare against", nil
		}
		return branch, all[1:], "", nil
	default:
		return "", nil, "", nil
	}
}

// newBaseRun returns the baseline run of commit sha of branch, under the
// id the work's dedupe key maps to. It is on the base branch: it runs
// trusted whatever the pull request's author.
func (w *Worker) newBaseRun(ctx context.Context, repo bot.Repo, branch, sha string) (*Run, error) {
	bid, err := w.runID(ctx, repo, KindBaseline, sha, 0, branch)
	if err != nil {
		return nil, err
	}
	return &Run{ID: bid, Kind: KindBaseline, Repo: repo, SHA: sha, Branch: branch, Trusted: true, State: RunRunning, Created: time.Now().UTC(), Started: time.Now().UTC()}, nil
}

// claimBaseRun takes the lease of base run id, kept alive by a heartbeat
// until release is called. The default branch's own pipeline may be
// running this commit right now: while another worker holds the lease,
// claimBaseRun waits, and returns the run (done) once it has finished
// rather than train it twice.
func (w *Worker) claimBaseRun(ctx context.Context, id string) (release func(), done *Run, err error) {
	for {
		if prev, err := w.store.GetRun(ctx, id); err == nil && prev.State == RunFinished {
			return nil, prev, nil
		}
		lease, ok, err := w.store.Lease(ctx, "run:"+id, runLease)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			return hold(ctx, lease, runLease), nil, nil
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// usableBase returns base, a finished run of commit sha, to compare
// against, or a note saying it has no metrics.
func usableBase(base *Run, sha string) (*Run, string, error) {
	if base.HasMetrics() {
		return base, "", nil
	}
	if base.Outcome == report.OutcomeSkipped {
		return nil, "the base " + short(sha) + " changed none of pipeline.paths and no earlier run of its branch is stored", nil
	}
	return nil, "the base " + short(sha) + " has no metrics (" + string(base.Outcome) + ")", nil
}

// checkoutBase checks commit sha out into dir from co's repository: a
// clone of its own, not a worktree of the head's repository.
func checkoutBase(ctx context.Context, co git.Checkout, dir, sha string) error {
	bco := git.Checkout{URL: co.URL, Auth: co.Auth, Dir: dir}
	if err := bco.Fetch(ctx, sha); err != nil {
		return fmt.Errorf("fetch base %s: %w", short(sha), err)
	}
	if err := bco.Checkout(ctx, sha); err != nil {
		return fmt.Errorf("checkout base %s: %w", short(sha), err)
	}
	return nil
}

// runBase runs base run brun in dir and decides it against the newest
// baseline stored on earlier (the commits of branch before it, newest
// first), without running anything further back: this run is the base
// here, not under review. It records the run's model version, finishes it
// and keeps it as a baseline. It returns brun, or a note when brun
// produced no metrics.
func (w *Worker) runBase(ctx context.Context, brun *Run, dir, branch string, earlier []string) (*Run, string, error) {
	bcfg, err := w.exec.Run(ctx, dir, brun)
	if err != nil {
		return nil, "", fmt.Errorf("base run: %w", err)
	}
	if brun.Outcome == "" {
		prev, err := w.store.FindBaseline(ctx, brun.Repo, earlier)
		if err != nil {
			return nil, "", err
		}
		if prev == nil {
			brun.BaseNote = "No stored run of an earlier commit of " + branch + " to compare with."
		}
		if err := w.compareExamples(ctx, brun, prev); err != nil {
			return nil, "", err
		}
		Decide(brun, prev)
	}
	setOnMerge(brun, bcfg)
	if err := w.recordVersion(ctx, brun, bcfg, dir); err != nil {
		return nil, "", err
	}
	brun.State, brun.Finished = RunFinished, time.Now().UTC()
	if err := w.store.SaveRun(ctx, brun); err != nil {
		return nil, "", err
	}
	if !brun.HasMetrics() {
		return nil, "the base " + short(brun.SHA) + " could not be evaluated: " + brun.Detail, nil
	}
	if err := w.store.AddBaseline(ctx, brun.Repo, brun.SHA, brun.ID); err != nil {
		return nil, "", err
	}
	return brun, "", nil
}

// enqueueReport queues the report of run runID, once.
func (w *Worker) enqueueReport(ctx context.Context, runID string) error {
	b, _ := json.Marshal(ReportPayload{RunID: runID})
	_, err := w.client.EnqueueContext(ctx, w.signer.NewTask(TypeReport, b),
		asynq.TaskID("report:"+runID), asynq.Queue(QueueReport),
		asynq.MaxRetry(25), asynq.Retention(runRetention))
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return nil
	}
	return err
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}
