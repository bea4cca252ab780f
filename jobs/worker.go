package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/internal/urlsig"
	"github.com/mlbot/mlbot/jobs/registry"
	"github.com/mlbot/mlbot/jobs/store"
	"github.com/mlbot/mlbot/runners"
)

// ForgeSet is one configured code host: how its webhooks read and how to
// talk back to it.
type ForgeSet struct {
	Webhook bot.Webhook
	Forge   bot.Forge
}

// forgeSet returns the configured host named name (Event.Forge,
// Repo.Forge). A host missing from the configuration will not appear on a
// retry either, so its error skips retries.
func (w *Worker) forgeSet(name string) (ForgeSet, error) {
	fs, ok := w.forges[name]
	if !ok {
		return ForgeSet{}, fmt.Errorf("forge %q is not configured: %w", name, asynq.SkipRetry)
	}
	return fs, nil
}

// forgeOf returns the client of repo's host; see forgeSet. Each handler
// looks its forge up once and hands the steps the narrow interface they
// need.
func (w *Worker) forgeOf(repo bot.Repo) (bot.Forge, error) {
	fs, err := w.forgeSet(repo.Forge)
	return fs.Forge, err
}

// notifyWaiting shows on run's commit status what its runner waits for
// ("waiting for a GPU node"), best effort: the run goes on either way.
func (w *Worker) notifyWaiting(run *Run, msg string) {
	if run.Sweep != "" {
		return // a sweep's trial reports in the sweep's comment only
	}
	f, err := w.forgeOf(run.Repo)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err = w.setStatus(ctx, f, run.Repo, run.SHA, refOf(run.PR, run.Branch), bot.StateRunning, msg, w.runURL(run.ID), w.progressCheck(run.ID, run.SHA, msg))
	}
	if err != nil {
		w.log.Warn("waiting status not set", "run", run.ID, "err", err)
	}
}

// Options configures a Worker. The long-lived things it works with (the
// Redis connection, the store, the registry, the forges and the runners)
// are built once by the caller, which shares them with the pages and
// closes them.
type Options struct {
	// Redis carries asynq's queues; Store keeps mlbot's own state in it.
	Redis store.UniversalClient
	// Store keeps runs, heads, comments, leases and deploy lines.
	Store *store.Store
	// Registry records model versions and deploys.
	Registry *registry.Registry
	// Forges are the configured code hosts, one per name.
	Forges []ForgeSet
	// Runners holds the runners of this process by name; it must hold
	// runners.Local, which deploys use.
	Runners runners.Set
	// StepMemoryLimit is the memory limit of one step, in bytes, quoted
	// when a step runs out of memory (0: not known).
	StepMemoryLimit int64
	// RunnerLimits returns the operator's bounds of a container runner
	// (configs.Server.Limits); nil bounds nothing.
	RunnerLimits func(runner string) (configs.RunnerLimits, string, bool)
	// DeployPaths are host directories deploy commands may write besides
	// their workspace (MLBOT_DEPLOY_PATHS).
	DeployPaths []string
	// DataDir holds workspaces (work/) and run logs (logs/).
	DataDir string
	// PublicURL is where run pages are served, without a trailing slash.
	PublicURL string
	// ChartImages signs the URL of the chart image each pull request's
	// comment embeds (report.ChartImagePath); nil embeds none.
	ChartImages *urlsig.Signer
	// RepoAllowed reports whether "host/owner/name" may be served.
	RepoAllowed func(repo string) bool
	// Concurrency is the number of pipelines run at once by this process.
	Concurrency int
	// EventConcurrency is the number of webhook events and reports handled
	// at once by this process (default DefaultEventConcurrency).
	EventConcurrency int
	// PipelineQueues are the pipeline queues served; PipelineQueue is where
	// new pipelines go.
	PipelineQueues []string
	PipelineQueue  string
	// TaskCheckInterval is asynq's poll interval when its queues are empty;
	// it bounds the latency from webhook to pending status.
	TaskCheckInterval time.Duration
	// DelayedTaskCheckInterval is how often retries due are moved back to
	// their queue.
	DelayedTaskCheckInterval time.Duration
	// RetryBase is the first retry delay of a failed task; it doubles per
	// attempt up to RetryMax, unless the host said how long to wait.
	RetryBase, RetryMax time.Duration
	// MaxPipelineTimeout caps any .mlbot.yml timeout.
	MaxPipelineTimeout time.Duration
	// ShutdownTimeout is how long Shutdown lets running tasks finish
	// before they are stopped and requeued.
	ShutdownTimeout time.Duration
	// Secrets are values no child process, log or comment may contain.
	Secrets []string
	// SecretEnv are the secrets trusted runs may receive by name.
	SecretEnv map[string]string
	Logger    *slog.Logger
	// PrometheusURL is where deploys with a verify: block are checked.
	PrometheusURL string
	// ReconcileInterval is the time between the reconciler's passes
	// (MLBOT_RECONCILE_INTERVAL); 0 turns the reconciler off.
	ReconcileInterval time.Duration
	// FIFOPipelines queues new pipeline runs straight into asynq, first
	// come, first served (MLBOT_FIFO_PIPELINES), instead of in per-
	// repository fair lines taken in turns (dispatch.go). The dispatcher
	// still drains runs left in the fair lines.
	FIFOPipelines bool
	// TaskKey signs every task the Worker enqueues and verifies every task
	// it runs (see LoadTaskKey); every process sharing the Redis must use
	// the same key. Empty, a random key is made for this Worker alone.
	TaskKey []byte
}

