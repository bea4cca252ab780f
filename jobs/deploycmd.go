package jobs

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/jobs/registry"
	"github.com/mlbot/mlbot/jobs/report"
)

// cmdDeploy deploys the pull request head's model version, or the version
// of this pull request it names (a sweep's trial), to an environment that
// accepts deploys from pull requests. What the deploy
// runs comes from the default branch's .mlbot.yml, never from the pull
// request. The version must not be worse than the one the environment
// runs, under the default branch's gates, unless `--force` says so. Its
// steps: read the environment, version and --force from args; find the
// version; gate it against the environment's; queue the deploy and say so.
func (w *Worker) cmdDeploy(ctx context.Context, cc *commandContext, args []string) (string, error) {
	env, version, force, msg := deployTarget(cc.cfg, args)
	if msg != "" {
		return msg, nil
	}
	v, msg, err := w.deployVersion(ctx, cc, version)
	if err != nil || msg != "" {
		return msg, err
	}
	why := fmt.Sprintf("`/deploy` by @%s from #%d", cc.user, cc.pr.Number)
	// The same check runs again when the deploy's turn comes; asking now
	// answers at once, before anything is queued.
	running, diff, err := w.checkAgainstRunning(ctx, repoKey(cc.ev.Repo), env, v, cc.cfg)
	if err != nil {
		return "", err
	}
	if running != nil && !diff.Pass() && !force {
		return report.RenderRefusal(report.Refusal{Env: env, Version: v.Number, SHA: v.SHA, Why: why,
			Gate: &report.DeployGate{Running: running.Number, RunningSHA: running.SHA, Diff: diff}, ForceHint: "/deploy " + env + " --force"}), nil
	}
	if force {
		why += " with `--force`"
	}
	d, err := w.requestDeploy(ctx, deployKey(cc.commentKey, "deploy", env), cc.ev.Repo, cc.pr.HeadRef, env, v, why, cc.user, cc.pr.Number, registry.KindRequest, force)
	if err != nil {
		return "", err
	}
	return w.deployingReply(d, v, env, cc.user, force, running, diff), nil
}

// deployTarget reads /deploy's arguments under the default branch's
// config cfg: the environment to deploy to, the model version named (0 for
// the head's) and whether `--force` was given, or msg saying why nothing
// can be deployed (no deploy section, bad flags, no such environment, or
// one that takes no deploys from pull requests).
func deployTarget(cfg *configs.RepoConfig, args []string) (env string, version int, force bool, msg string) {
	if cfg == nil || len(cfg.Deploy) == 0 {
		return "", 0, false, "Deployments are not configured for this repository (no `deploy:` section in the default branch's `.mlbot.yml`)."
	}
	args, force, msg = deployFlags(args)
	if msg != "" {
		return "", 0, false, msg
	}
	args, version = versionArg(args)
	if env, msg = pickEnv(cfg, args, true); msg != "" {
		return "", 0, false, msg
	}
	if !cfg.Deploy[env].FromPR {
		return "", 0, false, fmt.Sprintf("`%s` does not accept `/deploy` from pull requests (its `from_pr` is not set on the default branch).", env)
	}
	return env, version, force, ""
}

// deployVersion returns the model version /deploy deploys: the pull
// request's version number when one was named, else its head's; or msg
// saying why it cannot be deployed.
func (w *Worker) deployVersion(ctx context.Context, cc *commandContext, number int) (*registry.Version, string, error) {
	if number > 0 {
		return w.prVersion(ctx, cc, number)
	}
	return w.headVersion(ctx, cc)
}

// deployingReply is /deploy's answer once deploy d of v to env is queued,
// with, when by forced it, what the environment's running version (if
// any) and the gates' diff said.
func (w *Worker) deployingReply(d *registry.Deploy, v *registry.Version, env, by string, force bool, running *registry.Version, diff report.Diff) string {
	reply := fmt.Sprintf("Deploying model v%d (`%s`) to `%s` ([log](%s)); I will answer here when it is done.", v.Number, short(v.SHA), env, w.deployURL(d.ID))
	if force {
		g := report.Forced{Env: env, By: by}
		if running != nil {
			g.Gate = &report.DeployGate{Running: running.Number, RunningSHA: running.SHA, Diff: diff}
		}
		reply += "\n\n" + report.RenderForced(g)
	}
	return reply
}

