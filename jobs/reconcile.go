package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/jobs/store"
)

// TypeReconciled is a normalised event the reconciler made for a head
// whose webhook never arrived; it is routed as that webhook would have
// been.
const TypeReconciled = "mlbot:reconciled"

// reconcileHost is what the reconciler asks of a code host: the open
// pull/merge requests of a repository, the head of a branch and the
// statuses on a commit. Its calls return bot.ErrRateBudgetLow once the
// host's rate limit runs low.
type reconcileHost interface {
	ListOpenPullRequests(ctx context.Context, repo bot.Repo) ([]bot.PullRequest, error)
	BranchHead(ctx context.Context, repo bot.Repo, branch string) (string, error)
	CommitStatuses(ctx context.Context, repo bot.Repo, sha string) ([]bot.CommitStatus, error)
}

// installationLister is a host that knows the repositories it was
// installed on (a GitHub App) beyond those that delivered webhooks.
type installationLister interface {
	InstallationRepos(ctx context.Context) ([]bot.Repo, error)
}

// Leases of the reconciler, shared by every process of an install.
const (
	// reconcileLease is held while a pass runs: one process at a time.
	reconcileLease = "reconcile"
	// reconcileDue is taken by each pass and left to expire: a pass
	// starts only once the one before it is a good part of an interval
	// old, whichever process ran it.
	reconcileDue = "reconcile:due"
	// reconcileLeaseTTL bounds how long a crashed pass holds the lease;
	// a running pass renews it.
	reconcileLeaseTTL = time.Minute
)

// reconciler lists, every interval, the open pull/merge requests and the
// default branch's head of each repository mlbot serves, and routes every
// head that has neither an mlbot status nor a run as if its webhook had
// arrived: a webhook lost while mlbot, its load balancer or Redis was
// down is caught up (level-triggered, like a Kubernetes controller). One
// process at a time runs a pass, whatever the number of replicas: a pass
// takes a Redis lease.
//
// It has the shape of asynq's background components: newReconciler,
// start, shutdown.
type reconciler struct {
	w        *Worker
	logger   *slog.Logger
	interval time.Duration

	done     chan struct{}
	stopOnce sync.Once
}

// reconcilerParams configures a reconciler.
type reconcilerParams struct {
	worker *Worker
	logger *slog.Logger
	// interval is the time between passes; 0 turns the reconciler off.
	interval time.Duration
}

// newReconciler returns a reconciler; start runs it.
func newReconciler(params reconcilerParams) *reconciler {
	return &reconciler{w: params.worker, logger: params.logger, interval: params.interval, done: make(chan struct{})}
}

// start runs a pass now and then one every interval, in a goroutine
// counted by wg, until shutdown. With a zero interval it does nothing.
func (r *reconciler) start(wg *sync.WaitGroup) {
	if r.interval <= 0 {
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			<-r.done
			cancel()
		}()
		t := time.NewTicker(r.interval)
		defer t.Stop()
		for {
			r.pass(ctx)
			select {
			case <-r.done:
				r.logger.Debug("reconciler done")
				return
			case <-t.C:
			}
		}
	}()
}

// shutdown stops the reconciler and cancels a pass under way; the caller
// waits on the WaitGroup given to start. Calling it more than once, or
// without start, is harmless.
func (r *reconciler) shutdown() {
	r.stopOnce.Do(func() { close(r.done) })
}

// pass runs one reconciliation if this process wins the lease and no
// other process ran one within most of an interval.
func (r *reconciler) pass(ctx context.Context) {
	st := r.w.store
	lease, ok, err := st.Lease(ctx, reconcileLease, reconcileLeaseTTL)
	if err != nil || !ok {
		if err != nil && ctx.Err() == nil {
			r.logger.Warn("reconcile skipped: lease not taken", "err", err)
		}
		return
	}
	defer lease.Release()
	// The due mark outlives the pass and is never released: the next pass,
	// by any process, waits for it to expire.
	if _, due, err := st.Lease(ctx, reconcileDue, r.interval*9/10); err != nil || !due {
		return
	}
	stop := lease.Heartbeat(ctx, reconcileLeaseTTL)
	defer stop()
	res := r.w.reconcile(ctx)
	reconcilePasses.WithLabelValues(res.result()).Inc()
	level := slog.LevelDebug
	if res.caughtUp > 0 || res.errors > 0 || len(res.rateLimited) > 0 {
		level = slog.LevelInfo
	}
	r.logger.Log(ctx, level, "reconcile pass", "repos", res.repos, "heads", res.heads, "caught_up", res.caughtUp,
		"rate_limited", len(res.rateLimited) > 0, "errors", res.errors, "took", time.Since(res.started).Round(time.Millisecond))
}

