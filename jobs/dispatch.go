package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/mlbot/mlbot/jobs/store"
)

// Pipelines are dequeued fairly between repositories. asynq takes a
// queue's tasks first in, first out, and has no per-key fairness (its
// groups aggregate tasks into one, its queue weights are fixed when a
// server starts): a repository that opens 100 pull requests at once would
// hold every worker until its last one trained. So a new pipeline run does
// not go to asynq at once: it waits in its repository's list of the
// queue's fair line (store.FairPush), and each process's dispatcher hands
// the runs to asynq one repository at a time, in turn, keeping only about
// as many pipeline tasks pending in asynq as this process has idle
// workers. The pending status is posted when the run joins the line, as
// before. A run leaves the line only after its asynq task exists; the task
// id is the run's, so a run handed over twice (a dispatcher died between
// the two steps) is one task.

// Defaults of the dispatcher.
const (
	// dispatchInterval is how often a dispatcher looks at the fair lines
	// when nothing in its own process woke it: runs other processes
	// queued, workers other processes freed.
	dispatchInterval = 100 * time.Millisecond
	// dispatchClaim is how long a claimed run is kept from other
	// dispatchers; a dispatcher that dies meanwhile delays the run by it.
	dispatchClaim = 15 * time.Second
)

// fairTask is a pipeline task as it waits in a fair line: signed when it
// was made, so the task asynq receives carries the signature its handler
// checks, and a run written into the line by anyone else never runs.
type fairTask struct {
	Type    string            `json:"type"`
	Payload []byte            `json:"payload"`
	Headers map[string]string `json:"headers"`
}

// taskEnqueuer is what the dispatcher hands tasks to; asynq's Client
// implements it.
type taskEnqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// fairLine is the part of the Store the dispatcher uses.
type fairLine interface {
	FairClaim(ctx context.Context, queue string, ttl time.Duration) (store.FairEntry, bool, error)
	FairAck(ctx context.Context, queue, repo, id string) error
	AsynqPending(ctx context.Context, queue string) (int64, error)
}

// dispatcherParams configures a dispatcher.
type dispatcherParams struct {
	logger *slog.Logger
	line   fairLine
	client taskEnqueuer
	// queues are the pipeline queues whose fair lines this dispatcher
	// serves: those its process's workers take.
	queues []string
	// idle returns how many of this process's pipeline workers are idle.
	idle func() int
	// options returns the asynq options of run id's task on queue.
	options func(queue, id string) []asynq.Option
	// interval and claim default to dispatchInterval and dispatchClaim.
	interval, claim time.Duration
}

// dispatcher hands the runs of fair lines to asynq, taking repositories in
// turn. It has asynq's component shape: newDispatcher, start, shutdown.
type dispatcher struct {
	p      dispatcherParams
	wake   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
}

func newDispatcher(p dispatcherParams) *dispatcher {
	if p.interval <= 0 {
		p.interval = dispatchInterval
	}
	if p.claim <= 0 {
		p.claim = dispatchClaim
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &dispatcher{p: p, wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel}
}

// poke asks the dispatcher to look at the fair lines now: a run joined
// one, or a worker of this process became idle.
func (d *dispatcher) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// start runs the dispatcher until shutdown; wg counts its goroutine.
func (d *dispatcher) start(wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(d.p.interval)
		defer t.Stop()
		var warned time.Time
		for {
			// A Redis that is down fails every pass: say so every 10 s.
			if _, err := d.dispatch(d.ctx); err != nil && d.ctx.Err() == nil && time.Since(warned) > 10*time.Second {
				d.p.logger.Warn("pipeline runs not dispatched", "err", err)
				warned = time.Now()
			}
			select {
			case <-d.ctx.Done():
				return
			case <-d.wake:
			case <-t.C:
			}
		}
	}()
}

// shutdown stops the dispatcher; a run it was handing over stays claimed
// in its line until the claim lapses.
func (d *dispatcher) shutdown() { d.cancel() }

