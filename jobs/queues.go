package jobs

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	queueTasksDesc = prometheus.NewDesc("mlbot_queue_tasks",
		"Tasks in each queue by state, read from Redis at scrape time: asynq's pending, active, scheduled, retry and archived, "+
			"and for a pipeline queue the runs waiting in its fair line before asynq (waiting).",
		[]string{"queue", "state"}, nil)
	queueLatencyDesc = prometheus.NewDesc("mlbot_queue_latency_seconds",
		"Age of the oldest task waiting in each queue, pending in asynq or waiting in a pipeline queue's fair line "+
			"(0 when none waits), read from Redis at scrape time.",
		[]string{"queue"}, nil)
	queueUpDesc = prometheus.NewDesc("mlbot_queue_stats_up",
		"1 when the last scrape read every queue's counts from Redis within its time limit, 0 otherwise.",
		nil, nil)
)

// queueScrapeTimeout bounds the Redis reads of one scrape.
const queueScrapeTimeout = 2 * time.Second

// QueueCollector exports the depth of every asynq queue in mlbot's Redis
// (events, report, deploy and the pipeline queues) by state, and the age
// of each queue's oldest waiting task. A pipeline run waits first in its
// queue's fair line, where asynq does not see it (see dispatch.go): the
// line's runs count as the state "waiting", and the oldest of them in the
// queue's age. It reads them at scrape time, so
// every mlbot process reports the same numbers: aggregate them with max,
// not sum. A slow or unreachable Redis never fails the scrape: after
// queueScrapeTimeout it reports mlbot_queue_stats_up 0 and whatever it read.
func (w *Worker) QueueCollector() prometheus.Collector {
	return newQueueCollector(w.inspector, w.store, w.opts.PipelineQueues, queueScrapeTimeout)
}

// queueInspector is what the queue collector reads asynq's queues
// through; asynq's Inspector implements it.
type queueInspector interface {
	Queues() ([]string, error)
	GetQueueInfo(queue string) (*asynq.QueueInfo, error)
}

// fairLineReader is what the queue collector reads the fair lines
// through; the Store implements it.
type fairLineReader interface {
	FairWaiting(ctx context.Context, queue string) (int64, error)
	FairOldest(ctx context.Context, queue string) (since time.Time, ok bool, err error)
}

// queueCollector is the QueueCollector.
type queueCollector struct {
	inspector queueInspector
	// line holds the fair lines of pipelines, the queues this process
	// serves and any other asynq knows.
	line      fairLineReader
	pipelines []string
	timeout   time.Duration
	// reading is set while a read runs; a scrape arriving meanwhile (the
	// earlier one timed out on a hung Redis) starts no second read.
	reading atomic.Bool
}

func newQueueCollector(in queueInspector, line fairLineReader, pipelines []string, timeout time.Duration) *queueCollector {
	return &queueCollector{inspector: in, line: line, pipelines: pipelines, timeout: timeout}
}

// Describe implements prometheus.Collector.
func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueTasksDesc
	ch <- queueLatencyDesc
	ch <- queueUpDesc
}

// queueCounts is one queue's counts: asynq's, and its fair line's.
type queueCounts struct {
	*asynq.QueueInfo
	// Waiting is how many runs wait in the fair line; Age is how long the
	// oldest of them has.
	Waiting int64
	Age     time.Duration
}

// latency is the age of the queue's oldest waiting task, in asynq or in
// the fair line.
func (q queueCounts) latency() time.Duration { return max(q.Latency, q.Age) }

// queueRead is the outcome of one read of every queue.
type queueRead struct {
	queues []queueCounts
	err    error
}

// Collect implements prometheus.Collector. asynq's Inspector takes no
// context, so the read runs aside and is abandoned (not stopped) when it
// takes longer than the timeout; Redis's own timeouts end it later.
func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	if !c.reading.CompareAndSwap(false, true) {
		ch <- prometheus.MustNewConstMetric(queueUpDesc, prometheus.GaugeValue, 0)
		return
	}
	done := make(chan queueRead, 1)
	go func() {
		queues, err := c.read()
		// Cleared before the result is handed over, so that a scrape right
		// after this one never finds the read still marked in flight.
		c.reading.Store(false)
		done <- queueRead{queues, err}
	}()
	timer := time.NewTimer(c.timeout)
	defer timer.Stop()
	var r queueRead
	select {
	case r = <-done:
	case <-timer.C:
		r.err = fmt.Errorf("queue counts not read within %s", c.timeout)
	}
	for _, q := range r.queues {
		for _, s := range []struct {
			state string
			n     int
		}{{"pending", q.Pending}, {"active", q.Active}, {"scheduled", q.Scheduled}, {"retry", q.Retry}, {"archived", q.Archived}} {
			ch <- prometheus.MustNewConstMetric(queueTasksDesc, prometheus.GaugeValue, float64(s.n), q.Queue, s.state)
		}
		ch <- prometheus.MustNewConstMetric(queueTasksDesc, prometheus.GaugeValue, float64(q.Waiting), q.Queue, "waiting")
		ch <- prometheus.MustNewConstMetric(queueLatencyDesc, prometheus.GaugeValue, q.latency().Seconds(), q.Queue)
	}
	up := 1.0
	if r.err != nil {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(queueUpDesc, prometheus.GaugeValue, up)
}

// read returns the counts of every queue asynq knows in Redis and of the
// pipeline queues this process serves; on an error, with the queues read
// before it.
func (c *queueCollector) read() ([]queueCounts, error) {
	names, err := c.inspector.Queues()
	if err != nil {
		return nil, fmt.Errorf("list queues: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	var out []queueCounts
	for _, q := range names {
		info, err := c.inspector.GetQueueInfo(q)
		if err != nil {
			return out, fmt.Errorf("queue %s: %w", q, err)
		}
		counts := queueCounts{QueueInfo: info}
		if err := c.readLine(ctx, &counts); err != nil {
			return out, err
		}
		out = append(out, counts)
	}
	// A pipeline queue whose runs all still wait in the fair line is not
	// one of asynq's yet.
	for _, q := range c.pipelines {
		if slices.Contains(names, q) {
			continue
		}
		counts := queueCounts{QueueInfo: &asynq.QueueInfo{Queue: q}}
		if err := c.readLine(ctx, &counts); err != nil {
			return out, err
		}
		out = append(out, counts)
	}
	return out, nil
}

// readLine adds the counts of the queue's fair line to counts. Only
// pipeline queues have one.
func (c *queueCollector) readLine(ctx context.Context, counts *queueCounts) error {
	switch counts.Queue {
	case QueueEvents, QueueReport, QueueDeploy:
		return nil
	}
	n, err := c.line.FairWaiting(ctx, counts.Queue)
	if err != nil {
		return fmt.Errorf("fair line %s: %w", counts.Queue, err)
	}
	since, ok, err := c.line.FairOldest(ctx, counts.Queue)
	if err != nil {
		return fmt.Errorf("fair line %s: %w", counts.Queue, err)
	}
	counts.Waiting = n
	if ok {
		counts.Age = max(time.Since(since), 0)
	}
	return nil
}