// reconcileResult is what one pass did.
type reconcileResult struct {
	started                        time.Time
	repos, heads, caughtUp, errors int
	// rateLimited names the hosts whose pass stopped early for their rate
	// limit.
	rateLimited []string
}

func (res reconcileResult) result() string {
	switch {
	case len(res.rateLimited) > 0:
		return "rate_limited"
	case res.errors > 0:
		return "error"
	}
	return "done"
}

// reconcile runs one pass over every configured host that can list, and
// returns what it did. A host whose rate limit runs low is left for the
// next pass; a repository that fails is logged and skipped.
func (w *Worker) reconcile(ctx context.Context) reconcileResult {
	res := reconcileResult{started: time.Now()}
	served, err := w.store.ServedRepos(ctx, res.started)
	if err != nil {
		w.log.Warn("reconcile: served repositories not read", "err", err)
		res.errors++
		return res
	}
	names := make([]string, 0, len(w.forges))
	for name := range w.forges {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fs := w.forges[name]
		host, ok := fs.Forge.(reconcileHost)
		if !ok {
			continue
		}
		repos := w.reconcileRepos(ctx, fs, served, &res)
		for _, repo := range repos {
			if ctx.Err() != nil {
				return res
			}
			res.repos++
			err := w.reconcileRepo(ctx, fs, host, repo, &res)
			if errors.Is(err, bot.ErrRateBudgetLow) {
				w.log.Warn("reconcile stopped early: the host's rate limit runs low; the next pass goes on", "forge", name, "repo", repo.FullName, "err", err)
				res.rateLimited = append(res.rateLimited, name)
				break
			}
			if err != nil && ctx.Err() == nil {
				w.log.Warn("reconcile: repository skipped", "forge", name, "repo", repo.FullName, "err", redact(err.Error(), w.opts.Secrets))
				res.errors++
			}
		}
	}
	return res
}

// reconcileRepos returns the repositories of host fs to look at: those
// that delivered a webhook and, for a GitHub App, its installations'
// repositories, each once and only if the allowlist admits it.
func (w *Worker) reconcileRepos(ctx context.Context, fs ForgeSet, served []bot.Repo, res *reconcileResult) []bot.Repo {
	name := fs.Forge.Name()
	seen := map[string]bool{}
	var out []bot.Repo
	add := func(r bot.Repo) {
		k := store.RepoKey(r)
		if r.Forge != name || seen[k] || r.FullName == "" || r.CloneURL == "" || !w.opts.RepoAllowed(r.Host+"/"+r.FullName) {
			return
		}
		seen[k] = true
		out = append(out, r)
	}
	for _, r := range served {
		add(r)
	}
	if il, ok := fs.Forge.(installationLister); ok {
		repos, err := il.InstallationRepos(ctx)
		if err != nil {
			w.log.Warn("reconcile: installations' repositories not listed", "forge", name, "err", err)
			res.errors++
		}
		for _, r := range repos {
			add(r)
		}
	}
	return out
}

