package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mlbot/mlbot/runners/agentapi"
)

// logAppender is the part of agentapi.Client the log pusher uses.
type logAppender interface {
	AppendLog(ctx context.Context, offset int64, chunk []byte) (int64, error)
}

// pushOptions tunes a logPusher; zero fields take the defaults below.
type pushOptions struct {
	// FlushEvery is the longest a byte waits before it is sent.
	FlushEvery time.Duration
	// FlushBytes sends at once when this much is waiting.
	FlushBytes int
	// BufBytes bounds what waits; a Write blocks while it is full.
	BufBytes int
	// RetryFor is how long a chunk is retried while mlbot is unreachable.
	RetryFor time.Duration
}

// Defaults of a logPusher.
const (
	defaultFlushEvery = 100 * time.Millisecond
	defaultFlushBytes = 64 << 10
	defaultBufBytes   = 256 << 10
	defaultRetryFor   = 5 * time.Minute
)

func (o pushOptions) withDefaults() pushOptions {
	if o.FlushEvery <= 0 {
		o.FlushEvery = defaultFlushEvery
	}
	if o.FlushBytes <= 0 {
		o.FlushBytes = defaultFlushBytes
	}
	if o.BufBytes <= 0 {
		o.BufBytes = defaultBufBytes
	}
	o.BufBytes = min(o.BufBytes, agentapi.MaxLogChunkBytes)
	o.FlushBytes = min(o.FlushBytes, o.BufBytes)
	if o.RetryFor <= 0 {
		o.RetryFor = defaultRetryFor
	}
	return o
}

// logPusher is an io.Writer that sends what is written to mlbot's log of
// the run, in order, by byte offset. Its memory is fixed: what waits to be
// sent is at most BufBytes, and a Write blocks while that is full, so a
// step whose output cannot be sent (mlbot restarting) blocks on its pipe
// instead of the agent's memory growing. A chunk is sent when FlushBytes
// wait or the oldest waiting byte is FlushEvery old. When mlbot answers
// that it holds another length (a lost answer, a resend) the pusher goes
// on from that length; when mlbot is unreachable it retries with backoff
// for RetryFor, then gives up: later writes are dropped and Close reports
// the failure.
type logPusher struct {
	c    logAppender
	opts pushOptions
	ctx  context.Context

	mu       sync.Mutex
	cond     *sync.Cond // broadcast whenever buf shrinks, or err or closed change
	buf      []byte     // waiting bytes; cap is BufBytes
	oldest   time.Time  // when buf's first byte was written
	off      int64      // mlbot's length of the log
	flushing int        // Flush calls waiting
	closed   bool
	err      error // why sending stopped for good
	dropped  int64 // bytes written after err

	kick chan struct{} // wakes the sender
	done chan struct{} // closed when the sender returned
}

// newLogPusher starts a pusher appending from offset off. ctx bounds its
// sending; cancelling it makes pending bytes fail at once.
func newLogPusher(ctx context.Context, c logAppender, off int64, opts pushOptions) *logPusher {
	opts = opts.withDefaults()
	p := &logPusher{c: c, opts: opts, ctx: ctx, off: off, buf: make([]byte, 0, opts.BufBytes),
		kick: make(chan struct{}, 1), done: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	go p.run()
	return p
}

// Write queues b, blocking while the buffer is full. It never fails: a
// step's output pipe must not break because mlbot went away.
func (p *logPusher) Write(b []byte) (int, error) {
	n := len(b)
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(b) > 0 {
		if p.err != nil || p.closed {
			p.dropped += int64(len(b))
			break
		}
		room := cap(p.buf) - len(p.buf)
		if room == 0 {
			p.cond.Wait()
			continue
		}
		k := min(room, len(b))
		if len(p.buf) == 0 {
			p.oldest = time.Now()
		}
		p.buf = append(p.buf, b[:k]...)
		b = b[k:]
		p.wake()
	}
	return n, nil
}

// wake tells the sender something changed, without blocking.
func (p *logPusher) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Flush waits until everything written so far is sent, or sending failed.
func (p *logPusher) Flush() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.flushing++
	defer func() { p.flushing-- }()
	p.wake()
	for len(p.buf) > 0 && p.err == nil {
		p.cond.Wait()
	}
	return p.err
}

// Close sends what is left and stops the sender. It returns why sending
// failed, if it did, with how many bytes were dropped.
func (p *logPusher) Close() error {
	p.mu.Lock()
	p.closed = true
	p.wake()
	p.cond.Broadcast()
	p.mu.Unlock()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return fmt.Errorf("log: %d bytes not sent: %w", int64(len(p.buf))+p.dropped, p.err)
	}
	return nil
}

// Offset is mlbot's length of the log as last confirmed.
func (p *logPusher) Offset() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.off
}

// run is the sender: it waits until a chunk is due and sends it.
func (p *logPusher) run() {
	defer close(p.done)
	chunk := make([]byte, 0, p.opts.BufBytes)
	for {
		p.mu.Lock()
		n, age, closing, urgent := len(p.buf), time.Since(p.oldest), p.closed, p.flushing > 0
		if p.err != nil || (n == 0 && closing) {
			p.mu.Unlock()
			return
		}
		if n == 0 || (n < p.opts.FlushBytes && age < p.opts.FlushEvery && !closing && !urgent) {
			p.mu.Unlock()
			wait := p.opts.FlushEvery - age
			if n == 0 {
				wait = time.Hour
			}
			t := time.NewTimer(wait)
			select {
			case <-p.kick:
			case <-t.C:
			}
			t.Stop()
			continue
		}
		chunk = append(chunk[:0], p.buf...)
		off := p.off
		p.mu.Unlock()

		sent, newOff, err := p.send(off, chunk)
		p.mu.Lock()
		p.off = newOff
		if sent > 0 {
			p.buf = p.buf[:copy(p.buf, p.buf[sent:])]
			p.oldest = time.Now()
		}
		if err != nil {
			p.err = err
		}
		p.cond.Broadcast()
		p.mu.Unlock()
	}
}

// maxOffsetFixes bounds how often one chunk follows mlbot's word on the
// log's length before the pusher gives up: more means two writers.
const maxOffsetFixes = 10

// send sends chunk as the log from off on, retrying network failures, and
// returns how many of its bytes mlbot now holds and the log's length.
func (p *logPusher) send(off int64, chunk []byte) (sent int, newOff int64, err error) {
	start := time.Now()
	backoff := newBackoff()
	fixes := 0
	for {
		have, err := p.c.AppendLog(p.ctx, off, chunk)
		if err == nil {
			return len(chunk), have, nil
		}
		var oe *agentapi.OffsetError
		if errors.As(err, &oe) {
			if oe.Have >= off && oe.Have <= off+int64(len(chunk)) {
				// mlbot has the start of the chunk already (an answer was
				// lost): those bytes are sent.
				return int(oe.Have - off), oe.Have, nil
			}
			// mlbot holds a length the agent never reached or has lost
			// bytes it had: the log goes on from there.
			if fixes++; fixes > maxOffsetFixes {
				return 0, off, fmt.Errorf("mlbot's log length keeps changing: %w", err)
			}
			off = oe.Have
			continue
		}
		if !retryable(p.ctx, err) || time.Since(start) > p.opts.RetryFor {
			return 0, off, err
		}
		if err := backoff.wait(p.ctx); err != nil {
			return 0, off, err
		}
	}
}
