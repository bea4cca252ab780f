package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/runners/git"
)

// A commit whose changes since its base touch none of .mlbot.yml's
// pipeline.paths needs no new model: its run finishes at once with the
// skipped outcome (a success status, "no model changes (paths)"), records
// no model version and deploys nothing, so the base's version stays the
// one that counts. The check runs in the worker, right after the head's
// checkout and before anything else (a hand-over to a GPU queue, the
// base's run, the head's pipeline): the webhook handler stays fast, and
// the changes are computed by git from the commits themselves rather than
// trusted from the payload. Whenever they cannot be computed, the run
// goes ahead.

// skippedStatus is the status description of a skipped run.
const skippedStatus = "no model changes (paths)"

// zeroSHA is the "before" of a push that created its branch.
const zeroSHA = "0000000000000000000000000000000000000000"

// skipUnchanged decides whether run, checked out in co, may be skipped
// because its changes since its base touch none of pipeline.paths; when
// so it records the skipped outcome on run and returns true. It runs
// (returns false) for a forced run (/retrain), for a .mlbot.yml that is
// missing, invalid or watches no paths, when the changes cannot be
// computed, and when .mlbot.yml itself changed.
func (w *Worker) skipUnchanged(ctx context.Context, p PipelinePayload, co git.Checkout, run *Run) bool {
	if p.Force {
		return false
	}
	cfg := repoConfigIn(ctx, co.Dir)
	if cfg == nil || len(cfg.Pipeline.Paths) == 0 {
		return false
	}
	log := w.log.With("run", run.ID, "repo", run.Repo.FullName, "sha", run.SHA)
	changed, since, err := changesOf(ctx, p, co)
	if err != nil {
		log.Info("pipeline.paths not applied: the changes are not known, so the pipeline runs", "reason", err)
		return false
	}
	if slices.Contains(changed, configs.RepoConfigFile) || cfg.Pipeline.NeedsRun(changed) {
		return false
	}
	files := "files"
	if len(changed) == 1 {
		files = "file"
	}
	run.Outcome, run.Paths = report.OutcomeSkipped, cfg.Pipeline.Paths
	run.Detail = fmt.Sprintf("none of the %d %s changed since %s matches pipeline.paths", len(changed), files, short(since))
	log.Info("pipeline skipped: no watched path changed", "changed", len(changed), "since", since)
	return true
}

// changesOf returns the paths p's commit changed since its base, and the
// commit they are counted from. For a pull request the base is its base
// branch's commit (fetched when the event names none) and the changes are
// the head's since their merge base; for a push to the default branch,
// those since the branch's previous tip (the push's "before"), and only
// for a fast-forward: a push that created the branch or rewrote its
// history has no previous model state to stand on. An error says why the
// changes are not known.
func changesOf(ctx context.Context, p PipelinePayload, co git.Checkout) (changed []string, since string, err error) {
	var base string
	switch {
	case p.Kind == KindPullRequest && p.PR != nil:
		base = p.PR.BaseSHA
		if base == "" {
			if base, err = co.FetchBranch(ctx, p.PR.BaseRef); err != nil {
				return nil, "", fmt.Errorf("fetch base branch %s: %w", p.PR.BaseRef, err)
			}
		}
	case p.Kind == KindBaseline:
		if p.Before == "" || strings.Trim(p.Before, "0") == "" {
			return nil, "", errors.New("the push created the branch, or its event names no previous commit")
		}
		if err := co.Fetch(ctx, p.Before); err != nil {
			return nil, "", fmt.Errorf("fetch the previous tip %s: %w", short(p.Before), err)
		}
		base = p.Before
	default:
		return nil, "", fmt.Errorf("a %s run has no base", p.Kind)
	}
	changed, mb, err := git.ChangedSince(ctx, co.Dir, base, p.SHA)
	if err != nil {
		return nil, "", err
	}
	if p.Kind == KindBaseline && mb != base {
		return nil, "", fmt.Errorf("the push to %s was not a fast-forward of %s", p.Branch, short(base))
	}
	return changed, mb, nil
}

// skippedDescription is the status description of skipped run run: on
// the default branch it says too that nothing was deployed, since a merge
// there would otherwise deploy.
func skippedDescription(run *Run) string {
	if run.Kind == KindBaseline {
		return skippedStatus + " · nothing trained, registered or deployed"
	}
	return skippedStatus
}