// headVersion returns the model version of the pull request head's
// finished run, or msg saying why it cannot be deployed.
func (w *Worker) headVersion(ctx context.Context, cc *commandContext) (*registry.Version, string, error) {
	id, err := w.store.CurrentRun(ctx, cc.ev.Repo, cc.pr.Number)
	if err != nil {
		return nil, "", err
	}
	run, err := w.store.GetRun(ctx, id)
	if id == "" || err != nil || run.State != RunFinished {
		return nil, "The head of this pull request has no finished run yet; `/deploy` once it has passed.", nil
	}
	if run.Outcome == report.OutcomeSkipped {
		return nil, fmt.Sprintf("`%s` changed none of `pipeline.paths`, so no model was trained for it and the base's version is the one that counts; nothing was deployed. Comment `/retrain` to train it, then `/deploy`.", short(run.SHA)), nil
	}
	if run.Outcome != report.OutcomePassed {
		return nil, fmt.Sprintf("The run of `%s` did not pass its gates (%s); nothing was deployed.", short(run.SHA), strings.ReplaceAll(string(run.Outcome), "_", " ")), nil
	}
	if !run.Trusted {
		// The deploy runs in a checkout of this commit with the default
		// branch's secrets: an untrusted author's scripts must not get them.
		return nil, fmt.Sprintf("`%s` was run for an untrusted author (`/ok-to-test`); its model cannot be deployed from the pull request. Merge it to deploy.", short(run.SHA)), nil
	}
	v, err := w.registry.ByRun(ctx, repoKey(cc.ev.Repo), run.ID)
	if err != nil {
		return nil, "", err
	}
	if v == nil {
		return nil, "The run of `" + short(run.SHA) + "` recorded no model version (`pipeline.artifacts` names none); nothing to deploy.", nil
	}
	return v, "", nil
}

// prVersion returns model version number of this pull request (a sweep's
// trial, or an earlier head), or msg saying why it cannot be deployed:
// it is not this pull request's, did not pass its gates, or was made for
// an untrusted author.
func (w *Worker) prVersion(ctx context.Context, cc *commandContext, number int) (*registry.Version, string, error) {
	v, err := w.registry.Get(ctx, repoKey(cc.ev.Repo), number)
	if errors.Is(err, registry.ErrNotFound) {
		return nil, fmt.Sprintf("There is no model v%d of this repository; nothing was deployed.", number), nil
	}
	if err != nil {
		return nil, "", err
	}
	switch {
	case v.PR != cc.pr.Number:
		return nil, fmt.Sprintf("Model v%d was not made by this pull request; `/deploy` from a pull request deploys only its own versions (`/rollback <env> v%d` redeploys others). Nothing was deployed.", number, number), nil
	case !v.Passed:
		return nil, fmt.Sprintf("Model v%d did not pass its gates; nothing was deployed.", number), nil
	case !v.Trusted:
		return nil, fmt.Sprintf("Model v%d was made for an untrusted author (`/ok-to-test`); it cannot be deployed from the pull request. Merge it to deploy.", number), nil
	}
	return v, "", nil
}

// versionArg takes a model version ("v7" or "7") out of /deploy's
// arguments; 0 when none is named.
func versionArg(args []string) (rest []string, version int) {
	for _, a := range args {
		n, err := strconv.Atoi(strings.TrimPrefix(strings.ToLower(a), "v"))
		if err == nil && n > 0 && version == 0 {
			version = n
			continue
		}
		rest = append(rest, a)
	}
	return rest, version
}

// deployFlags takes /deploy's options out of args: `--force` skips the
// check against the version the environment runs. msg refuses an unknown
// option.
func deployFlags(args []string) (rest []string, force bool, msg string) {
	for _, a := range args {
		switch {
		case a == "--force":
			force = true
		case strings.HasPrefix(a, "-"):
			return nil, false, "`/deploy` knows one option, `--force`; nothing was done."
		default:
			rest = append(rest, a)
		}
	}
	return rest, force, ""
}

