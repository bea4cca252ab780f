package jobs

import (
	"context"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
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
)

// instrument counts and times every task.
func instrument(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		start := time.Now()
		err := next.ProcessTask(ctx, t)
		result := "ok"
		if err != nil {
			result = "error"
		}
		tasksProcessed.WithLabelValues(t.Type(), result).Inc()
		taskDuration.WithLabelValues(t.Type()).Observe(time.Since(start).Seconds())
		return err
	})
}