// Worker runs mlbot's asynq task handlers: a fast server for routing and
// reporting and a separate one for pipelines, so that trainings filling
// every pipeline slot never delay a webhook's pending status.
type Worker struct {
	opts      Options
	log       *slog.Logger
	forges    map[string]ForgeSet
	store     *store.Store
	registry  *registry.Registry
	exec      *Executor
	client    *asynq.Client
	signer    *TaskSigner
	inspector *asynq.Inspector
	events    *asynq.Server
	pipelines *asynq.Server
	// inflight counts pipeline handlers still running, which asynq's
	// Shutdown does not wait for once its timeout has passed.
	inflight sync.WaitGroup
	// sweeper is the background loop; wg counts its goroutine.
	sweeper *sweeper
	// reconciler catches up lost webhooks (see reconcile.go).
	reconciler *reconciler
	// dispatcher hands the runs of the fair lines to asynq (dispatch.go);
	// busy counts the pipeline server's running handlers for it.
	dispatcher *dispatcher
	busy       atomic.Int64
	wg         sync.WaitGroup
	// uncountWorkers takes this Worker's task workers out of mlbot_workers;
	// Start sets it.
	uncountWorkers func()
}

// DefaultEventConcurrency is the event server's concurrency (webhooks,
// reports) when Options gives none. Routing an event waits mostly on the
// code host (a permission, a status: 100–300 ms each on github.com), so
// the event workers bound how fast a burst of webhooks gets its pending
// statuses; see BenchmarkBurst/pending in cmd/mlbot.
const DefaultEventConcurrency = 32

