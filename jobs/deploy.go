package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/jobs/deploystate"
	"github.com/mlbot/mlbot/jobs/registry"
	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/jobs/store"
	"github.com/mlbot/mlbot/jobs/verify"
	"github.com/mlbot/mlbot/runners"
	"github.com/mlbot/mlbot/runners/git"
)

// TypeDeploy deploys one model version to one environment.
const TypeDeploy = "mlbot:deploy"

// QueueDeploy holds deploy tasks; the pipeline workers serve it.
const QueueDeploy = "deploy"

// DeployPayload is the payload of a TypeDeploy task: the deploy record's id.
type DeployPayload struct {
	DeployID string `json:"deploy_id"`
	// Repo is needed to talk to the host before the record is read.
	Repo bot.Repo `json:"repo"`
	// Ref is the branch the deployed commit belongs to.
	Ref string `json:"ref"`
}

// deployLease is how long an environment's lock lives without a heartbeat:
// a worker that dies mid-deploy frees the environment after it.
const deployLease = 30 * time.Second

// deployKey derives a deploy's dedupe key from what asked for it, so that
// a retried task asking again finds the same deploy instead of a second
// one. The deploy's id, which names it in links, is random (Store.ClaimID).
func deployKey(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// requestDeploy records a deploy of version to env under the id that
// dedupe key stands for and queues it behind the environment's earlier
// requests; asking again with the same key returns the first request.
// kind (registry.KindMerge, KindRequest, KindRollback) decides the checks
// it gets when its turn comes; forced skips the check against the running
// version. Queued requests of older versions are dropped, except by a
// rollback: the newer one makes them pointless.
func (w *Worker) requestDeploy(ctx context.Context, key string, repo bot.Repo, ref, env string, v *registry.Version, reason, by string, pr int, kind string, forced bool) (*registry.Deploy, error) {
	id, err := w.store.ClaimID(ctx, "deploy", key)
	if err != nil {
		return nil, err
	}
	line := w.store.DeployLine(repoKey(repo), env)
	if prev, err := w.registry.GetDeploy(ctx, id); err == nil {
		return prev, w.enqueueDeploy(ctx, prev, repo, ref, line)
	} else if !errors.Is(err, registry.ErrNotFound) {
		return nil, err
	}
	d := registry.Deploy{ID: id, Repo: repoKey(repo), Env: env, Version: v.Number, SHA: v.SHA,
		State: deploystate.Queued, Reason: reason, RequestedBy: by, PR: pr, Requested: time.Now().UTC(), Kind: kind, Forced: forced}
	if kind != registry.KindRollback {
		ids, err := line.IDs(ctx)
		if err != nil {
			return nil, err
		}
		for _, qid := range ids {
			old, err := w.registry.GetDeploy(ctx, qid)
			if err != nil || old.State != deploystate.Queued || old.Version >= v.Number {
				continue
			}
			old.State, old.Detail, old.Finished = deploystate.Dropped, fmt.Sprintf("superseded by v%d queued behind it", v.Number), time.Now().UTC()
			if err := w.registry.SaveDeploy(ctx, *old); err != nil {
				return nil, err
			}
		}
	}
	if err := w.registry.SaveDeploy(ctx, d); err != nil {
		return nil, err
	}
	deploysRequested.WithLabelValues(env).Inc()
	return &d, w.enqueueDeploy(ctx, &d, repo, ref, line)
}

// enqueueDeploy makes sure deploy d has its task and its place in the
// environment's line; both steps tolerate having been done before.
func (w *Worker) enqueueDeploy(ctx context.Context, d *registry.Deploy, repo bot.Repo, ref string, line *store.DeployLine) error {
	b, _ := json.Marshal(DeployPayload{DeployID: d.ID, Repo: repo, Ref: ref})
	_, err := w.client.EnqueueContext(ctx, w.signer.NewTask(TypeDeploy, b), asynq.TaskID("deploy:"+d.ID),
		asynq.Queue(QueueDeploy), asynq.MaxRetry(100), asynq.Timeout(w.opts.MaxPipelineTimeout), asynq.Retention(runRetention))
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return err
	}
	return line.Join(ctx, d.ID)
}

// errWaitTurn makes asynq retry a deploy whose environment is busy.
var errWaitTurn = errors.New("environment busy: waiting for the deploys queued before this one")

