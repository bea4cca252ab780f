package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/hibiken/asynq"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/jobs/report"
)

// statusPoster sets commit statuses: the pending, running and final
// states of a pipeline, and a deploy's status.
type statusPoster interface {
	CreateStatus(ctx context.Context, repo bot.Repo, sha string, st bot.Status) error
}

// approvalAsker asks a maintainer to approve a pull request's run: it
// marks the commit pending and says why in mlbot's comment.
type approvalAsker interface {
	statusPoster
	commenter
}

// pullRequestHost is what routing a pull request event asks of its host:
// permissions for admission, the approval request, the pending status and
// the notes of a merge.
type pullRequestHost interface {
	approvalAsker
	notePoster
	permissionChecker
}

// handleWebhook routes one delivery: it decides which commit, if any,
// needs a pipeline, marks it pending on the host and queues the pipeline.
func (w *Worker) handleWebhook(ctx context.Context, t *asynq.Task) error {
	d, err := deliveryOf(t)
	if err != nil {
		return fmt.Errorf("webhook payload: %v: %w", err, asynq.SkipRetry)
	}
	fs, err := w.forgeSet(d.Forge)
	if err != nil {
		return fmt.Errorf("delivery %s: %w", d.ID, err)
	}
	ev, err := fs.Webhook.Parse(d.Type, d.Body)
	if err != nil {
		// The handler already checked the JSON is valid; a body that still
		// cannot be normalised will not parse on a retry either.
		w.log.Warn("webhook not understood", "forge", d.Forge, "event", d.Type, "delivery", d.ID, "err", err)
		return fmt.Errorf("parse %s delivery %s: %v: %w", d.Type, d.ID, err, asynq.SkipRetry)
	}
	ev.Delivery, ev.Received = d.ID, d.ReceivedAt
	ctx = withReceived(ctx, d.ReceivedAt)
	log := w.log.With("forge", d.Forge, "event", d.Type, "delivery", d.ID, "repo", ev.Repo.FullName)
	return w.routeEvent(ctx, log, fs, ev, true)
}

// routeEvent routes a normalised event, from a webhook or from the
// reconciler: it decides which commit, if any, needs a pipeline. A
// webhook's repository is remembered (remember) as one mlbot serves, which
// the reconciler lists from then on.
func (w *Worker) routeEvent(ctx context.Context, log *slog.Logger, fs ForgeSet, ev *bot.Event, remember bool) error {
	if ev.Kind == bot.KindOther || ev.Kind == bot.KindPing {
		log.Debug("event ignored: not routed", "kind", ev.Kind)
		return nil
	}
	if ev.Repo.FullName == "" || ev.Repo.CloneURL == "" {
		log.Info("event ignored: it names no repository to clone", "kind", ev.Kind)
		return nil
	}
	if !w.opts.RepoAllowed(ev.Repo.Host + "/" + ev.Repo.FullName) {
		log.Warn("event ignored: repository not in the allowlist", "host", ev.Repo.Host)
		return nil
	}
	if remember {
		seen := ev.Received
		if seen.IsZero() {
			seen = time.Now()
		}
		if err := w.store.RememberRepo(ctx, ev.Repo, seen); err != nil {
			return err
		}
	}
	switch ev.Kind {
	case bot.KindComment:
		return w.routeComment(ctx, log, fs.Forge, ev)
	case bot.KindCheck:
		return w.routeCheck(ctx, log, fs.Forge, ev)
	case bot.KindPush:
		return w.routePush(ctx, log, fs.Forge, ev)
	case bot.KindPullRequest:
		return w.routePullRequest(ctx, log, fs.Forge, ev)
	default:
		log.Debug("event ignored", "kind", ev.Kind, "action", ev.Action)
		return nil
	}
}

func (w *Worker) routePush(ctx context.Context, log *slog.Logger, f statusPoster, ev *bot.Event) error {
	switch {
	case ev.Deleted:
		log.Debug("push ignored: ref deleted", "ref", ev.Ref)
		return nil
	case ev.Tag || ev.Branch == "":
		log.Debug("push ignored: not a branch", "ref", ev.Ref)
		return nil
	case ev.Branch != ev.Repo.DefaultBranch:
		log.Debug("push ignored: not the default branch", "branch", ev.Branch, "default", ev.Repo.DefaultBranch)
		return nil
	}
	// What reached the default branch was merged by people with write
	// access: it runs trusted.
	p := PipelinePayload{Kind: KindBaseline, Repo: ev.Repo, SHA: ev.SHA, Branch: ev.Branch, Delivery: ev.Delivery, Trusted: true, Before: ev.Before}
	var err error
	if p.RunID, err = w.runID(ctx, ev.Repo, KindBaseline, ev.SHA, 0, ev.Branch); err != nil {
		return err
	}
	log.Info("baseline pipeline", "sha", ev.SHA, "run", p.RunID)
	return w.startPipeline(ctx, f, p)
}

