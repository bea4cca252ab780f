package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/jobs/deploystate"
	"github.com/mlbot/mlbot/jobs/registry"
	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/jobs/store"
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