// dispatch hands runs of each fair line to asynq while this process has
// more idle workers than the queue has pending tasks, and returns how many
// it handed over.
func (d *dispatcher) dispatch(ctx context.Context) (int, error) {
	total := 0
	var errs []error
	for _, q := range d.p.queues {
		n, err := d.dispatchQueue(ctx, q)
		total += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	return total, errors.Join(errs...)
}

func (d *dispatcher) dispatchQueue(ctx context.Context, queue string) (int, error) {
	idle := d.p.idle()
	if idle <= 0 {
		return 0, nil
	}
	pending, err := d.p.line.AsynqPending(ctx, queue)
	if err != nil {
		return 0, fmt.Errorf("queue %s: pending tasks: %w", queue, err)
	}
	n := 0
	for want := int64(idle) - pending; want > 0; want-- {
		ok, err := d.dispatchOne(ctx, queue)
		if err != nil || !ok {
			return n, err
		}
		n++
	}
	return n, nil
}

// dispatchOne hands the next run of queue's fair line to asynq: claim it,
// enqueue its task (a task that exists already is the same run, handed
// over before a crash), then take it out of the line. ok is false when no
// run waits.
func (d *dispatcher) dispatchOne(ctx context.Context, queue string) (ok bool, err error) {
	e, ok, err := d.p.line.FairClaim(ctx, queue, d.p.claim)
	if err != nil || !ok {
		return false, err
	}
	var ft fairTask
	if err := json.Unmarshal(e.Task, &ft); err != nil {
		// Nothing mlbot wrote: drop it, or it would block its repository.
		d.p.logger.Warn("unreadable run dropped from the fair line", "queue", queue, "repo", e.Repo, "run", e.RunID, "err", err)
		return true, d.p.line.FairAck(ctx, queue, e.Repo, e.RunID)
	}
	task := asynq.NewTaskWithHeaders(ft.Type, ft.Payload, ft.Headers)
	_, err = d.p.client.EnqueueContext(ctx, task, d.p.options(queue, e.RunID)...)
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		// The claim lapses and the run is offered again.
		return false, fmt.Errorf("queue %s: hand run %s to asynq: %w", queue, e.RunID, err)
	}
	if err := d.p.line.FairAck(ctx, queue, e.Repo, e.RunID); err != nil {
		return false, err
	}
	d.p.logger.Debug("pipeline run dispatched", "queue", queue, "repo", e.Repo, "run", e.RunID)
	return true, nil
}

// pipelineOptions are the asynq options of run id's pipeline task on
// queue, under task id taskID.
func (w *Worker) pipelineOptions(queue, taskID string) []asynq.Option {
	return []asynq.Option{asynq.TaskID(taskID), asynq.Queue(queue),
		// The run's own timeout comes from .mlbot.yml, known only after the
		// checkout; this bound only stops asynq's 30-minute default from
		// cutting a long training short. Twice the cap: a pull request may
		// run its merge base too, each within the cap.
		asynq.Timeout(2*w.opts.MaxPipelineTimeout + 10*time.Minute), asynq.MaxRetry(3),
		asynq.Retention(runRetention)}
}

// queueFairly puts p's signed task in its repository's list of the fair
// line of the queue new pipelines go to, and wakes the dispatcher.
func (w *Worker) queueFairly(ctx context.Context, p PipelinePayload, task *asynq.Task) error {
	b, err := json.Marshal(fairTask{Type: task.Type(), Payload: task.Payload(), Headers: task.Headers()})
	if err != nil {
		return err
	}
	if _, err := w.store.FairPush(ctx, w.opts.PipelineQueue, store.RepoKey(p.Repo), p.RunID, b); err != nil {
		return err
	}
	w.dispatcher.poke()
	return nil
}

// idlePipelineWorkers is how many of this process's pipeline workers run
// nothing.
func (w *Worker) idlePipelineWorkers() int { return w.opts.Concurrency - int(w.busy.Load()) }

// countBusy counts the pipeline server's running handlers, and wakes the
// dispatcher when one ends: a worker is free for the next run.
func (w *Worker) countBusy(h asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		w.busy.Add(1)
		defer func() {
			w.busy.Add(-1)
			w.dispatcher.poke()
		}()
		return h.ProcessTask(ctx, t)
	})
}

// unqueueFair takes a run that is being cancelled out of its fair line,
// and reports whether it was there: it then never reaches asynq. A run
// handed over to another queue (Run.Queue) has left the line long ago.
func (w *Worker) unqueueFair(ctx context.Context, run *Run) (bool, error) {
	if run.Queue != "" {
		return false, nil
	}
	return w.store.FairRemove(ctx, w.opts.PipelineQueue, store.RepoKey(run.Repo), run.ID)
}