// cmdRollback redeploys the previous version of an environment, or the
// one named.
func (w *Worker) cmdRollback(ctx context.Context, cc *commandContext, args []string) (string, error) {
	if cc.cfg == nil || len(cc.cfg.Deploy) == 0 {
		return "Deployments are not configured for this repository (no `deploy:` section in the default branch's `.mlbot.yml`).", nil
	}
	var version int
	var rest []string
	for _, a := range args {
		if n, err := strconv.Atoi(strings.TrimPrefix(strings.ToLower(a), "v")); err == nil {
			version = n
		} else {
			rest = append(rest, a)
		}
	}
	env, msg := pickEnv(cc.cfg, rest, false)
	if msg != "" {
		return msg, nil
	}
	key := repoKey(cc.ev.Repo)
	cur, err := w.registry.Current(ctx, key, env)
	if err != nil {
		return "", err
	}
	var v *registry.Version
	if version > 0 {
		if v, err = w.registry.Get(ctx, key, version); err != nil {
			return fmt.Sprintf("There is no model v%d of this repository.", version), nil
		}
	} else {
		if cur == nil {
			return fmt.Sprintf("Nothing has been deployed to `%s` yet; nothing to roll back.", env), nil
		}
		if v, err = w.previousVersion(ctx, key, env, cur.Version); err != nil {
			return "", err
		}
		if v == nil {
			return fmt.Sprintf("`%s` runs model v%d and no earlier version was deployed there; nothing to roll back to.", env, cur.Version), nil
		}
	}
	user := cc.user
	if !v.Trusted {
		return report.RenderRefusal(report.Refusal{Env: env, Version: v.Number, SHA: v.SHA, Why: fmt.Sprintf("`/rollback` by @%s", user), Untrusted: true}), nil
	}
	d, err := w.requestDeploy(ctx, deployKey(cc.commentKey, "rollback", env, strconv.Itoa(v.Number)), cc.ev.Repo, cc.ev.Repo.DefaultBranch, env, v, fmt.Sprintf("`/rollback` by @%s", user), user, cc.pr.Number, registry.KindRollback, false)
	if err != nil {
		return "", err
	}
	from := ""
	if cur != nil {
		from = fmt.Sprintf(" from v%d", cur.Version)
	}
	return fmt.Sprintf("Rolling `%s` back%s to model v%d (`%s`) ([log](%s)).", env, from, v.Number, short(v.SHA), w.deployURL(d.ID)), nil
}

// pickEnv resolves the environment a command names, or the only one that
// fits when it names none. msg explains a refusal.
func pickEnv(cfg *configs.RepoConfig, args []string, fromPR bool) (env, msg string) {
	if len(args) > 0 {
		if _, ok := cfg.Deploy[args[0]]; !ok {
			return "", fmt.Sprintf("There is no environment `%s`; environments: %s.", args[0], envList(cfg, false))
		}
		return args[0], ""
	}
	var fits []string
	for _, name := range cfg.DeployOrder {
		if !fromPR || cfg.Deploy[name].FromPR {
			fits = append(fits, name)
		}
	}
	switch len(fits) {
	case 1:
		return fits[0], ""
	case 0:
		return "", "No environment accepts `/deploy` from pull requests (none sets `from_pr: true` on the default branch)."
	default:
		return "", "Name an environment: " + envList(cfg, fromPR) + "."
	}
}

func envList(cfg *configs.RepoConfig, fromPR bool) string {
	var out []string
	for _, name := range cfg.DeployOrder {
		if !fromPR || cfg.Deploy[name].FromPR {
			out = append(out, "`"+name+"`")
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// deployOnMerge deploys a passing default-branch run to every on_merge
// environment, each checked against what it runs when its turn comes. A
// run whose own gates failed deploys nothing, and says so on the merged
// pull request (on the commit while none is known).
func (w *Worker) deployOnMerge(ctx context.Context, f notePoster, run *Run) error {
	if run.Outcome == report.OutcomeSkipped {
		// No model changed (pipeline.paths): the environments keep what
		// they run, and the status says so (skippedDescription).
		return nil
	}
	if len(run.OnMerge) == 0 {
		return nil
	}
	if run.Outcome != report.OutcomePassed {
		var diff report.Diff
		if run.Metrics != nil {
			var base map[string]float64
			if run.BaseRunID != "" {
				if b, err := w.store.GetRun(ctx, run.BaseRunID); err == nil {
					base = b.Metrics
				}
			}
			diff = report.ComputeWith(base, run.Metrics, run.Specs, run.Order, run.Significance)
		}
		body := ReplyMarker + "\n" + report.RenderMergeNotDeployed(report.MergeNotDeployed{SHA: run.SHA, Branch: run.Branch,
			Outcome: run.Outcome, BaseSHA: run.BaseSHA, Diff: diff, Envs: run.OnMerge, RunURL: w.runURL(run.ID)})
		return w.noteMerge(ctx, f, run.Repo, run.SHA, "gates", body)
	}
	pr, err := w.store.MergedPR(ctx, run.Repo, run.SHA)
	if err != nil {
		return err
	}
	v, err := w.registry.ByRun(ctx, repoKey(run.Repo), run.ID)
	if err != nil || v == nil {
		return err
	}
	reason := "push to " + run.Branch
	if pr != 0 {
		reason = fmt.Sprintf("merge of #%d", pr)
	}
	for _, env := range run.OnMerge {
		key := "mergedeploy:" + run.ID + ":" + env
		if done, err := w.store.Done(ctx, key); err != nil || done {
			if err != nil {
				return err
			}
			continue
		}
		if _, err := w.requestDeploy(ctx, deployKey(run.ID, "merge", env), run.Repo, run.Branch, env, v, reason, "", pr, registry.KindMerge, false); err != nil {
			return err
		}
		if err := w.store.MarkDone(ctx, key); err != nil {
			return err
		}
	}
	return nil
}