// routePullRequest starts the pipeline of a pull request's new head, or
// stops the run of one that closed. The steps: record which head the
// event names; stop the run of a closed or merged pull request; skip
// drafts; remember the pull request; move its head forward (a late
// delivery of an older push changes nothing); cancel the run of the
// previous head; admit the head or ask for /ok-to-test; start its
// pipeline.
func (w *Worker) routePullRequest(ctx context.Context, log *slog.Logger, f pullRequestHost, ev *bot.Event) error {
	pr := ev.PR
	if err := w.recordHead(ctx, ev); err != nil {
		return err
	}
	switch ev.Action {
	case bot.ActionOpened, bot.ActionUpdated, bot.ActionReopened, bot.ActionReady:
	case bot.ActionClosed, bot.ActionMerged:
		return w.closePullRequest(ctx, log, f, ev)
	default:
		log.Debug("pull request event ignored", "action", ev.Action, "number", pr.Number)
		return nil
	}
	if pr.Draft {
		log.Debug("pull request ignored: draft", "number", pr.Number)
		return nil
	}
	if err := w.rememberPullRequest(ctx, ev.Repo, pr); err != nil {
		return err
	}
	if fresh, err := w.advanceHead(ctx, log, ev); err != nil || !fresh {
		return err
	}
	if err := w.supersedeRun(ctx, ev.Repo, pr); err != nil {
		return err
	}
	admitted, trusted, err := w.admission(ctx, f, ev.Repo, pr)
	if err != nil {
		return err
	}
	if !admitted {
		log.Info("untrusted pull request waits for /ok-to-test", "number", pr.Number, "author", pr.Author, "fork", pr.Fork, "sha", pr.HeadSHA)
		return w.awaitApproval(ctx, f, ev.Repo, pr)
	}
	p, err := w.pullRequestPipeline(ctx, ev, trusted)
	if err != nil {
		return err
	}
	log.Info("pull request pipeline", "number", pr.Number, "sha", pr.HeadSHA, "run", p.RunID, "trusted", trusted)
	return w.startPipeline(ctx, f, p)
}

// recordHead records which commit the pull request's head was at the
// host's time of the event, when the event says: /ok-to-test approves by
// this history.
func (w *Worker) recordHead(ctx context.Context, ev *bot.Event) error {
	pr := ev.PR
	if pr.HeadSHA == "" || pr.Updated.IsZero() {
		return nil
	}
	return w.store.RecordHead(ctx, ev.Repo, pr.Number, pr.HeadSHA, pr.Updated, ev.Received)
}

// closePullRequest stops the run of a pull request that was closed or
// merged. A merge is remembered by its commit first, and the notes the
// default branch's run of that commit left (it may have finished first)
// reach the thread now.
func (w *Worker) closePullRequest(ctx context.Context, log *slog.Logger, f notePoster, ev *bot.Event) error {
	pr := ev.PR
	if ev.Action == bot.ActionMerged && pr.MergeSHA != "" {
		if err := w.store.SetMergedPR(ctx, ev.Repo, pr.MergeSHA, pr.Number); err != nil {
			return err
		}
		if err := w.postMergeNotes(ctx, f, ev.Repo, pr.MergeSHA); err != nil {
			return err
		}
	}
	if err := w.cancelSweep(ctx, ev.Repo, pr.Number, "the pull request was "+string(ev.Action), ""); err != nil {
		return err
	}
	id, err := w.store.CurrentRun(ctx, ev.Repo, pr.Number)
	if err != nil || id == "" {
		return err
	}
	log.Info("pull request closed: stopping its run", "number", pr.Number, "run", id)
	return w.cancelRun(ctx, id, "the pull request was "+string(ev.Action))
}

// rememberPullRequest stores the pull request as the event describes it.
// GitLab names the author only when the merge request is opened: the
// stored author stands in for a missing one.
func (w *Worker) rememberPullRequest(ctx context.Context, repo bot.Repo, pr *bot.PullRequest) error {
	stored, err := w.store.PullRequest(ctx, repo, pr.Number)
	if err != nil {
		return err
	}
	if stored != nil && pr.Author == "" && pr.AuthorID == 0 {
		pr.Author, pr.AuthorAssociation = stored.Author, stored.AuthorAssociation
	}
	return w.store.SavePullRequest(ctx, repo, pr)
}

// advanceHead moves the pull request's head to the event's commit and
// reports whether it moved. It does not for a retried or late delivery of
// an older push: acting on it would cancel the newer run and move the head
// back.
func (w *Worker) advanceHead(ctx context.Context, log *slog.Logger, ev *bot.Event) (fresh bool, err error) {
	pr := ev.PR
	fresh, err = w.store.AdvanceHead(ctx, ev.Repo, pr.Number, pr.HeadSHA, ev.Received)
	if err == nil && !fresh {
		log.Info("pull request event ignored: a newer head is known", "number", pr.Number, "sha", pr.HeadSHA)
	}
	return fresh, err
}