// deployRecorder records deployments on the host (GitHub deployments,
// GitLab environments).
type deployRecorder interface {
	CreateDeployment(ctx context.Context, repo bot.Repo, d bot.Deployment) (bot.Deployment, error)
	UpdateDeployment(ctx context.Context, repo bot.Repo, id int64, st bot.DeploymentStatus) error
}

// deployReporter tells the host how a deploy ended: its commit status, its
// host deployment, and the answer in the thread or the merge's notes.
type deployReporter interface {
	statusPoster
	deployRecorder
	notePoster
}

// deployHost is all a deploy asks of its host: clone credentials for the
// default branch's .mlbot.yml and the checkout, and the reporter's calls.
type deployHost interface {
	cloneAuthorizer
	deployReporter
}

// deployPlan is what a deploy runs: the model version, the default
// branch's .mlbot.yml, and the environment's definition in it (nil when
// the environment is not defined there).
type deployPlan struct {
	version *registry.Version
	cfg     *configs.RepoConfig
	env     *configs.Environment
}

// handleDeploy runs one deploy when its turn comes: one at a time per
// repository and environment, in the order requested. The steps: take the
// environment's turn and lock; mark the deploy running; load its
// definition from the default branch; check the version may go there;
// announce it on the host; run the command; verify the environment
// afterwards; record the outcome and answer. A deploy that ended before
// only has its answer redone.
func (w *Worker) handleDeploy(ctx context.Context, t *asynq.Task) error {
	w.inflight.Add(1)
	defer w.inflight.Done()
	p, d, f, err := w.readDeployTask(ctx, t)
	if err != nil {
		return err
	}
	if d.Done() {
		return w.redoDeployEnd(ctx, f, p, d)
	}
	unlock, err := w.lockEnvironment(ctx, d)
	if err != nil {
		return err
	}
	defer unlock()
	if d.State == deploystate.Running {
		return w.failDeploy(ctx, f, p, d, nil, interruptedDetail)
	}
	if err := w.markDeployRunning(ctx, d); err != nil {
		return err
	}
	plan, err := w.loadDefinition(ctx, f, p, d)
	if err != nil {
		return err
	}
	if plan.env == nil {
		return w.failDeploy(ctx, f, p, d, plan.version, "environment "+d.Env+" is not defined in the default branch's .mlbot.yml")
	}
	refusal, err := w.checkVersion(ctx, d, plan)
	if err != nil {
		return err
	}
	if refusal != nil {
		return w.refuseDeploy(ctx, f, p, d, plan.version, *refusal)
	}
	w.announceDeploy(ctx, f, p, d, *plan.env)
	if err := w.runDeployCommand(ctx, f, p, d, plan); err != nil {
		return err
	}
	if err := w.verifyDeploy(ctx, p, d, *plan.env); err != nil {
		return err
	}
	return w.finishDeploy(ctx, f, p, d, plan.version, plan.env)
}

// interruptedDetail is why a deploy found running when its task starts
// failed: a worker died mid-deploy, and running the command again could
// deploy twice, so a human decides.
const interruptedDetail = "the worker running this deploy stopped before it finished; it was not run again, to avoid deploying twice"

// readDeployTask decodes a deploy task, reads the deploy record it names
// and looks up the host of its repository.
func (w *Worker) readDeployTask(ctx context.Context, t *asynq.Task) (DeployPayload, *registry.Deploy, deployHost, error) {
	var p DeployPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return p, nil, nil, fmt.Errorf("deploy payload: %v: %w", err, asynq.SkipRetry)
	}
	d, err := w.registry.GetDeploy(ctx, p.DeployID)
	if err != nil {
		return p, nil, nil, err
	}
	f, err := w.forgeOf(p.Repo)
	if err != nil {
		return p, nil, nil, fmt.Errorf("deploy %s: %w", d.ID, err)
	}
	return p, d, f, nil
}

// redoDeployEnd finishes what a retry of deploy d, which ended before,
// may find undone: leaving the environment's line, queuing the automatic
// rollback, and the answer in the thread or the merge's notes. Each of
// these remembers it was done, so nothing happens twice.
func (w *Worker) redoDeployEnd(ctx context.Context, f notePoster, p DeployPayload, d *registry.Deploy) error {
	w.store.DeployLine(d.Repo, d.Env).Leave(ctx, d.ID)
	if d.State == deploystate.RolledBack {
		if err := w.autoRollback(ctx, p, d, d.Detail); err != nil {
			return err
		}
	}
	if d.State == deploystate.Refused && d.Kind == registry.KindMerge {
		// The note was stored before the record was saved as refused.
		return w.postMergeNotes(ctx, f, p.Repo, d.SHA)
	}
	v, _ := w.registry.Get(ctx, d.Repo, d.Version)
	return w.replyDeploy(ctx, f, p.Repo, d, v, "")
}

