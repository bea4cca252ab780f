package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mlbot/mlbot/jobs/store"
)

// LogReader reads the live logs of runs; the store satisfies it.
type LogReader interface {
	// ReadRunLog returns at most max bytes of run id's log from byte from
	// on, and the log's whole length.
	ReadRunLog(ctx context.Context, id string, from, max int64) ([]byte, int64, error)
}

// Tuning of the live log stream.
const (
	// livePoll is how often a stream looks for new log bytes: the page
	// lags the training by about this plus the mirror's batching.
	livePoll = 100 * time.Millisecond
	// liveStateEvery is how often a stream checks whether its run ended.
	liveStateEvery = time.Second
	// livePing is how often an idle stream sends a comment, so proxies
	// keep it open.
	livePing = 15 * time.Second
	// liveChunk bounds one event's log bytes.
	liveChunk = 64 << 10
)

// LogStream serves GET /runs/{id}/log/stream: the run's log as
// Server-Sent Events, from any replica, while the run goes on. Each
// "log" event carries new bytes of the log (its data lines are the log's
// lines) and has the log's offset after them as its id, so a reconnecting
// EventSource resumes where it stopped (Last-Event-ID); ?from=N starts at
// byte N. An "end" event, whose data is the run's outcome, follows the
// last byte of a finished run.
func (s *Server) LogStream() http.Handler {
	return http.HandlerFunc(s.serveLogStream)
}

func (s *Server) serveLogStream(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !idPattern.MatchString(id) || s.opts.Logs == nil {
		http.Error(w, "no such run", http.StatusNotFound)
		return
	}
	ctx := r.Context()
	run, err := s.opts.Runs.GetRun(ctx, id)
	if errors.Is(err, store.ErrNoRun) {
		http.Error(w, "no such run", http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, "run store unavailable", http.StatusServiceUnavailable)
		return
	}
	// A stream is for those who may see the run's page; EventSource
	// cannot follow a login, so it is told 401 instead.
	if !s.allow(w, r, s.newPage(r), run.Repo, false) {
		return
	}
	from := int64(0)
	for _, v := range []string{r.Header.Get("Last-Event-ID"), r.URL.Query().Get("from")} {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			from = n
			break
		}
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	rc := http.NewResponseController(w)
	send := func(format string, args ...any) bool {
		// The server's write timeout is for ordinary pages: a stream
		// stays open as long as its run, a write at a time.
		rc.SetWriteDeadline(time.Now().Add(time.Minute))
		if _, err := fmt.Fprintf(w, format, args...); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send("retry: 2000\n\n") {
		return
	}
	finished := run.State == store.RunFinished
	poll := time.NewTicker(livePoll)
	defer poll.Stop()
	lastState, lastSend := time.Now(), time.Now()
	for {
		chunk, total, err := s.opts.Logs.ReadRunLog(ctx, id, from, liveChunk)
		if err != nil {
			return // the client reconnects, with Last-Event-ID
		}
		if len(chunk) > 0 {
			from += int64(len(chunk))
			if !send("id: %d\nevent: log\n%s\n", from, sseData(chunk)) {
				return
			}
			lastSend = time.Now()
			if from < total {
				continue // more is waiting: no pause
			}
		}
		if finished && from >= total {
			send("event: end\ndata: %s\n\n", sseLine(string(run.Outcome)))
			return
		}
		if time.Since(lastState) >= liveStateEvery {
			lastState = time.Now()
			if run, err = s.opts.Runs.GetRun(ctx, id); err != nil {
				return
			}
			// Read once more after seeing the end: the last bytes were
			// stored before the run was marked finished.
			finished = run.State == store.RunFinished
		}
		if time.Since(lastSend) >= livePing {
			if !send(": ping\n\n") {
				return
			}
			lastSend = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		}
	}
}

// sseData renders log bytes as the data lines of one event: the client
// joins them with "\n", which gives the bytes back (a carriage return,
// which would end an SSE line, is dropped).
func sseData(p []byte) string {
	var b bytes.Buffer
	for _, line := range bytes.Split(p, []byte("\n")) {
		b.WriteString("data: ")
		b.Write(bytes.ReplaceAll(line, []byte("\r"), nil))
		b.WriteByte('\n')
	}
	return b.String()
}

// sseLine keeps s on one SSE line.
func sseLine(s string) string {
	return strings.NewReplacer("\n", " ", "\r", " ").Replace(s)
}
