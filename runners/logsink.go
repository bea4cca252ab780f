package runners

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
)

// Defaults for a LogSink's limits.
const (
	// DefaultMaxFileBytes bounds a log file: a training loop printing a line
	// per step must not fill the worker's disk.
	DefaultMaxFileBytes = 16 << 20
	// DefaultTailBytes is how much of the end of a log is kept in memory for
	// the run page and the PR comment.
	DefaultTailBytes = 64 << 10
)

// LogSink receives the output of a pipeline step. It masks secret values,
// appends to a size-capped file and keeps the end of the log in memory. It
// is safe for concurrent use, so stdout and stderr of a step (or several
// steps) may share one. Its memory stays fixed however much is written.
type LogSink struct {
	// MaxFileBytes caps the log file; later output is counted but dropped
	// from the file (the in-memory tail still sees it). Change it only
	// before the first Write.
	MaxFileBytes int64
	// TailBytes is the size of the in-memory tail. Change it only before
	// the first Write.
	TailBytes int
	// Mirror, when set, receives exactly what the file receives (masked,
	// capped, with the truncation notice), for the live log of the run
	// page. Its Write must not block for long: the step's output waits on
	// it. Set it only before the first Write.
	Mirror io.Writer

	mu        sync.Mutex
	file      *os.File
	bw        *bufio.Writer
	tail      *ring
	mask      *masker
	written   int64
	dropped   int64
	truncated bool
	// lastFileByte tells whether the truncation notice needs a newline
	// first to stay on a line of its own.
	lastFileByte byte
	closed       bool
	err          error // first file error, reported by Close
}

// NewLogSink opens (creating or appending to) the log file at path and
// returns a sink masking every secret at least 4 bytes long. An empty path
// keeps only the in-memory tail.
func NewLogSink(path string, secrets []string) (*LogSink, error) {
	s := &LogSink{MaxFileBytes: DefaultMaxFileBytes, TailBytes: DefaultTailBytes}
	if path != "" {
		// 0600: a log may hold what a step printed about its environment.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("open log %s: %w", path, err)
		}
		s.file = f
		s.bw = bufio.NewWriterSize(f, 32<<10)
	}
	s.mask = newMasker(secrets, s.store)
	return s, nil
}

// Write masks p and stores it. It always reports success: a full disk must
// not make the step's output pipe fail and kill the training run with
// SIGPIPE. A file error is kept and returned by Close.
func (s *LogSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, os.ErrClosed
	}
	if s.tail == nil {
		s.tail = newRing(max(s.TailBytes, 0))
	}
	if s.mask != nil {
		s.mask.write(p)
	} else {
		s.store(p)
	}
	s.flushFile()
	return len(p), nil
}

// store takes masked bytes: all of them to the tail, as many as the cap
// allows to the file. Called with mu held.
func (s *LogSink) store(p []byte) {
	if len(p) == 0 {
		return
	}
	s.tail.write(p)
	room := s.MaxFileBytes - s.written
	if s.truncated || room <= 0 {
		s.truncate()
		s.dropped += int64(len(p))
		return
	}
	keep := p
	if int64(len(keep)) > room {
		keep = keep[:room]
	}
	s.written += int64(len(keep))
	s.writeFile(keep)
	if len(keep) < len(p) {
		s.truncate()
		s.dropped += int64(len(p) - len(keep))
	}
}

// truncate writes the truncation notice once.
func (s *LogSink) truncate() {
	if s.truncated {
		return
	}
	s.truncated = true
	var nl string
	if s.written > 0 && s.lastFileByte != '\n' {
		nl = "\n"
	}
	s.writeFile(fmt.Appendf(nil, "%s[mlbot: log truncated after %d bytes]\n", nl, s.written))
}

func (s *LogSink) writeFile(p []byte) {
	if s.Mirror != nil && len(p) > 0 {
		s.Mirror.Write(p)
	}
	if s.bw == nil || s.err != nil || len(p) == 0 {
		return
	}
	if _, err := s.bw.Write(p); err != nil {
		s.err = fmt.Errorf("write log: %w", err)
	}
	s.lastFileByte = p[len(p)-1]
}

// flushFile pushes buffered bytes to the file at the end of each Write, so
// the file is current for anyone reading it while the step runs.
func (s *LogSink) flushFile() {
	if s.bw == nil || s.err != nil {
		return
	}
	if err := s.bw.Flush(); err != nil {
		s.err = fmt.Errorf("write log: %w", err)
	}
}

// Tail returns the last maxLines lines of the log (all it keeps when
// maxLines <= 0), masked. Bytes held back because they might begin a
// secret appear only after the next Write or Close.
func (s *LogSink) Tail(maxLines int) string {
	s.mu.Lock()
	if s.tail == nil {
		s.mu.Unlock()
		return ""
	}
	b, cut := s.tail.bytes()
	s.mu.Unlock()
	if cut {
		// The oldest kept line lost its beginning; a partial line misleads.
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	if maxLines > 0 {
		end := len(b)
		if end > 0 && b[end-1] == '\n' {
			end--
		}
		for n := 0; end > 0; {
			i := bytes.LastIndexByte(b[:end], '\n')
			if n++; n == maxLines || i < 0 {
				if i >= 0 {
					b = b[i+1:]
				}
				break
			}
			end = i
		}
	}
	return string(b)
}

// Written returns how many bytes of (masked) log were stored in the file.
func (s *LogSink) Written() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.written
}

// Dropped returns how many bytes of (masked) log were discarded because the
// file reached MaxFileBytes.
func (s *LogSink) Dropped() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// Close stores the bytes held back for masking and closes the file. It
// returns the first error met while writing the file.
func (s *LogSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return s.err
	}
	s.closed = true
	if s.mask != nil && s.tail != nil {
		s.mask.flush()
	}
	s.flushFile()
	if s.file != nil {
		if err := s.file.Close(); err != nil && s.err == nil {
			s.err = fmt.Errorf("close log: %w", err)
		}
	}
	return s.err
}
