package jobs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/jobs/deploystate"
	"github.com/mlbot/mlbot/jobs/registry"
	"github.com/mlbot/mlbot/runners"
	"github.com/mlbot/mlbot/runners/git"
)

// runDeployCommand runs the environment's command for deploy d and records in
// d how it ended: succeeded, or failed and why, with the end of its log.
// It returns an error only when mlbot shuts down meanwhile: the task comes
// back, finds d running and reports the interruption instead of deploying
// twice.
func (w *Worker) runDeployCommand(ctx context.Context, f cloneAuthorizer, p DeployPayload, d *registry.Deploy, plan deployPlan) error {
	logTail, err := w.runDeploy(ctx, f, p.Repo, d, plan.version, *plan.env, plan.cfg)
	d.LogTail, d.Finished = logTail, time.Now().UTC()
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		d.State, d.Detail = deploystate.Failed, err.Error()
		return nil
	}
	d.State = deploystate.Succeeded
	return nil
}

// runDeploy runs the environment's command in a checkout of the version's
// commit with its artifacts restored, and returns the end of its log.
func (w *Worker) runDeploy(ctx context.Context, f cloneAuthorizer, repo bot.Repo, d *registry.Deploy, v *registry.Version, env configs.Environment, cfg *configs.RepoConfig) (string, error) {
	root := filepath.Join(w.opts.DataDir, "work", "deploy-"+d.ID)
	defer os.RemoveAll(root)
	dir, artifacts, err := w.deployWorkspace(ctx, f, repo, d, v, root)
	if err != nil {
		return "", err
	}
	logPath := filepath.Join(w.opts.DataDir, "logs", "deploy-"+d.ID+".log")
	os.MkdirAll(filepath.Dir(logPath), 0o750)
	sink, err := runners.NewLogSink(logPath, w.opts.Secrets)
	if err != nil {
		return "", err
	}
	extra := []string{"MLBOT_ENVIRONMENT=" + d.Env, "MLBOT_MODEL_VERSION=" + strconv.Itoa(v.Number), "MLBOT_SHA=" + d.SHA,
		"MLBOT_ARTIFACTS_DIR=" + artifacts, "MLBOT_REPO=" + repo.FullName}
	for _, name := range cfg.Secrets {
		if val, ok := w.opts.SecretEnv[name]; ok {
			extra = append(extra, name+"="+val)
		}
	}
	// The deploy sees its checkout and the restored artifacts (root), and
	// keeps the network: it ships the model somewhere.
	r, err := w.opts.Runners.Get(runners.Local)
	if err != nil {
		sink.Close()
		return sink.Tail(logTailLines), err
	}
	res, last, end := runJob(ctx, r, runners.Job{Steps: []runners.Step{{Name: "deploy", Command: env.Command}}, Dir: dir, Workspace: root,
		Network: true, Writable: w.opts.DeployPaths, Env: runners.ChildEnv(os.Environ(), w.opts.Secrets, extra...), Timeout: time.Hour,
		Output: sink, Log: logPath})
	sink.Close()
	tail := sink.Tail(logTailLines)
	if res.InfraError != nil {
		return tail, res.InfraError
	}
	switch end {
	case stepCanceled:
		return tail, canceledError(ctx, "deploy")
	case stepOOMKilled:
		return tail, errors.New("the deploy command ran out of memory and was killed")
	case stepTimedOut:
		return tail, errors.New("the deploy command did not finish within an hour")
	case stepExited:
		return tail, fmt.Errorf("the deploy command exited with status %d", last.ExitCode)
	}
	return tail, nil
}

// deployWorkspace fills root with what deploy d's command sees: a checkout
// of the version's commit (dir) and the version's artifacts restored
// from the registry (artifacts).
func (w *Worker) deployWorkspace(ctx context.Context, f cloneAuthorizer, repo bot.Repo, d *registry.Deploy, v *registry.Version, root string) (dir, artifacts string, err error) {
	auth, err := f.CloneAuth(ctx, repo)
	if err != nil {
		return "", "", fmt.Errorf("clone credentials: %w", err)
	}
	dir = filepath.Join(root, "checkout")
	co := git.Checkout{URL: repo.CloneURL, Auth: auth, Dir: dir}
	if err := co.Fetch(ctx, d.SHA); err != nil {
		return "", "", fmt.Errorf("fetch %s: %w", short(d.SHA), err)
	}
	if err := co.Checkout(ctx, d.SHA); err != nil {
		return "", "", fmt.Errorf("checkout %s: %w", short(d.SHA), err)
	}
	artifacts = filepath.Join(root, "artifacts")
	for _, a := range v.Artifacts {
		if err := w.registry.Store().Restore(a, artifacts); err != nil {
			return "", "", fmt.Errorf("restore artifact %s of v%d: %w", a.Path, v.Number, err)
		}
	}
	if err := os.MkdirAll(artifacts, 0o750); err != nil {
		return "", "", err
	}
	return dir, artifacts, nil
}