// supersedeRun cancels the pull request's current run when it is of an
// older commit: its result would be stale before it is posted.
func (w *Worker) supersedeRun(ctx context.Context, repo bot.Repo, pr *bot.PullRequest) error {
	if err := w.cancelSweep(ctx, repo, pr.Number, "superseded by "+short(pr.HeadSHA), pr.HeadSHA); err != nil {
		return err
	}
	cur, err := w.store.CurrentRun(ctx, repo, pr.Number)
	if err != nil || cur == "" {
		return err
	}
	if run, err := w.store.GetRun(ctx, cur); err == nil && run.SHA != pr.HeadSHA {
		return w.cancelRun(ctx, cur, "superseded by "+short(pr.HeadSHA))
	}
	return nil
}

// pullRequestPipeline returns the pipeline of the pull request's head,
// under the run id its dedupe key maps to, or under a new id when that
// run was cancelled: a pull request reopened, or pushed back to a commit
// whose run was cancelled, runs afresh.
func (w *Worker) pullRequestPipeline(ctx context.Context, ev *bot.Event, trusted bool) (PipelinePayload, error) {
	pr := ev.PR
	p := PipelinePayload{Kind: KindPullRequest, Repo: ev.Repo, SHA: pr.HeadSHA, PR: pr, Delivery: ev.Delivery, Trusted: trusted}
	var err error
	if p.RunID, err = w.runID(ctx, ev.Repo, KindPullRequest, pr.HeadSHA, pr.Number, ""); err != nil {
		return p, err
	}
	reason, err := w.store.CancelReason(ctx, p.RunID)
	if err != nil {
		return p, err
	}
	if prev, err := w.store.GetRun(ctx, p.RunID); err == nil && prev.Outcome == report.OutcomeCanceled && reason == "" {
		reason = "cancelled earlier: " + prev.Detail
	}
	if reason != "" {
		p.RunID, err = w.runID(ctx, ev.Repo, KindPullRequest, pr.HeadSHA, pr.Number, "rerun:"+ev.Delivery)
	}
	return p, err
}

// admission decides whether a pull request's head may run, and whether it
// runs as trusted (with the repository's secrets). Trusted authors' code
// runs; everyone else's, and every fork's, only once a trusted member
// approved that very commit with /ok-to-test.
func (w *Worker) admission(ctx context.Context, f permissionChecker, repo bot.Repo, pr *bot.PullRequest) (admitted, trusted bool, err error) {
	trusted, err = w.trusted(ctx, f, repo, pr)
	if err != nil || trusted {
		return trusted, trusted, err
	}
	approved, err := w.store.Approved(ctx, repo, pr.Number, pr.HeadSHA)
	return approved, false, err
}

// trusted reports whether the pull request's author may run code through
// mlbot: not from a fork, and with write access confirmed by the host.
// GitHub's author_association rules out outsiders without a host call.
func (w *Worker) trusted(ctx context.Context, f permissionChecker, repo bot.Repo, pr *bot.PullRequest) (bool, error) {
	who := pr.Author
	if pr.AuthorID != 0 {
		// The host's own id of the author beats the login of whoever
		// triggered the event.
		who = "id:" + strconv.FormatInt(pr.AuthorID, 10)
	}
	if pr.Fork || who == "" {
		return false, nil
	}
	switch pr.AuthorAssociation {
	case "", "OWNER", "MEMBER", "COLLABORATOR":
	default:
		return false, nil
	}
	p, err := w.permission(ctx, f, repo, who)
	if err != nil {
		return false, fmt.Errorf("permission of %s: %w", who, err)
	}
	return p.AtLeast(bot.PermissionWrite), nil
}

// awaitApproval marks an untrusted head as waiting and says so in the pull
// request's one comment.
func (w *Worker) awaitApproval(ctx context.Context, f approvalAsker, repo bot.Repo, pr *bot.PullRequest) error {
	if err := w.store.SetCurrentRun(ctx, repo, pr.Number, ""); err != nil {
		return err
	}
	if err := w.setStatus(ctx, f, repo, pr.HeadSHA, pr.HeadRef, bot.StatePending, "waiting for /ok-to-test from a maintainer", "", awaitingCheck(pr)); err != nil {
		return err
	}
	body := report.Render(report.Comment{Outcome: report.OutcomeAwaitingApproval, HeadSHA: pr.HeadSHA})
	return w.upsertComment(ctx, f, repo, pr.Number, body)
}