// lockEnvironment takes deploy d's turn in its environment: it joins the
// environment's line, returns errWaitTurn (asynq retries soon) while
// requests made earlier are still to run, and then takes the
// environment's lock, kept alive by a heartbeat until unlock is called.
func (w *Worker) lockEnvironment(ctx context.Context, d *registry.Deploy) (unlock func(), err error) {
	line := w.store.DeployLine(d.Repo, d.Env)
	if err := line.Join(ctx, d.ID); err != nil {
		return nil, err
	}
	if err := w.awaitTurn(ctx, line, d.ID); err != nil {
		return nil, err
	}
	lease, ok, err := w.store.Lease(ctx, "deploy:"+d.Repo+":"+d.Env, deployLease)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errWaitTurn
	}
	return hold(ctx, lease, deployLease), nil
}

// awaitTurn returns nil when deploy id heads its environment's line, and
// errWaitTurn while another request is ahead of it. Requests ahead that
// were dropped, have finished, or were left without a task by a crash
// between recording and queueing are skipped.
func (w *Worker) awaitTurn(ctx context.Context, line *store.DeployLine, id string) error {
	for {
		head, err := line.Head(ctx)
		if err != nil {
			return err
		}
		if head == id {
			return nil
		}
		ahead, err := w.registry.GetDeploy(ctx, head)
		info, taskErr := w.inspector.GetTaskInfo(QueueDeploy, "deploy:"+head)
		dead := errors.Is(taskErr, asynq.ErrTaskNotFound) || (taskErr == nil && info.State == asynq.TaskStateArchived)
		if err != nil || dead || ahead.Done() {
			line.Skip(ctx, head)
			continue
		}
		return errWaitTurn
	}
}

// hold keeps lease alive with a heartbeat every third of ttl; the returned
// func stops the heartbeat and releases the lease.
func hold(ctx context.Context, lease *store.Lease, ttl time.Duration) (release func()) {
	stop := lease.Heartbeat(ctx, ttl)
	return func() {
		stop()
		lease.Release()
	}
}

// markDeployRunning records that deploy d has started. From here on a
// retry that finds it running reports it interrupted rather than run it.
func (w *Worker) markDeployRunning(ctx context.Context, d *registry.Deploy) error {
	d.State, d.Started = deploystate.Running, time.Now().UTC()
	return w.registry.SaveDeploy(ctx, *d)
}

// loadDefinition reads what deploy d runs: its model version, and the
// environment's definition in the default branch's .mlbot.yml, never in
// the pull request that asked. When the file cannot be read, d, not yet
// started, goes back to queued for the retry.
func (w *Worker) loadDefinition(ctx context.Context, f cloneAuthorizer, p DeployPayload, d *registry.Deploy) (deployPlan, error) {
	v, err := w.registry.Get(ctx, d.Repo, d.Version)
	if err != nil {
		return deployPlan{}, err
	}
	cfg, err := w.defaultBranchConfig(ctx, f, p.Repo, w.log)
	if err != nil {
		// Not yet started: put the deploy back to queued for the retry.
		d.State = deploystate.Queued
		w.registry.SaveDeploy(context.WithoutCancel(ctx), *d)
		return deployPlan{}, err
	}
	plan := deployPlan{version: v, cfg: cfg}
	if cfg != nil {
		if env, ok := cfg.Deploy[d.Env]; ok {
			plan.env = &env
		}
	}
	return plan, nil
}

// failDeploy ends deploy d as failed before its command ran, saying why
// in detail, and records and reports it. v is the version, when known.
func (w *Worker) failDeploy(ctx context.Context, f deployReporter, p DeployPayload, d *registry.Deploy, v *registry.Version, detail string) error {
	d.State, d.Finished, d.Detail = deploystate.Failed, time.Now().UTC(), detail
	return w.finishDeploy(ctx, f, p, d, v, nil)
}

