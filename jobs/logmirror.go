package jobs

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// runLogAppender keeps a run's live log; the store satisfies it.
type runLogAppender interface {
	// AppendRunLog appends p to the log of run id.
	AppendRunLog(ctx context.Context, id string, p []byte) (int64, error)
}

// logMirrorEvery is how often a run's new log bytes reach the store: the
// run page's live log lags the training by about this much.
const logMirrorEvery = 100 * time.Millisecond

// logMirror copies a run's log into the store in batches, so that any
// replica's run page can stream it while the training runs. Write only
// buffers (the step's output never waits on Redis); a goroutine flushes
// every logMirrorEvery, and Close flushes the rest. The buffer is bounded
// by the log sink's cap, which feeds it.
type logMirror struct {
	to  runLogAppender
	id  string
	log *slog.Logger

	mu     sync.Mutex
	buf    []byte
	failed bool
	stop   chan struct{}
	done   chan struct{}
}

// newLogMirror starts mirroring into run id's log in to.
func newLogMirror(to runLogAppender, id string, log *slog.Logger) *logMirror {
	m := &logMirror{to: to, id: id, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	go m.loop()
	return m
}

// Write buffers p.
func (m *logMirror) Write(p []byte) (int, error) {
	m.mu.Lock()
	m.buf = append(m.buf, p...)
	m.mu.Unlock()
	return len(p), nil
}

func (m *logMirror) loop() {
	defer close(m.done)
	t := time.NewTicker(logMirrorEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			m.flush()
		case <-m.stop:
			m.flush()
			return
		}
	}
}

// flush sends what is buffered. A failed append is logged once and the
// bytes dropped: the log file and the tail in the run record still hold
// them, and the training must not stall on Redis.
func (m *logMirror) flush() {
	m.mu.Lock()
	p := m.buf
	m.buf = nil
	m.mu.Unlock()
	if len(p) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := m.to.AppendRunLog(ctx, m.id, p); err != nil && !m.failed {
		m.failed = true
		m.log.Warn("live log not stored; the run page shows the log when the run ends", "run", m.id, "err", err)
	}
}

// Close flushes what is left and stops the mirror.
func (m *logMirror) Close() error {
	close(m.stop)
	<-m.done
	return nil
}
