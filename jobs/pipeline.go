package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hibiken/asynq"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/jobs/registry"
	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/jobs/store"
	"github.com/mlbot/mlbot/runners/git"
)

// runLease is how long a run's lease lives without a heartbeat.
const runLease = 30 * time.Second

// handlePipeline checks out one commit, trains and evaluates it, finds and
// if need be runs its base, stores the result and queues its report. A
// run already finished is not run again; its report is queued again.
func (w *Worker) handlePipeline(ctx context.Context, t *asynq.Task) error {
	w.inflight.Add(1)
	defer w.inflight.Done()
	var p PipelinePayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("pipeline payload: %v: %w", err, asynq.SkipRetry)
	}
	f, err := w.forgeOf(p.Repo)
	if err != nil {
		return fmt.Errorf("run %s: %w", p.RunID, err)
	}
	// One worker runs a run at a time: a pull request may be running this
	// very commit as its merge base.
	lease, ok, err := w.store.Lease(ctx, "run:"+p.RunID, runLease)
	if err != nil {
		return err
	}
	if !ok {
		return errWaitTurn
	}
	defer lease.Release()
	defer lease.Heartbeat(ctx, runLease)()
	run, err := w.store.GetRun(ctx, p.RunID)
	if errors.Is(err, ErrNoRun) {
		run = p.newRun()
	} else if err != nil {
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
		run.State, run.Started, run.Attempts = RunRunning, time.Now().UTC(), run.Attempts+1
		if err := w.store.SaveRun(ctx, run); err != nil {
			return err
		}
		// Best effort: the result matters more than this intermediate
		// state, and GitLab shows "running" with the run's link.
		if serr := w.setStatus(ctx, f, run.Repo, run.SHA, refOf(run.PR, run.Branch), bot.StateRunning, "running: train and evaluate", w.runURL(run.ID),
			w.progressCheck(run.ID, run.SHA, "running: train and evaluate")); serr != nil {
			log.Warn("running status not set", "err", serr)
		}
		pipelinesRunning.Inc()
		err = w.execute(ctx, f, p, run)
		pipelinesRunning.Dec()
		if err != nil && ctx.Err() != nil {
			// Cancelled on request (asynq's CancelProcessing), or shutting down?
			reason, _ = w.store.CancelReason(context.WithoutCancel(ctx), run.ID)
		}
	}
	if reason != "" {
		ctx = context.WithoutCancel(ctx)
		run.Outcome, run.Detail, err = report.OutcomeCanceled, reason, nil
	}
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		// The task's own deadline: retrying would only time out again.
		ctx = context.WithoutCancel(ctx)
		run.Outcome, run.Detail, err = report.OutcomeTimedOut, "the pipeline did not finish within MLBOT_MAX_PIPELINE_TIMEOUT", nil
	}
	if err != nil {
		if ctx.Err() != nil {
			// Shutdown or lease loss: asynq requeues the task; leave the run
			// queued so the next attempt starts cleanly.
			run.State = RunQueued
			w.store.SaveRun(context.WithoutCancel(ctx), run)
			return err
		}
		retried, _ := asynq.GetRetryCount(ctx)
		maxRetry, _ := asynq.GetMaxRetry(ctx)
		if retried < maxRetry && !errors.Is(err, bot.ErrForeignCloneHost) {
			log.Warn("pipeline attempt failed, will retry", "err", err, "attempt", run.Attempts)
			run.State = RunQueued
			if serr := w.store.SaveRun(ctx, run); serr != nil {
				return serr
			}
			return err
		}
		log.Error("pipeline failed for good", "err", err)
		run.Outcome, run.Detail = report.OutcomeError, redact(err.Error(), w.opts.Secrets)
	}
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

