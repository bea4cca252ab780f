package jobs

import (
	"context"
	"fmt"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/jobs/deploystate"
	"github.com/mlbot/mlbot/jobs/registry"
	"github.com/mlbot/mlbot/jobs/report"
)

// finishDeploy records the outcome and tells the host and the thread.
func (w *Worker) finishDeploy(ctx context.Context, f deployReporter, p DeployPayload, d *registry.Deploy, v *registry.Version, env *configs.Environment) error {
	ctx = context.WithoutCancel(ctx)
	var prev *registry.Deploy
	if d.State == deploystate.Succeeded {
		var err error
		if prev, err = w.registry.Current(ctx, d.Repo, d.Env); err != nil {
			return err
		}
	}
	if err := w.registry.SaveDeploy(ctx, *d); err != nil {
		return err
	}
	w.store.DeployLine(d.Repo, d.Env).Leave(ctx, d.ID)
	deploysFinished.WithLabelValues(d.Env, d.State).Inc()
	envURL := ""
	if env != nil {
		envURL = env.URL
	}
	state, hostState := bot.StateFailure, bot.DeploymentFailure
	if d.State == deploystate.Succeeded {
		state, hostState = bot.StateSuccess, bot.DeploymentSuccess
	}
	desc := fmt.Sprintf("model v%d %s", d.Version, d.State)
	switch {
	case d.State == deploystate.Refused:
		desc = fmt.Sprintf("model v%d not deployed: %s", d.Version, d.Detail)
	case d.Forced:
		desc += " (forced)"
	}
	desc = report.StripFormat(desc)
	if n := []rune(desc); len(n) > 140 {
		desc = string(n[:139]) + "…"
	}
	w.setDeployStatus(ctx, f, p.Repo, d.SHA, p.Ref, "mlbot/deploy/"+d.Env, state, desc, d.ID)
	if d.HostID != 0 {
		if err := f.UpdateDeployment(ctx, p.Repo, d.HostID, bot.DeploymentStatus{State: hostState, LogURL: w.deployURL(d.ID), EnvironmentURL: envURL, Description: desc}); err != nil {
			w.log.Warn("host deployment status not updated", "err", err)
		}
	}
	if prev != nil && prev.HostID != 0 && prev.ID != d.ID {
		f.UpdateDeployment(ctx, p.Repo, prev.HostID, bot.DeploymentStatus{State: bot.DeploymentInactive, Description: fmt.Sprintf("replaced by model v%d", d.Version)})
	}
	w.log.Info("deploy finished", "repo", d.Repo, "env", d.Env, "version", d.Version, "state", d.State, "detail", d.Detail)
	return w.replyDeploy(ctx, f, p.Repo, d, v, envURL)
}

// replyDeploy answers in the pull request thread the deploy came from: a
// merge's thread is found by its merge commit when the deploy was asked
// for before mlbot learned of the merge. A refused merge is told through
// the merge's notes, which reach the commit when no pull request is known.
func (w *Worker) replyDeploy(ctx context.Context, f notePoster, repo bot.Repo, d *registry.Deploy, v *registry.Version, envURL string) error {
	if d.State == deploystate.Refused && d.Kind == registry.KindMerge {
		return w.postMergeNotes(ctx, f, repo, d.SHA)
	}
	pr := d.PR
	if pr == 0 && d.Kind == registry.KindMerge {
		n, err := w.store.MergedPR(ctx, repo, d.SHA)
		if err != nil {
			return err
		}
		pr = n
	}
	if pr == 0 {
		return nil
	}
	key := "deployreply:" + d.ID + ":" + d.State
	if done, err := w.store.Done(ctx, key); err != nil || done {
		return err
	}
	// A refusal's reply was written when it was refused, with the check's
	// table; anything else is written now.
	body, ok, err := w.store.DeployReply(ctx, d.ID)
	if err != nil {
		return err
	}
	if !ok {
		rd := report.Deploy{State: d.State, Env: d.Env, Version: d.Version, SHA: d.SHA, Why: d.Reason, EnvURL: envURL,
			Detail: d.Detail, Against: d.Against, LogTail: d.LogTail, LogURL: w.deployURL(d.ID)}
		if d.Forced {
			rd.Forced = d.RequestedBy
		}
		if v != nil {
			rd.Metrics = v.Metrics
		}
		body = ReplyMarker + "\n" + redact(report.StripFormatMarkdown(report.RenderDeploy(rd)), w.opts.Secrets)
	}
	if len(body) > bot.MaxCommentLength {
		body = body[:bot.MaxCommentLength-10] + "\n…"
	}
	if _, err := f.CreateComment(ctx, repo, pr, body); err != nil {
		return err
	}
	return w.store.MarkDone(ctx, key)
}

// refuseDeploy ends deploy d as refused before anything ran: it writes the
// answer (with r's reason), records the deploy, sets its commit status to
// failure and tells the thread, or the merge's notes.
func (w *Worker) refuseDeploy(ctx context.Context, f deployReporter, p DeployPayload, d *registry.Deploy, v *registry.Version, r report.Refusal) error {
	ctx = context.WithoutCancel(ctx)
	r.Env, r.Version, r.SHA, r.Why, r.LogURL = d.Env, d.Version, d.SHA, d.Reason, w.deployURL(d.ID)
	if d.Kind == registry.KindRequest && r.Gate != nil {
		r.ForceHint = "/deploy " + d.Env + " --force"
	}
	body := ReplyMarker + "\n" + redact(report.StripFormatMarkdown(report.RenderRefusal(r)), w.opts.Secrets)
	if d.Kind == registry.KindMerge {
		if err := w.keepMergeNote(ctx, p.Repo, d.SHA, "deploy:"+d.Env, body); err != nil {
			return err
		}
	} else if err := w.store.KeepDeployReply(ctx, d.ID, body); err != nil {
		return err
	}
	return w.finishDeploy(ctx, f, p, d, v, nil)
}

// setDeployStatus sets the commit status name of a deploy (best effort:
// a failure is logged), linking to the deploy's page.
func (w *Worker) setDeployStatus(ctx context.Context, f statusPoster, repo bot.Repo, sha, ref, name string, st bot.State, desc, id string) {
	// Where the host shows check runs, the deploy's is named like the
	// status and carries the deploy's id.
	if err := f.CreateStatus(ctx, repo, sha, bot.Status{Context: name, State: st, Description: desc, TargetURL: w.deployURL(id), Ref: ref, ExternalID: id}); err != nil {
		w.log.Warn("deploy status not set", "context", name, "err", err)
	}
}

// deployURL is the address of the page of deploy id.
func (w *Worker) deployURL(id string) string { return w.opts.PublicURL + "/deploys/" + id }