// New returns a Worker; Start runs it.
func New(opts Options) (*Worker, error) {
	if opts.Redis == nil || opts.Store == nil || opts.Registry == nil || len(opts.Forges) == 0 {
		return nil, errors.New("jobs: Redis, Store, Registry, Runner and at least one forge are required")
	}
	if _, err := opts.Runners.Get(runners.Local); err != nil {
		return nil, fmt.Errorf("jobs: Redis, Store, Registry, Runner and at least one forge are required: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.RepoAllowed == nil {
		opts.RepoAllowed = func(string) bool { return true }
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 2
	}
	if opts.EventConcurrency <= 0 {
		opts.EventConcurrency = DefaultEventConcurrency
	}
	if len(opts.PipelineQueues) == 0 {
		opts.PipelineQueues = []string{"default"}
	}
	if opts.PipelineQueue == "" {
		opts.PipelineQueue = opts.PipelineQueues[0]
	}
	if opts.TaskCheckInterval <= 0 {
		opts.TaskCheckInterval = 20 * time.Millisecond
	}
	if opts.DelayedTaskCheckInterval <= 0 {
		opts.DelayedTaskCheckInterval = time.Second
	}
	if opts.RetryBase <= 0 {
		opts.RetryBase = 2 * time.Second
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = 10 * time.Minute
	}
	if opts.MaxPipelineTimeout <= 0 {
		opts.MaxPipelineTimeout = 24 * time.Hour
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 30 * time.Second
	}
	if len(opts.TaskKey) == 0 {
		opts.TaskKey = newTaskKey()
	}
	signer, err := NewTaskSigner(opts.TaskKey)
	if err != nil {
		return nil, err
	}
	w := &Worker{
		opts:     opts,
		log:      opts.Logger,
		forges:   map[string]ForgeSet{},
		store:    opts.Store,
		registry: opts.Registry,
		exec: &Executor{Runners: opts.Runners, LogDir: filepath.Join(opts.DataDir, "logs"),
			Secrets: opts.Secrets, MaxTimeout: opts.MaxPipelineTimeout, SecretEnv: opts.SecretEnv,
			MemoryLimit: opts.StepMemoryLimit, Limits: opts.RunnerLimits},
		client:    asynq.NewClientFromRedisClient(opts.Redis),
		signer:    signer,
		inspector: asynq.NewInspectorFromRedisClient(opts.Redis),
	}
	for _, fs := range opts.Forges {
		w.forges[fs.Forge.Name()] = fs
	}
	w.exec.Notify, w.exec.RunLogs, w.exec.Logger = w.notifyWaiting, opts.Store, opts.Logger
	w.sweeper = newSweeper(sweeperParams{logger: opts.Logger, dataDir: opts.DataDir,
		workspaceAge: 2*opts.MaxPipelineTimeout + time.Hour, logAge: runTTL})
	w.dispatcher = newDispatcher(dispatcherParams{logger: opts.Logger, line: opts.Store, client: w.client,
		queues: opts.PipelineQueues, idle: w.idlePipelineWorkers,
		options: func(queue, id string) []asynq.Option { return w.pipelineOptions(queue, pipelineTaskID(id)) }})
	w.reconciler = newReconciler(reconcilerParams{worker: w, logger: opts.Logger, interval: opts.ReconcileInterval})
	w.events = asynq.NewServerFromRedisClient(opts.Redis, w.serverConfig(opts.EventConcurrency, map[string]int{QueueEvents: 6, QueueReport: 4}))
	// Deploys share the pipeline workers (they run commands too) at a
	// higher priority: a waiting deploy matters more than a new training.
	queues := map[string]int{QueueDeploy: 2}
	for _, q := range opts.PipelineQueues {
		queues[q] = 1
	}
	w.pipelines = asynq.NewServerFromRedisClient(opts.Redis, w.serverConfig(opts.Concurrency, queues))
	return w, nil
}

// serverConfig is the configuration of one of the worker's two asynq
// servers (events and reports; pipelines and deploys): concurrency
// workers on queues, with their priorities. Both poll, retry, log and
// shut down alike, as the worker's options say.
func (w *Worker) serverConfig(concurrency int, queues map[string]int) asynq.Config {
	return asynq.Config{
		Concurrency:              concurrency,
		Queues:                   queues,
		TaskCheckInterval:        w.opts.TaskCheckInterval,
		DelayedTaskCheckInterval: w.opts.DelayedTaskCheckInterval,
		RetryDelayFunc:           w.retryDelay,
		IsFailure:                isFailure,
		ErrorHandler:             asynq.ErrorHandlerFunc(w.logTaskError),
		ShutdownTimeout:          w.opts.ShutdownTimeout,
		Logger:                   asynqLogger{w.opts.Logger},
		LogLevel:                 asynq.WarnLevel,
	}
}

// Signer returns the task signer, for an Ingress enqueueing into the same
// Redis.
func (w *Worker) Signer() *TaskSigner { return w.signer }

// Start starts the background sweeper and both task servers; they run
// until Shutdown. The order:
//  1. the sweeper, which removes the leftovers of crashed attempts (its
//     age limits keep it off anything the servers create meanwhile);
//  2. the event server (webhooks, reports);
//  3. the pipeline server (pipelines, deploys);
//  4. the dispatcher, which hands the pipeline runs of the fair lines to
//     the pipeline server's queues (dispatch.go);
//  5. the reconciler (MLBOT_RECONCILE_INTERVAL), whose catch-ups the event
//     server routes.
func (w *Worker) Start() error {
	w.sweeper.start(&w.wg)
	mux := asynq.NewServeMux()
	mux.Use(w.signer.Middleware(w.log), instrument(serverEvents))
	mux.HandleFunc(TypeWebhook, skipPermanent(w.handleWebhook))
	mux.HandleFunc(TypeReport, skipPermanent(w.handleReport))
	mux.HandleFunc(TypeReconciled, skipPermanent(w.handleReconciled))
	if err := w.events.Start(mux); err != nil {
		w.stopBackground()
		return fmt.Errorf("start event workers: %w", err)
	}
	pmux := asynq.NewServeMux()
	pmux.Use(w.signer.Middleware(w.log), instrument(serverPipelines), w.countBusy)
	pmux.HandleFunc(TypePipeline, w.handlePipeline)
	pmux.HandleFunc(TypeDeploy, w.handleDeploy)
	if err := w.pipelines.Start(pmux); err != nil {
		w.events.Shutdown()
		w.stopBackground()
		return fmt.Errorf("start pipeline workers: %w", err)
	}
	w.uncountWorkers = countWorkers(map[string]int{serverEvents: w.opts.EventConcurrency, serverPipelines: w.opts.Concurrency})
	w.dispatcher.start(&w.wg)
	w.reconciler.start(&w.wg)
	return nil
}

// Shutdown stops taking tasks, lets running ones finish for up to
// ShutdownTimeout, and requeues the rest. It stops in the reverse order of
// Start: the dispatcher (runs not yet handed to asynq wait in their fair
// lines for another process), the pipeline server (and the pipelines still
// running), the event server, then the reconciler and the sweeper.
func (w *Worker) Shutdown() {
	w.dispatcher.shutdown()
	w.pipelines.Shutdown()
	// asynq has requeued what still runs and cancelled its context; wait
	// for the runner to kill those process groups (SIGTERM, then SIGKILL
	// after its grace) so that no training outlives mlbot.
	done := make(chan struct{})
	go func() { w.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		w.log.Error("pipelines still running after shutdown; their processes may outlive mlbot")
	}
	w.events.Shutdown()
	w.stopBackground()
	if w.uncountWorkers != nil {
		w.uncountWorkers()
		w.uncountWorkers = nil
	}
	// The client and inspector share the caller's Redis connection, which
	// the caller closes.
}

// stopBackground stops the background loops and waits for them.
func (w *Worker) stopBackground() {
	w.reconciler.shutdown()
	w.sweeper.shutdown()
	w.wg.Wait()
}

// retryDelay honours a host's Retry-After, and otherwise backs off
// exponentially with jitter from RetryBase to RetryMax.
func (w *Worker) retryDelay(n int, err error, _ *asynq.Task) time.Duration {
	if errors.Is(err, errWaitTurn) {
		// A deploy waiting for its environment: look again soon.
		return w.opts.RetryBase / 2
	}
	var rl *bot.RateLimitError
	if errors.As(err, &rl) && rl.RetryAfter > 0 {
		// asynq stores retry times in whole seconds, truncated: without the
		// extra second a retry could reach the host before it said to.
		return rl.RetryAfter + time.Second + time.Duration(rand.Int64N(int64(250*time.Millisecond)))
	}
	d := w.opts.RetryBase << min(n, 20)
	if d > w.opts.RetryMax || d <= 0 {
		d = w.opts.RetryMax
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// logTaskError logs every failed task attempt; asynq retries or archives it.
func (w *Worker) logTaskError(ctx context.Context, t *asynq.Task, err error) {
	if errors.Is(err, context.Canceled) || errors.Is(err, errWaitTurn) {
		// A cancelled run or a deploy waiting its turn: expected, not news.
		w.log.Debug("task paused", "type", t.Type(), "err", err)
		return
	}
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	w.log.Warn("task failed", "type", t.Type(), "attempt", retried+1, "max_retry", maxRetry, "err", redact(err.Error(), w.opts.Secrets))
}

// skipPermanent stops retries of a host refusal that no retry can change
// (400, 403, 404, 422): asynq would otherwise try it for hours.
func skipPermanent(h asynq.HandlerFunc) asynq.HandlerFunc {
	return func(ctx context.Context, t *asynq.Task) error {
		err := h(ctx, t)
		var he *bot.HostError
		if errors.As(err, &he) {
			switch he.StatusCode {
			case 400, 403, 404, 422:
				return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
			}
		}
		return err
	}
}

// isFailure keeps the host's rate limiting from counting as a task failure
// in asynq's statistics.
func isFailure(err error) bool {
	var rl *bot.RateLimitError
	return !errors.As(err, &rl) && !errors.Is(err, errWaitTurn)
}

// asynqLogger routes asynq's own logging into slog.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...), "component", "asynq") }
