package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/jobs/store"
)

// RunPage serves GET /runs/{id}: the run's state, outcome, metrics and the
// end of its log, as HTML or, with ?format=json or Accept:
// application/json, as JSON. Logs come from the log file when this
// process can read it (one machine, or a shared MLBOT_DATA_DIR), otherwise
// from the tail kept in Redis.
func (s *Server) RunPage() http.Handler {
	return http.HandlerFunc(s.serveRun)
}

func (s *Server) serveRun(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !idPattern.MatchString(id) {
		http.Error(w, "no such run", http.StatusNotFound)
		return
	}
	run, err := s.opts.Runs.GetRun(r.Context(), id)
	if errors.Is(err, store.ErrNoRun) {
		http.Error(w, "no such run", http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, "run store unavailable", http.StatusServiceUnavailable)
		return
	}
	if r.URL.Query().Get("format") == "json" || strings.HasPrefix(r.Header.Get("Accept"), "application/json") {
		w.Header().Set("Content-Type", "application/json")
		view := *run
		view.LogPath = "" // a server path is nobody's business
		json.NewEncoder(w).Encode(view)
		return
	}
	logText, offset := s.pageLog(r.Context(), run)
	names := make([]string, 0, len(run.Metrics))
	for k := range run.Metrics {
		names = append(names, k)
	}
	sort.Strings(names)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; connect-src 'self'")
	live := run.State != store.RunFinished && s.opts.Logs != nil
	if run.State != store.RunFinished && !live {
		w.Header().Set("Refresh", "5")
	}
	// The page shows what the host and the training sent (branch,
	// title, metric names, log): none of its format characters.
	var page bytes.Buffer
	if err := runPageTemplate.Execute(&page, struct {
		Run     *store.Run
		Names   []string
		Log     string
		Outcome report.Outcome
		Live    bool
		Offset  int64
	}{run, names, logText, run.Outcome, live, offset}); err != nil {
		http.Error(w, "run page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	io.WriteString(w, report.StripFormat(page.String()))
}

// pageLog returns the end of run's log for its page, and the offset in the
// live log where that end stops (for the stream to go on from). The live
// log in the store comes first: any replica reads it. Without it, the log
// file (when this process can read it) or the tail kept with the run.
func (s *Server) pageLog(ctx context.Context, run *store.Run) (string, int64) {
	if s.opts.Logs != nil {
		if _, total, err := s.opts.Logs.ReadRunLog(ctx, run.ID, 0, 0); err == nil && total > 0 {
			start := max(total-maxPageLog, 0)
			if b, total, err := s.opts.Logs.ReadRunLog(ctx, run.ID, start, total-start); err == nil {
				return string(b), total
			}
		}
		if run.State != store.RunFinished {
			return "", 0
		}
	}
	return logEnd(run.LogPath, run.LogTail), 0
}
