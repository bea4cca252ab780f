package jobs

import (
	"context"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/mlbot/mlbot/runners"
)

var (
	tasksProcessed = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "mlbot", Name: "tasks_processed_total",
		Help: "Tasks handled, by task type and result (ok, error).",
	}, []string{"type", "result"})
	taskDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "mlbot", Name: "task_duration_seconds",
		Help:    "Time spent handling a task, by task type.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 5, 30, 120, 600, 3600},
	}, []string{"type"})
	pipelinesRunning = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: "mlbot", Name: "pipelines_running",
		Help: "Pipelines running in this process.",
	})
	deploysRequested = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "mlbot", Name: "deploys_requested_total",
		Help: "Deploys requested, by environment.",
	}, []string{"env"})
	deploysFinished = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "mlbot", Name: "deploys_finished_total",
		Help: "Deploys finished, by environment and final state (succeeded, failed, rolled_back).",
	}, []string{"env", "state"})
	pipelinesFinished = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "mlbot", Name: "pipelines_finished_total",
		Help: "Pipelines finished, by outcome.",
	}, []string{"outcome"})
	stageDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "mlbot", Name: "pipeline_stage_duration_seconds",
		Help:    "Time spent in each stage of a pipeline: clone (fetch and check out the commit), train, evaluate (the steps that ran), report (posting status and comment, each attempt).",
		Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600},
	}, []string{"stage"})
	webhookToPending = promauto.NewHistogram(prometheus.HistogramOpts{
		Namespace: "mlbot", Name: "webhook_to_pending_seconds",
		Help:    "Time from receiving a webhook to the pending status of the pipeline it started being set on the host.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
	})
	workersBusy = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "mlbot", Name: "workers_busy",
		Help: "Task workers of this process handling a task now, by server (events: webhooks and reports; pipelines: pipelines and deploys).",
	}, []string{"server"})
	workersTotal = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "mlbot", Name: "workers",
		Help: "Task workers of this process (their concurrency), by server.",
	}, []string{"server"})
	reconcileCaughtUp = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "mlbot", Name: "reconcile_caught_up_total",
		Help: "Heads the reconciler found without an mlbot status or run and routed as if their webhook had arrived, by forge and kind (pull_request, default_branch).",
	}, []string{"forge", "kind"})
	reconcilePasses = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "mlbot", Name: "reconcile_passes_total",
		Help: "Reconciler passes run by this process, by result (done; rate_limited: stopped early to leave the host's rate limit to webhooks; error: a repository could not be listed).",
	}, []string{"result"})
	verifications = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "mlbot", Name: "deploy_verifications_total",
		Help: "Deploy verifications against Prometheus, by environment and result (passed, breached, error, skipped when no Prometheus is configured).",
	}, []string{"env", "result"})
)

// Pipeline stages, the values of mlbot_pipeline_stage_duration_seconds's
// stage label. Train and evaluate are the step names of .mlbot.yml.
const (
	stageClone    = "clone"
	stageTrain    = "train"
	stageEvaluate = "evaluate"
	stageReport   = "report"
)

// Task servers, the values of mlbot_workers{,_busy}'s server label.
const (
	serverEvents    = "events"
	serverPipelines = "pipelines"
)

// Collectors returns the package's process-wide metrics, which are
// registered with the default registry; it lets tests and tools list what
// mlbot exports. The collectors read from Redis at scrape time are per
// Worker: DeployedCollector and QueueCollector.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{tasksProcessed, taskDuration, pipelinesRunning, deploysRequested, deploysFinished,
		pipelinesFinished, stageDuration, webhookToPending, workersBusy, workersTotal, verifications, reconcileCaughtUp, reconcilePasses}
}

// countWorkers adds the workers of each server to mlbot_workers and
// returns the function that takes them away again.
func countWorkers(n map[string]int) func() {
	for server, k := range n {
		workersTotal.WithLabelValues(server).Add(float64(k))
	}
	return func() {
		for server, k := range n {
			workersTotal.WithLabelValues(server).Sub(float64(k))
		}
	}
}

// observeStage records a stage that began at start and ends now.
func observeStage(stage string, start time.Time) {
	stageDuration.WithLabelValues(stage).Observe(time.Since(start).Seconds())
}

// observeStep records the duration of a pipeline step that ran.
func observeStep(sr runners.StepResult) {
	if sr.NotStarted || (sr.Name != stageTrain && sr.Name != stageEvaluate) {
		return
	}
	stageDuration.WithLabelValues(sr.Name).Observe(sr.Duration.Seconds())
}

// receivedKey carries the time a webhook was received through the context
// of the task that routes it.
type receivedKey struct{}

// withReceived returns ctx carrying the time the webhook being routed was
// received; zero (a task from an older version) carries nothing.
func withReceived(ctx context.Context, at time.Time) context.Context {
	if at.IsZero() {
		return ctx
	}
	return context.WithValue(ctx, receivedKey{}, at)
}

// observePending records the webhook-to-pending latency once the pending
// status of a pipeline is set (err is nil) while routing a webhook, and
// returns err. A clock behind the receiving process's counts as zero.
func observePending(ctx context.Context, err error) error {
	if at, ok := ctx.Value(receivedKey{}).(time.Time); ok && err == nil {
		webhookToPending.Observe(max(time.Since(at), 0).Seconds())
	}
	return err
}

// instrument counts and times every task, and counts the workers of
// server busy with one.
func instrument(server string) asynq.MiddlewareFunc {
	busy := workersBusy.WithLabelValues(server)
	return func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			busy.Inc()
			defer busy.Dec()
			return instrumentTask(ctx, t, next)
		})
	}
}

// instrumentTask runs t with next, counting and timing it.
func instrumentTask(ctx context.Context, t *asynq.Task, next asynq.Handler) error {
	start := time.Now()
	err := next.ProcessTask(ctx, t)
	result := "ok"
	if err != nil {
		result = "error"
	}
	tasksProcessed.WithLabelValues(t.Type(), result).Inc()
	taskDuration.WithLabelValues(t.Type()).Observe(time.Since(start).Seconds())
	return err
}