// execute runs p into run. It returns an error only for failures of
// mlbot's own machinery (clone, Redis, disk) that a retry may cure; the
// outcomes of the user's pipeline are recorded in run.
func (w *Worker) execute(ctx context.Context, f cloneAuthorizer, p PipelinePayload, run *Run) error {
	auth, err := f.CloneAuth(ctx, p.Repo)
	if err != nil {
		return fmt.Errorf("clone credentials: %w", err)
	}
	root := filepath.Join(w.opts.DataDir, "work", run.ID+"-"+strconv.Itoa(run.Attempts))
	if err := os.RemoveAll(root); err != nil {
		return err
	}
	defer os.RemoveAll(root)
	headDir := filepath.Join(root, "head")
	co := git.Checkout{URL: p.Repo.CloneURL, Auth: auth, Dir: headDir}
	want := []string{p.SHA}
	if p.PR != nil && p.PR.BaseSHA != "" {
		want = append(want, p.PR.BaseSHA)
	}
	cloneStart := time.Now()
	if err := co.Fetch(ctx, want...); err != nil {
		return fmt.Errorf("fetch %s: %w", p.SHA, err)
	}
	if err := co.Checkout(ctx, p.SHA); err != nil {
		return fmt.Errorf("checkout %s: %w", p.SHA, err)
	}
	observeStage(stageClone, cloneStart)
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
		Decide(run, base)
	}
	setOnMerge(run, cfg)
	return w.recordVersion(ctx, run, cfg, headDir)
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
	v, err := w.registry.Record(ctx, registry.Version{Repo: repoKey(run.Repo), SHA: run.SHA, RunID: run.ID, Metrics: run.Metrics,
		Reason: reason, Branch: run.Branch, PR: pr, Passed: run.Outcome == report.OutcomePassed, Trusted: run.Trusted}, dir, cfg.Pipeline.Artifacts)
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
// the reader.
func (w *Worker) findBase(ctx context.Context, p PipelinePayload, co git.Checkout, root string) (*Run, string, error) {
	var branch string
	var history []string
	switch p.Kind {
	case KindPullRequest:
		branch = p.PR.BaseRef
		baseSHA := p.PR.BaseSHA
		if baseSHA == "" {
			sha, err := co.FetchBranch(ctx, p.PR.BaseRef)
			if err != nil {
				return nil, "", fmt.Errorf("fetch base branch %s: %w", p.PR.BaseRef, err)
			}
			baseSHA = sha
		}
		mb, err := git.MergeBase(ctx, co.Dir, p.SHA, baseSHA)
		if err != nil {
			return nil, "no common ancestor with " + p.PR.BaseRef + "; nothing to compare against", nil
		}
		if history, err = git.FirstParents(ctx, co.Dir, mb, 200); err != nil {
			return nil, "", err
		}
	case KindBaseline:
		branch = p.Branch
		all, err := git.FirstParents(ctx, co.Dir, p.SHA, 201)
		if err != nil {
			return nil, "", err
		}
		if len(all) < 2 {
			return nil, short(p.SHA) + " is the first commit of " + branch + "; nothing to compare against", nil
		}
		history = all[1:]
	default:
		return nil, "", nil
	}
	base, err := w.store.FindBaseline(ctx, p.Repo, history)
	if err != nil || base != nil {
		return base, "", err
	}
	// No stored baseline: run the merge base (or the parent) now, with its
	// own .mlbot.yml, and keep it as a baseline for later runs. It is on
	// the base branch: it runs trusted whatever the pull request's author.
	mb := history[0]
	bid, err := w.runID(ctx, p.Repo, KindBaseline, mb, 0, branch)
	if err != nil {
		return nil, "", err
	}
	brun := &Run{ID: bid, Kind: KindBaseline, Repo: p.Repo, SHA: mb, Branch: branch, Trusted: true, State: RunRunning, Created: time.Now().UTC(), Started: time.Now().UTC()}
	// The default branch's own pipeline may be running this commit right
	// now: wait for its result rather than training it twice.
	var lease *store.Lease
	for {
		if prev, err := w.store.GetRun(ctx, brun.ID); err == nil && prev.State == RunFinished {
			if prev.HasMetrics() {
				return prev, "", nil
			}
			return nil, "the base " + short(mb) + " has no metrics (" + string(prev.Outcome) + ")", nil
		}
		l, ok, err := w.store.Lease(ctx, "run:"+brun.ID, runLease)
		if err != nil {
			return nil, "", err
		}
		if ok {
			lease = l
			break
		}
		select {
		case <-ctx.Done():
			return nil, "", ctx.Err()
		case <-time.After(time.Second):
		}
	}
	defer lease.Release()
	defer lease.Heartbeat(ctx, runLease)()
	// A clone of its own, not a worktree of the head's repository.
	dir := filepath.Join(root, "base")
	bco := git.Checkout{URL: co.URL, Auth: co.Auth, Dir: dir}
	if err := bco.Fetch(ctx, mb); err != nil {
		return nil, "", fmt.Errorf("fetch base %s: %w", short(mb), err)
	}
	if err := bco.Checkout(ctx, mb); err != nil {
		return nil, "", fmt.Errorf("checkout base %s: %w", short(mb), err)
	}
	bcfg, err := w.exec.Run(ctx, dir, brun)
	if err != nil {
		return nil, "", fmt.Errorf("base run: %w", err)
	}
	if brun.Outcome == "" {
		// Judged against what is already stored before it, without running
		// anything further back: this run is the base here, not under review.
		prev, err := w.store.FindBaseline(ctx, p.Repo, history[1:])
		if err != nil {
			return nil, "", err
		}
		if prev == nil {
			brun.BaseNote = "No stored run of an earlier commit of " + branch + " to compare with."
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
		return nil, "the base " + short(mb) + " could not be evaluated: " + brun.Detail, nil
	}
	if err := w.store.AddBaseline(ctx, p.Repo, mb, brun.ID); err != nil {
		return nil, "", err
	}
	return brun, "", nil
}

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