// checkVersion decides whether deploy d's version may go to its
// environment, and returns the refusal when it may not (nil: go on). The
// version must come from a trusted run, and, for a gated deploy (a merge
// or a /deploy not forced), be no worse than the version the environment
// runs now, under the default branch's gates. When that check cannot be
// made, d goes back to queued for the retry.
func (w *Worker) checkVersion(ctx context.Context, d *registry.Deploy, plan deployPlan) (*report.Refusal, error) {
	v := plan.version
	// Checkout and deploy belong together: the command runs in a checkout
	// of the version's commit with the deploy's secrets, so that commit
	// must come from a trusted run.
	if !v.Trusted {
		d.State, d.Finished, d.Detail = deploystate.Refused, time.Now().UTC(), report.UntrustedText(v.Number)
		return &report.Refusal{Untrusted: true}, nil
	}
	// What runs now is what a new version must beat: after a rollback that
	// is the restored version, not the previous head of the branch.
	if d.Gated() {
		running, diff, err := w.checkAgainstRunning(ctx, d.Repo, d.Env, v, plan.cfg)
		if err != nil {
			d.State = deploystate.Queued
			w.registry.SaveDeploy(context.WithoutCancel(ctx), *d)
			return nil, err
		}
		if running != nil {
			d.Against = running.Number
			if !diff.Pass() {
				d.State, d.Finished = deploystate.Refused, time.Now().UTC()
				d.Detail = fmt.Sprintf("worse than model v%d, which %s runs now: %s", running.Number, d.Env, report.GateText(diff))
				return &report.Refusal{Gate: &report.DeployGate{Running: running.Number, RunningSHA: running.SHA, Diff: diff}}, nil
			}
		}
	} else if d.Forced {
		if cur, err := w.registry.Current(ctx, d.Repo, d.Env); err == nil && cur != nil && cur.Version != d.Version {
			d.Against = cur.Version
		}
	}
	return nil, nil
}

// announceDeploy marks the commit's deploy status pending and opens the
// host's deployment record, saved on d at once so that a crash from here
// on still closes it. Both are best effort: the deploy goes on without.
func (w *Worker) announceDeploy(ctx context.Context, f deployReporter, p DeployPayload, d *registry.Deploy, env configs.Environment) {
	w.setDeployStatus(ctx, f, p.Repo, d.SHA, p.Ref, "mlbot/deploy/"+d.Env, bot.StatePending, fmt.Sprintf("deploying model v%d", d.Version), d.ID)
	hd, err := f.CreateDeployment(ctx, p.Repo, bot.Deployment{Environment: d.Env, Ref: p.Ref, SHA: d.SHA,
		Description: deploymentDescription(d), Production: d.Env == "production"})
	if err != nil {
		w.log.Warn("host deployment record not created", "env", d.Env, "err", err)
		return
	}
	d.HostID = hd.ID
	// Saved at once: a crash from here on must still close the host's record.
	w.registry.SaveDeploy(ctx, *d)
	f.UpdateDeployment(ctx, p.Repo, hd.ID, bot.DeploymentStatus{State: bot.DeploymentInProgress, LogURL: w.deployURL(d.ID), EnvironmentURL: env.URL})
}

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

// verifyDeploy watches the environment's metric after deploy d succeeded,
// when the environment has a verify: block. On a breach d becomes rolled
// back and the previous version is queued in its place; otherwise what
// was observed joins d's detail. It returns an error when mlbot shuts
// down meanwhile (the retry finds d running and reports it unverified
// rather than succeeded) or the rollback cannot be queued.
func (w *Worker) verifyDeploy(ctx context.Context, p DeployPayload, d *registry.Deploy, env configs.Environment) error {
	// An automatic rollback restores a version that held before; verifying
	// it against the same bad signal could bounce between versions forever.
	if d.State != deploystate.Succeeded || env.Verify == nil || strings.HasPrefix(d.Reason, autoRollbackReason) {
		return nil
	}
	breach, observed := w.watchMetric(ctx, env)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if breach != "" {
		d.State, d.Detail = deploystate.RolledBack, "verification failed: "+breach+observed
		// The rollback is queued before anything that can fail on the
		// host, so a lost reply cannot leave the bad model serving.
		return w.autoRollback(ctx, p, d, breach)
	}
	if observed != "" {
		d.Detail = joinDetail(d.Detail, "verified: "+observed)
	}
	return nil
}

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

