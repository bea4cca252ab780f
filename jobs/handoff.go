package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/internal/workspace"
)

// A run goes first to the pipeline queue of the worker that routed it,
// since which queue .mlbot.yml names is known only from the checkout. A
// worker that checks out a run whose .mlbot.yml names another queue
// (`pipeline.queue: gpu`) hands the run over to that queue, where only
// the workers serving it (`mlbot worker --queues gpu`) take it; the
// checkout it made is all it did.

// handOff is the error execute returns for a run that belongs on another
// pipeline queue.
type handOff struct {
	// queue is the queue .mlbot.yml names.
	queue string
}

func (h handOff) Error() string { return "the run belongs on pipeline queue " + h.queue }

// queueOf returns the pipeline queue the .mlbot.yml in dir names, or ""
// when it names none or cannot be read (the run then goes on where it is,
// and reports the file's problem as usual).
func queueOf(ctx context.Context, dir string) string {
	cfg := repoConfigIn(ctx, dir)
	if cfg == nil {
		return ""
	}
	return cfg.Pipeline.Queue
}

// repoConfigIn returns the .mlbot.yml of the checkout in dir, or nil when
// it is missing, refused or invalid: the executor reports that when the
// run goes on.
func repoConfigIn(ctx context.Context, dir string) *configs.RepoConfig {
	data, err := workspace.ReadFile(ctx, dir, configs.RepoConfigFile, 1<<20)
	if err != nil {
		return nil
	}
	cfg, err := configs.ParseRepoConfig(configs.RepoConfigFile, data)
	if err != nil {
		return nil
	}
	return cfg
}

// belongsElsewhere says which queue a run checked out in dir must move
// to, or "" when it is where .mlbot.yml wants it. A file that names no
// queue (or "default", its default) leaves the run on the queue that
// routed it, as before queues were read from the file.
func belongsElsewhere(ctx context.Context, dir string) string {
	here, ok := asynq.GetQueueName(ctx)
	if !ok {
		return "" // not run by a worker: nowhere to hand over from
	}
	want := queueOf(ctx, dir)
	if want == "" || want == "default" || want == here {
		return ""
	}
	return want
}

// pipelineTaskOf returns the queue and task id of run's pipeline task:
// the routing worker's queue and pipelineTaskID, or after a hand-off the
// queue .mlbot.yml names and a task id of its own.
func (w *Worker) pipelineTaskOf(run *Run) (queue, taskID string) {
	if run.Queue == "" {
		return w.opts.PipelineQueue, pipelineTaskID(run.ID)
	}
	return run.Queue, pipelineTaskID(run.ID) + "@" + run.Queue
}

// handOver moves run to queue: it records the queue with the run, still
// queued, says on the commit's status that the run waits for that queue's
// workers, and enqueues the run's pipeline task there, once.
func (w *Worker) handOver(ctx context.Context, log *slog.Logger, f statusPoster, p PipelinePayload, run *Run, queue string) error {
	run.State, run.Queue = RunQueued, queue
	if err := w.store.SaveRun(ctx, run); err != nil {
		return err
	}
	// The status first: the other queue's worker may take the run at once,
	// and its statuses must come after this one.
	desc := fmt.Sprintf("queued for the %s workers: train and evaluate", queue)
	// A sweep's trial reports in the sweep's comment only.
	if run.Sweep == "" {
		if serr := w.setStatus(ctx, f, run.Repo, run.SHA, refOf(run.PR, run.Branch), bot.StatePending, desc, w.runURL(run.ID),
			w.progressCheck(run.ID, run.SHA, desc)); serr != nil {
			log.Warn("queued status not set", "err", serr)
		}
	}
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	_, taskID := w.pipelineTaskOf(run)
	_, err = w.client.EnqueueContext(ctx, w.signer.NewTask(TypePipeline, b),
		asynq.TaskID(taskID), asynq.Queue(queue),
		asynq.Timeout(2*w.opts.MaxPipelineTimeout+10*time.Minute), asynq.MaxRetry(3), asynq.Retention(runRetention))
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("hand the run over to queue %s: %w", queue, err)
	}
	log.Info("run handed over to the queue its .mlbot.yml names", "queue", queue)
	return nil
}