// startPipeline records the run, queues its task and marks the commit
// pending. Each step tolerates having been done by an earlier attempt.
func (w *Worker) startPipeline(ctx context.Context, f statusPoster, p PipelinePayload) error {
	run := p.newRun()
	if _, err := w.store.CreateRun(ctx, run); err != nil {
		return err
	}
	if p.PR != nil {
		if err := w.store.SetCurrentRun(ctx, p.Repo, p.PR.Number, p.RunID); err != nil {
			return err
		}
	}
	existing, err := w.store.GetRun(ctx, p.RunID)
	if err != nil {
		return err
	}
	// A run that started once has its task already: with fair lines, a
	// repeated event queues nothing.
	if w.opts.FIFOPipelines || (existing.State == RunQueued && existing.Queue == "") {
		if err := w.enqueuePipeline(ctx, p); err != nil {
			return err
		}
	}
	if existing.State != RunQueued {
		// A redelivered or retried event for a commit whose run started
		// (or was reported): "queued" would set a running run back, or
		// hide the result.
		return nil
	}
	return observePending(ctx, w.setStatus(ctx, f, p.Repo, p.SHA, refOf(p.PR, p.Branch), bot.StatePending, "queued: train and evaluate", w.runURL(p.RunID),
		w.progressCheck(p.RunID, p.SHA, "queued: train and evaluate")))
}

// cancelRun stops a run that has not finished: one still queued finishes
// as cancelled when it starts, and a running one has its context cancelled,
// which kills its process group.
func (w *Worker) cancelRun(ctx context.Context, id, reason string) error {
	run, err := w.store.GetRun(ctx, id)
	if errors.Is(err, ErrNoRun) {
		return nil
	}
	if err != nil || run.State == RunFinished {
		return err
	}
	if err := w.store.RequestCancel(ctx, id, reason); err != nil {
		return err
	}
	// A task still waiting in its queue is removed and its run finished
	// here; a running one is told to stop through asynq's cancel channel.
	queue, taskID := w.pipelineTaskOf(run)
	unqueued, err := w.unqueueFair(ctx, run)
	if err != nil {
		return err
	}
	if unqueued || w.inspector.DeleteTask(queue, taskID) == nil {
		run.State, run.Outcome, run.Detail, run.Finished = RunFinished, report.OutcomeCanceled, reason, time.Now().UTC()
		if err := w.store.SaveRun(ctx, run); err != nil {
			return err
		}
		return w.enqueueReport(ctx, id)
	}
	if err := w.inspector.CancelProcessing(taskID); err != nil {
		w.log.Debug("cancel signal not sent", "run", id, "err", err)
	}
	w.log.Info("run cancelled", "run", id, "reason", reason)
	return nil
}

// pipelineTaskID is a run's asynq task id. It follows the run id, which
// the work's dedupe key maps to once, so a retried or redelivered event
// meets the same task; task ids are never shown, only run ids are.
func pipelineTaskID(runID string) string { return "pipeline:" + runID }

// enqueuePipeline queues p's task: in its repository's fair line
// (dispatch.go), or with FIFOPipelines straight into asynq.
func (w *Worker) enqueuePipeline(ctx context.Context, p PipelinePayload) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	task := w.signer.NewTask(TypePipeline, b)
	if !w.opts.FIFOPipelines {
		return w.queueFairly(ctx, p, task)
	}
	_, err = w.client.EnqueueContext(ctx, task, w.pipelineOptions(w.opts.PipelineQueue, pipelineTaskID(p.RunID))...)
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return nil
	}
	return err
}

// setStatus sets the train-eval status of sha; opts add what its check
// run shows where the host has check runs (nil ones are skipped).
func (w *Worker) setStatus(ctx context.Context, f statusPoster, repo bot.Repo, sha, ref string, st bot.State, desc, url string, opts ...statusOption) error {
	s := bot.Status{Context: StatusContext, State: st, Description: desc, TargetURL: url, Ref: ref}
	for _, o := range opts {
		if o != nil {
			o(&s)
		}
	}
	return f.CreateStatus(ctx, repo, sha, s)
}

// refOf is the branch a run's commit was pushed to.
func refOf(pr *bot.PullRequest, branch string) string {
	if pr != nil {
		return pr.HeadRef
	}
	return branch
}

func (w *Worker) runURL(id string) string { return w.opts.PublicURL + "/runs/" + id }

// stateOf maps a run's outcome onto a commit status state.
func stateOf(o report.Outcome) bot.State {
	switch o {
	case report.OutcomePassed, report.OutcomeSkipped:
		return bot.StateSuccess
	case report.OutcomeGateFailed, report.OutcomeStepFailed, report.OutcomeTimedOut, report.OutcomeConfigError:
		return bot.StateFailure
	case report.OutcomeCanceled:
		return bot.StateCanceled
	default:
		return bot.StateError
	}
}