// checkAgainstRunning compares version v with the version env runs now,
// under the default branch's gates (its metric specs, as for a pull
// request). running is nil when nothing else runs there: no check then.
func (w *Worker) checkAgainstRunning(ctx context.Context, repo, env string, v *registry.Version, cfg *configs.RepoConfig) (running *registry.Version, diff report.Diff, err error) {
	cur, err := w.registry.Current(ctx, repo, env)
	if err != nil || cur == nil || cur.Version == v.Number {
		return nil, report.Diff{}, err
	}
	running, err = w.registry.Get(ctx, repo, cur.Version)
	if errors.Is(err, registry.ErrNotFound) {
		return nil, report.Diff{}, nil
	}
	if err != nil {
		return nil, report.Diff{}, err
	}
	return running, report.Compute(running.Metrics, v.Metrics, specs(cfg), cfg.MetricOrder), nil
}

// deploymentDescription is what the host's deployment record says.
func deploymentDescription(d *registry.Deploy) string {
	s := fmt.Sprintf("model v%d", d.Version)
	if d.Forced {
		s += " (forced by " + d.RequestedBy + " past the check"
		if d.Against > 0 {
			s += fmt.Sprintf(" against v%d", d.Against)
		}
		s += ")"
	}
	return s
}

func joinDetail(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// watchMetric watches the environment's metric after a deploy; it returns
// why it breached ("" when it held) and what it observed.
func (w *Worker) watchMetric(ctx context.Context, env configs.Environment) (breach, observed string) {
	if w.opts.PrometheusURL == "" {
		verifications.WithLabelValues(env.Name, "skipped").Inc()
		return "", "not verified: MLBOT_PROMETHEUS_URL is not set"
	}
	vf, err := verify.New(w.opts.PrometheusURL)
	if err != nil {
		verifications.WithLabelValues(env.Name, "error").Inc()
		return "", "not verified: " + err.Error()
	}
	res, err := vf.Run(ctx, *env.Verify)
	var vals []string
	for _, s := range res.Observed {
		vals = append(vals, strconv.FormatFloat(s.Value, 'g', 4, 64))
	}
	if len(vals) > 20 {
		vals = vals[len(vals)-20:]
	}
	obs := ""
	if len(vals) > 0 {
		obs = fmt.Sprintf(" (observed %s: %s)", env.Verify.Query, strings.Join(vals, ", "))
	}
	if err != nil {
		if ctx.Err() == nil {
			// A shutdown is not a verification that failed.
			verifications.WithLabelValues(env.Name, "error").Inc()
		}
		return "", "not verified: " + err.Error() + obs
	}
	if res.Breached {
		verifications.WithLabelValues(env.Name, "breached").Inc()
		return res.Reason, obs
	}
	verifications.WithLabelValues(env.Name, "passed").Inc()
	return "", strings.TrimPrefix(obs, " ")
}

const autoRollbackReason = "automatic rollback"

// autoRollback queues the environment's previous version after a failed
// verification.
func (w *Worker) autoRollback(ctx context.Context, p DeployPayload, d *registry.Deploy, why string) error {
	prev, err := w.previousVersion(ctx, d.Repo, d.Env, d.Version)
	if err != nil || prev == nil {
		w.log.Error("automatic rollback impossible: no previous version", "env", d.Env, "err", err)
		return err
	}
	_, err = w.requestDeploy(ctx, deployKey(d.ID, "rollback"), p.Repo, p.Ref, d.Env, prev, autoRollbackReason+" from v"+strconv.Itoa(d.Version)+": "+why, "mlbot", d.PR, registry.KindRollback, false)
	return err
}

// previousVersion returns the newest version other than current that was
// deployed successfully to env.
func (w *Worker) previousVersion(ctx context.Context, repo, env string, current int) (*registry.Version, error) {
	hist, err := w.registry.Deploys(ctx, repo, env)
	if err != nil {
		return nil, err
	}
	for _, h := range hist {
		if h.State == deploystate.Succeeded && h.Version != current {
			return w.registry.Get(ctx, repo, h.Version)
		}
	}
	return nil, nil
}

func (w *Worker) setDeployStatus(ctx context.Context, f statusPoster, repo bot.Repo, sha, ref, name string, st bot.State, desc, id string) {
	// Where the host shows check runs, the deploy's is named like the
	// status and carries the deploy's id.
	if err := f.CreateStatus(ctx, repo, sha, bot.Status{Context: name, State: st, Description: desc, TargetURL: w.deployURL(id), Ref: ref, ExternalID: id}); err != nil {
		w.log.Warn("deploy status not set", "context", name, "err", err)
	}
}

func (w *Worker) deployURL(id string) string { return w.opts.PublicURL + "/deploys/" + id }
