package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/jobs/store"
)

// A check run is a commit status with more to show: jobs sets both
// through statusPoster.CreateStatus, and a host that shows check runs
// (bot.CheckRunHost: GitHub, when mlbot is a GitHub App) turns the status
// into the commit's check run of that name, created once and updated
// after. The options below add what only a check run shows; hosts with
// commit statuses ignore it. One call path keeps the pipeline's steps the
// same on every host, and the host's client, which knows its API, keeps
// the check run's id.

// statusOption adds to a status what its check run shows.
type statusOption func(*bot.Status)

// showsCheckRuns reports whether f turns statuses into check runs.
func showsCheckRuns(f any) bool {
	h, ok := f.(bot.CheckRunHost)
	return ok && h.ShowsCheckRuns()
}

// progressCheck is the check run of a queued or running run: the run's
// id as external id, msg as title, and a summary linking its live log.
func (w *Worker) progressCheck(runID, sha, msg string) statusOption {
	out := report.CheckProgress(sha, msg, w.runURL(runID))
	return func(st *bot.Status) {
		st.ExternalID, st.Title, st.Summary = runID, out.Title, out.Summary
	}
}

// awaitingCheck is the check run of a pull request's head that waits
// for /ok-to-test: completed with action_required, saying what it waits
// for. There is no run to name, so its external id names the pull
// request (pullRequestRef): GitHub names no pull request in the events of
// a fork's checks.
func awaitingCheck(pr *bot.PullRequest) statusOption {
	out := report.Check(report.Comment{Outcome: report.OutcomeAwaitingApproval, HeadSHA: pr.HeadSHA})
	return func(st *bot.Status) {
		st.ExternalID = pullRequestRef + strconv.Itoa(pr.Number)
		st.Title, st.Summary, st.Conclusion = out.Title, out.Summary, bot.ConclusionActionRequired
	}
}

// pullRequestRef starts the external id of a check that names a pull
// request rather than a run ("pr:7"); run ids are hex.
const pullRequestRef = "pr:"

// reportCheck is the check run of a finished run: c's title, table and
// notes, the conclusion its outcome refines (neutral when nothing was
// compared, timed_out), and the buttons that may follow it. It is nil
// for a host without check runs, which then need not read the default
// branch's configuration for the buttons.
func (w *Worker) reportCheck(ctx context.Context, f cloneAuthorizer, run *Run, c report.Comment) statusOption {
	if !showsCheckRuns(f) {
		return nil
	}
	out := report.Check(c)
	var conclusion bot.Conclusion
	switch {
	case run.Outcome == report.OutcomeTimedOut:
		conclusion = bot.ConclusionTimedOut
	case run.Outcome == report.OutcomePassed && c.BaseSHA == "", run.Outcome == report.OutcomeSkipped:
		conclusion = bot.ConclusionNeutral
	}
	actions := w.checkButtons(ctx, f, run)
	return func(st *bot.Status) {
		st.ExternalID, st.Title, st.Summary, st.Text = run.ID, out.Title, out.Summary, out.Text
		st.Conclusion, st.Actions = conclusion, actions
	}
}

// sweepCheck is the check run of a sweep (mlbot/sweep): the sweep's id
// as external id, the status's description as title, naming the best
// trial's parameters once a trial passed, and the sweep's table as
// summary. It has no buttons: Re-run of a sweep is a new /sweep.
func sweepCheck(sw *store.Sweep, c report.SweepComment, best *report.SweepRow) statusOption {
	return func(st *bot.Status) {
		st.ExternalID, st.Title = sw.ID, st.Description
		if best != nil && best.Passed && sw.State == store.SweepFinished {
			params := make([]string, 0, len(best.Values))
			for i, v := range best.Values {
				if i < len(c.Table.Params) {
					params = append(params, c.Table.Params[i]+"="+v)
				}
			}
			st.Title = fmt.Sprintf("%d/%d done; best: trial %d (%s), %s %.4f", c.Finished, c.Total, best.Index+1,
				strings.Join(params, ", "), c.Table.Metric, best.Metric)
		}
		st.Summary = report.RenderSweepCheck(c)
	}
}

// Button identifiers, as requested_action events carry them back.
const (
	actionRetrain      = "retrain"
	actionDeployPrefix = "deploy-"
)

// checkButtons are the buttons on a pull request run's check: Retrain,
// and for a passed, trusted run that recorded a model version, Deploy to
// each environment the default branch's .mlbot.yml lets pull requests
// deploy to, up to the host's three. Pressing one is the comment command
// it stands for, with the same permission check (see routeCheck). A
// default branch that cannot be read costs the Deploy buttons, never the
// report.
func (w *Worker) checkButtons(ctx context.Context, f cloneAuthorizer, run *Run) []bot.CheckAction {
	if run.PR == nil {
		return nil
	}
	out := []bot.CheckAction{{Label: "Retrain", Description: "Train and evaluate this head again", Identifier: actionRetrain}}
	if run.Outcome != report.OutcomePassed || !run.Trusted || run.ModelVersion == 0 {
		return out
	}
	log := w.log.With("run", run.ID, "repo", run.Repo.FullName)
	cfg, err := w.defaultBranchConfig(ctx, f, run.Repo, log)
	if err != nil {
		log.Warn("no Deploy buttons: the default branch's configuration could not be read", "err", err)
		return out
	}
	if cfg == nil {
		return out
	}
	for _, env := range cfg.DeployOrder {
		id := actionDeployPrefix + env
		if !cfg.Deploy[env].FromPR || len(id) > bot.MaxActionIdentifier {
			if cfg.Deploy[env].FromPR {
				log.Info("no Deploy button: the environment's name is too long for one", "env", env)
			}
			continue
		}
		out = append(out, bot.CheckAction{Label: "Deploy to " + env,
			Description: fmt.Sprintf("Deploy model v%d to %s", run.ModelVersion, env), Identifier: id})
		if len(out) == bot.MaxCheckActions {
			break
		}
	}
	return out
}

// checkCommand is the comment command a pressed check button stands for:
// Re-run (of the check or its whole suite) and Retrain are /retrain, and
// Deploy to <env> is /deploy <env>.
func checkCommand(ev *bot.Event) (Command, bool) {
	if ev.Action == bot.ActionRerequested {
		return Command{Name: "retrain"}, true
	}
	id := ev.Check.Identifier
	switch {
	case id == actionRetrain:
		return Command{Name: "retrain"}, true
	case len(id) > len(actionDeployPrefix) && id[:len(actionDeployPrefix)] == actionDeployPrefix:
		return Command{Name: "deploy", Args: []string{id[len(actionDeployPrefix):]}}, true
	}
	return Command{}, false
}

// checkButtonName is how the thread names what was pressed.
func checkButtonName(ev *bot.Event) string {
	switch {
	case ev.Action == bot.ActionRerequested && ev.Check.RunID == 0:
		return "**Re-run all**"
	case ev.Action == bot.ActionRerequested:
		return "**Re-run**"
	case ev.Check.Identifier == actionRetrain:
		return "**Retrain**"
	default:
		env := ev.Check.Identifier[len(actionDeployPrefix):]
		if !envName.MatchString(env) {
			env = "an environment"
		}
		return "**Deploy to " + env + "**"
	}
}

// envName matches the environment names a reply may show as they are.
var envName = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// checkLog adds the check request's fields to log.
func checkLog(log *slog.Logger, ev *bot.Event) *slog.Logger {
	return log.With("check_run", ev.Check.RunID, "check_suite", ev.Check.SuiteID, "identifier", ev.Check.Identifier, "sender", ev.Sender)
}
