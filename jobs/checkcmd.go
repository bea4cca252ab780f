package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/jobs/report"
)

// routeCheck answers a button pressed on mlbot's check run as the comment
// command it stands for (checkCommand): the presser's permission is
// checked exactly as for the command, and the answer goes to the pull
// request's thread. The pull request is the one mlbot's run of the check
// belongs to (its external id), or else the one the host named.
//
// A press is acted on once, whatever delivery brings it: the key is the
// check run, the run it showed, the button and the presser, so that a
// replayed body does nothing while a press on the check of a newer run, or
// by someone else, is a press of its own.
func (w *Worker) routeCheck(ctx context.Context, log *slog.Logger, f bot.Forge, ev *bot.Event) error {
	req := ev.Check
	if req == nil {
		return nil
	}
	log = checkLog(log, ev)
	if req.Name != "" && req.Name != StatusContext {
		log.Debug("check request ignored: not mlbot's train-eval check", "name", req.Name)
		return nil
	}
	cmd, ok := checkCommand(ev)
	if !ok {
		log.Info("check action ignored: not a button mlbot shows")
		return nil
	}
	if ev.Sender == "" {
		log.Warn("check request ignored: the host named no one who pressed it")
		return nil
	}
	number, err := w.checkPullRequest(ctx, ev)
	if err != nil || number == 0 {
		if number == 0 && err == nil {
			log.Info("check request ignored: it belongs to no pull request mlbot knows", "sha", req.HeadSHA)
		}
		return err
	}
	pr, err := w.store.PullRequest(ctx, ev.Repo, number)
	if err != nil {
		return err
	}
	if pr == nil {
		if ev.PR == nil || ev.PR.Number != number {
			log.Info("check request ignored: mlbot has not seen its pull request", "number", number)
			return nil
		}
		// mlbot has not seen the pull request's own events: what the check
		// names has no author, so it runs nothing without /ok-to-test.
		pr = ev.PR
	}
	key := checkKey(ev)
	doneKey := "check:" + key
	if done, err := w.store.Done(ctx, doneKey); err != nil || done {
		return err
	}
	cfg, err := w.defaultBranchConfig(ctx, f, ev.Repo, log)
	if err != nil {
		return err
	}
	cc := &commandContext{f: f, ev: ev, pr: pr, perms: defaultPermissions(), cfg: cfg, delivery: ev.Delivery,
		commentKey: key, user: ev.Sender, log: log}
	if cfg != nil {
		cc.perms = cfg.Permissions
	}
	reply, err := w.runCommand(ctx, cc, ev.Sender, 0, cmd)
	if err != nil {
		return err
	}
	if reply != "" {
		what := strings.Join(append([]string{"/" + cmd.Name}, cmd.Args...), " ")
		body := fmt.Sprintf("%s\n%s on the `%s` check of `%s`, pressed by @%s, is taken as `%s`:\n\n%s", ReplyMarker,
			checkButtonName(ev), StatusContext, short(req.HeadSHA), ev.Sender, what, reply)
		if _, err := f.CreateComment(ctx, ev.Repo, number, report.StripFormatMarkdown(body)); err != nil {
			return err
		}
	}
	return w.store.MarkDoneFor(ctx, doneKey, commandRetention)
}

// checkPullRequest is the number of the pull request a check request is
// about: that of mlbot's run the check showed, the one a waiting check
// names, or the first the host named; 0 when none is known.
func (w *Worker) checkPullRequest(ctx context.Context, ev *bot.Event) (int, error) {
	id := ev.Check.ExternalID
	if n, ok := strings.CutPrefix(id, pullRequestRef); ok {
		if number, err := strconv.Atoi(n); err == nil && number > 0 {
			return number, nil
		}
		id = ""
	}
	if id != "" {
		run, err := w.store.GetRun(ctx, id)
		switch {
		case errors.Is(err, ErrNoRun):
		case err != nil:
			return 0, err
		case run.PR != nil && repoKey(run.Repo) == repoKey(ev.Repo):
			return run.PR.Number, nil
		}
	}
	if ev.PR != nil {
		return ev.PR.Number, nil
	}
	return 0, nil
}

// checkKey names one press of one button: see routeCheck.
func checkKey(ev *bot.Event) string {
	req := ev.Check
	if req.RunID == 0 {
		when := ev.Delivery
		if !req.Updated.IsZero() {
			when = req.Updated.UTC().Format("20060102T150405")
		}
		return fmt.Sprintf("%s:suite:%d:%s:%s", repoKey(ev.Repo), req.SuiteID, when, strings.ToLower(ev.Sender))
	}
	return fmt.Sprintf("%s:run:%d:%s:%s:%s:%s", repoKey(ev.Repo), req.RunID, req.ExternalID, ev.Action, req.Identifier, strings.ToLower(ev.Sender))
}
