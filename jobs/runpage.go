package jobs

import (
	"bytes"
	"encoding/json"
	"errors"
	"html/template"
	"io"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/mlbot/mlbot/jobs/report"
)

// maxPageLog bounds how much of a log file the run page shows (its end).
const maxPageLog = 256 << 10

// runIDPattern is the shape of a run id (NewID); anything else, such as
// an id derived by an older mlbot, is no run.
var runIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// RunPage serves GET /runs/{id}: the run's state, outcome, metrics and the
// end of its log, as HTML or, with ?format=json or Accept:
// application/json, as JSON. Logs come from the log file when this
// process can read it (one machine, or a shared MLBOT_DATA_DIR), otherwise
// from the tail kept in Redis.
func (s *Store) RunPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if !runIDPattern.MatchString(id) {
			http.Error(w, "no such run", http.StatusNotFound)
			return
		}
		run, err := s.GetRun(r.Context(), id)
		if errors.Is(err, ErrNoRun) {
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
		logText := logEnd(run.LogPath, run.LogTail)
		names := make([]string, 0, len(run.Metrics))
		for k := range run.Metrics {
			names = append(names, k)
		}
		sort.Strings(names)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		if run.State != RunFinished {
			w.Header().Set("Refresh", "5")
		}
		// The page shows what the host and the training sent (branch,
		// title, metric names, log): none of its format characters.
		var page bytes.Buffer
		if err := runPageTemplate.Execute(&page, struct {
			Run     *Run
			Names   []string
			Log     string
			Outcome report.Outcome
		}{run, names, logText, run.Outcome}); err != nil {
			http.Error(w, "run page: "+err.Error(), http.StatusInternalServerError)
			return
		}
		io.WriteString(w, report.StripFormat(page.String()))
	})
}

// logEnd returns the last maxPageLog bytes of the log file at path, or
// fallback when this process cannot read it (another machine wrote it).
func logEnd(path, fallback string) string {
	if path == "" {
		return fallback
	}
	f, err := os.Open(path)
	if err != nil {
		return fallback
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > maxPageLog {
		f.Seek(st.Size()-maxPageLog, io.SeekStart)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxPageLog))
	if err != nil {
		return fallback
	}
	return string(b)
}

var runPageTemplate = template.Must(template.New("run").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mlbot run {{.Run.ID}}</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:70em}pre{background:#111;color:#ddd;padding:1em;overflow:auto;max-height:40em}td,th{padding:.2em .8em;text-align:left}</style></head>
<body><h1>mlbot run <code>{{.Run.ID}}</code></h1>
<table>
<tr><th>Repository</th><td>{{.Run.Repo.FullName}} ({{.Run.Repo.Forge}})</td></tr>
<tr><th>Commit</th><td><code>{{.Run.SHA}}</code></td></tr>
{{if .Run.PR}}<tr><th>Pull request</th><td>#{{.Run.PR.Number}} {{.Run.PR.Title}}</td></tr>{{end}}
{{if .Run.Branch}}<tr><th>Branch</th><td>{{.Run.Branch}}</td></tr>{{end}}
<tr><th>State</th><td id="state">{{.Run.State}}</td></tr>
{{if .Outcome}}<tr><th>Outcome</th><td id="outcome">{{.Outcome}}</td></tr>{{end}}
{{if .Run.Detail}}<tr><th>Detail</th><td><pre>{{.Run.Detail}}</pre></td></tr>{{end}}
{{if .Run.BaseSHA}}<tr><th>Base</th><td><code>{{.Run.BaseSHA}}</code></td></tr>{{end}}
{{if .Run.BaseNote}}<tr><th>Base note</th><td>{{.Run.BaseNote}}</td></tr>{{end}}
<tr><th>Train</th><td>{{.Run.Train}}</td></tr><tr><th>Evaluate</th><td>{{.Run.Evaluate}}</td></tr>
</table>
{{if .Names}}<h2>Metrics</h2><table>{{range .Names}}<tr><td>{{.}}</td><td>{{index $.Run.Metrics .}}</td></tr>{{end}}</table>{{end}}
<h2>Log</h2><pre id="log">{{.Log}}</pre>
</body></html>
`))