// reconcileRepo catches up repo's open pull requests and default branch
// head.
func (w *Worker) reconcileRepo(ctx context.Context, fs ForgeSet, host reconcileHost, repo bot.Repo, res *reconcileResult) error {
	// Events made now count as received before the listing: a webhook of
	// a newer head, received after it, still wins (AdvanceHead).
	listed := time.Now().UTC()
	prs, err := host.ListOpenPullRequests(ctx, repo)
	if err != nil {
		return fmt.Errorf("list open pull requests: %w", err)
	}
	for i := range prs {
		pr := &prs[i]
		if pr.Draft || pr.HeadSHA == "" {
			continue
		}
		res.heads++
		known, err := w.knownHead(ctx, host, repo, KindPullRequest, pr.HeadSHA, pr.Number, "")
		if err != nil {
			return err
		}
		if known {
			continue
		}
		ev := &bot.Event{Forge: repo.Forge, Type: "reconcile", Kind: bot.KindPullRequest, Action: bot.ActionOpened, Repo: repo, PR: pr, Received: listed}
		if err := w.catchUp(ctx, ev, "pr"+strconv.Itoa(pr.Number), pr.HeadSHA, res); err != nil {
			return err
		}
	}
	branch := repo.DefaultBranch
	if branch == "" {
		return nil
	}
	head, err := host.BranchHead(ctx, repo, branch)
	if errors.Is(err, bot.ErrNotFound) {
		return nil // an empty repository
	}
	if err != nil {
		return fmt.Errorf("head of %s: %w", branch, err)
	}
	res.heads++
	known, err := w.knownHead(ctx, host, repo, KindBaseline, head, 0, branch)
	if err != nil || known {
		return err
	}
	ev := &bot.Event{Forge: repo.Forge, Type: "reconcile", Kind: bot.KindPush, Repo: repo, Ref: "refs/heads/" + branch, Branch: branch, SHA: head, Received: listed}
	return w.catchUp(ctx, ev, "branch:"+branch, head, res)
}

// knownHead reports whether mlbot already acted on a head: a run exists
// for it (asked of Redis, which costs the host nothing) or the host shows
// mlbot's status on it (a run whose records expired, a head waiting for
// /ok-to-test).
func (w *Worker) knownHead(ctx context.Context, host reconcileHost, repo bot.Repo, kind RunKind, sha string, pr int, branch string) (bool, error) {
	id, err := w.store.LookupID(ctx, "run", runKey(repo, kind, sha, pr, branch))
	if err != nil || id != "" {
		return id != "", err
	}
	if pr > 0 {
		if cur, err := w.store.Head(ctx, repo, pr); err != nil || cur == sha {
			return cur == sha, err
		}
	}
	sts, err := host.CommitStatuses(ctx, repo, sha)
	if err != nil {
		return false, fmt.Errorf("statuses of %s: %w", short(sha), err)
	}
	for _, st := range sts {
		if st.Context == StatusContext {
			return true, nil
		}
	}
	return false, nil
}

// catchUp queues ev as a TypeReconciled task. Its task id follows the
// repository, the pull request or branch and the head, so the same head
// is queued once however many passes find it before it has a status.
func (w *Worker) catchUp(ctx context.Context, ev *bot.Event, what, sha string, res *reconcileResult) error {
	key := reconcileTaskKey(ev.Repo, what, sha)
	ev.Delivery = "reconcile-" + key[:20]
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	_, err = w.client.EnqueueContext(ctx, w.signer.NewTask(TypeReconciled, b),
		asynq.TaskID("reconcile:"+key), asynq.Queue(QueueEvents),
		asynq.Retention(webhookRetention), asynq.MaxRetry(20))
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("queue the catch-up of %s: %w", short(sha), err)
	}
	res.caughtUp++
	kind := "pull_request"
	if ev.Kind == bot.KindPush {
		kind = "default_branch"
	}
	reconcileCaughtUp.WithLabelValues(ev.Forge, kind).Inc()
	w.log.Info("reconcile: caught up a head without status or run, as if its webhook had arrived",
		"forge", ev.Forge, "repo", ev.Repo.FullName, "what", what, "sha", sha, "delivery", ev.Delivery)
	return nil
}

// reconcileTaskKey identifies the catch-up of one head.
func reconcileTaskKey(repo bot.Repo, what, sha string) string {
	h := sha256.New()
	for _, s := range []string{repo.Forge, strings.ToLower(repo.FullName), what, sha} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// handleReconciled routes an event the reconciler made, the way its
// webhook would have been routed (admission and trust checks included).
func (w *Worker) handleReconciled(ctx context.Context, t *asynq.Task) error {
	var ev bot.Event
	if err := json.Unmarshal(t.Payload(), &ev); err != nil {
		return fmt.Errorf("reconciled event: %v: %w", err, asynq.SkipRetry)
	}
	fs, err := w.forgeSet(ev.Forge)
	if err != nil {
		return err
	}
	log := w.log.With("forge", ev.Forge, "event", ev.Type, "delivery", ev.Delivery, "repo", ev.Repo.FullName)
	return w.routeEvent(ctx, log, fs, &ev, false)
}
