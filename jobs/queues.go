package jobs

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	queueTasksDesc = prometheus.NewDesc("mlbot_queue_tasks",
		"Tasks in each asynq queue by state (pending, active, scheduled, retry, archived), read from Redis at scrape time.",
		[]string{"queue", "state"}, nil)
	queueLatencyDesc = prometheus.NewDesc("mlbot_queue_latency_seconds",
		"Age of the oldest pending task of each asynq queue (0 when none is pending), read from Redis at scrape time.",
		[]string{"queue"}, nil)
	queueUpDesc = prometheus.NewDesc("mlbot_queue_stats_up",
		"1 when the last scrape read every queue's counts from Redis within its time limit, 0 otherwise.",
		nil, nil)
)

// queueScrapeTimeout bounds the Redis reads of one scrape.
const queueScrapeTimeout = 2 * time.Second

// QueueCollector exports the depth of every asynq queue in mlbot's Redis
// (events, report, deploy and the pipeline queues) by state, and the age
// of each queue's oldest pending task. It reads them at scrape time, so
// every mlbot process reports the same numbers: aggregate them with max,
// not sum. A slow or unreachable Redis never fails the scrape: after
// queueScrapeTimeout it reports mlbot_queue_stats_up 0 and whatever it read.
func (w *Worker) QueueCollector() prometheus.Collector {
	return newQueueCollector(w.inspector, queueScrapeTimeout)
}

// queueInspector is what the queue collector reads through; asynq's
// Inspector implements it.
type queueInspector interface {
	Queues() ([]string, error)
	GetQueueInfo(queue string) (*asynq.QueueInfo, error)
}

// queueCollector is the QueueCollector.
type queueCollector struct {
	inspector queueInspector
	timeout   time.Duration
	// reading is set while a read runs; a scrape arriving meanwhile (the
	// earlier one timed out on a hung Redis) starts no second read.
	reading atomic.Bool
}

func newQueueCollector(in queueInspector, timeout time.Duration) *queueCollector {
	return &queueCollector{inspector: in, timeout: timeout}
}

// Describe implements prometheus.Collector.
func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueTasksDesc
	ch <- queueLatencyDesc
	ch <- queueUpDesc
}

// queueRead is the outcome of one read of every queue.
type queueRead struct {
	infos []*asynq.QueueInfo
	err   error
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
		infos, err := c.read()
		// Cleared before the result is handed over, so that a scrape right
		// after this one never finds the read still marked in flight.
		c.reading.Store(false)
		done <- queueRead{infos, err}
	}()
	timer := time.NewTimer(c.timeout)
	defer timer.Stop()
	var r queueRead
	select {
	case r = <-done:
	case <-timer.C:
		r.err = fmt.Errorf("queue counts not read within %s", c.timeout)
	}
	for _, q := range r.infos {
		for _, s := range []struct {
			state string
			n     int
		}{{"pending", q.Pending}, {"active", q.Active}, {"scheduled", q.Scheduled}, {"retry", q.Retry}, {"archived", q.Archived}} {
			ch <- prometheus.MustNewConstMetric(queueTasksDesc, prometheus.GaugeValue, float64(s.n), q.Queue, s.state)
		}
		ch <- prometheus.MustNewConstMetric(queueLatencyDesc, prometheus.GaugeValue, q.Latency.Seconds(), q.Queue)
	}
	up := 1.0
	if r.err != nil {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(queueUpDesc, prometheus.GaugeValue, up)
}

// read returns the counts of every queue asynq knows in Redis; on an
// error, with the queues read before it.
func (c *queueCollector) read() ([]*asynq.QueueInfo, error) {
	names, err := c.inspector.Queues()
	if err != nil {
		return nil, fmt.Errorf("list queues: %w", err)
	}
	var out []*asynq.QueueInfo
	for _, q := range names {
		info, err := c.inspector.GetQueueInfo(q)
		if err != nil {
			return out, fmt.Errorf("queue %s: %w", q, err)
		}
		out = append(out, info)
	}
	return out, nil
}
