package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"

	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/jobs/store"
)

// RunPage serves GET /runs/{id}: the run's state, the same diff table,
// gates and verdict as its pull request comment, links to the pull request
// and commits on the host, and its log (live while it runs), as HTML or,
// with ?format=json or Accept: application/json, as JSON. Logs come from
// the live log in the store, else from the log file when this process can
// read it (one machine, or a shared MLBOT_DATA_DIR), else from the tail
// kept with the run.
func (s *Server) RunPage() http.Handler {
	return s.page(s.serveRun)
}

// wantsJSON reports whether r asks for JSON rather than a page.
func wantsJSON(r *http.Request) bool {
	return r.URL.Query().Get("format") == "json" || strings.HasPrefix(r.Header.Get("Accept"), "application/json")
}

// runPage is what the run page shows.
type runPage struct {
	Run  *store.Run
	Base *store.Run
	// View is the comment's table, gates and verdict; nil until the run
	// has an outcome.
	View *report.View
	// Names are the metrics of a run without a view, sorted.
	Names  []string
	Log    string
	Live   bool
	Offset int64
	// CommitURL, BaseCommitURL, PRURL and HostURL link to the host.
	CommitURL, BaseCommitURL, PRURL, HostURL string
	// ModelRepo is the registry's key of the run's repository.
	ModelRepo string
}

func (s *Server) serveRun(w http.ResponseWriter, r *http.Request, p *pageData) {
	id := r.PathValue("id")
	if !idPattern.MatchString(id) {
		s.notFound(w, r, "no such run")
		return
	}
	ctx := r.Context()
	run, err := s.opts.Runs.GetRun(ctx, id)
	if errors.Is(err, store.ErrNoRun) {
		if p.LoginOn && len(p.Users) == 0 && !wantsJSON(r) {
			// Whoever is not logged in learns nothing before they are.
			http.Redirect(w, r, p.LoginHref, http.StatusFound)
			return
		}
		s.notFound(w, r, "no such run: runs are kept for 90 days")
		return
	}
	if err != nil {
		s.log.Error("run unreadable", "id", id, "err", err)
		s.unavailable(w, r, "the run store")
		return
	}
	asJSON := wantsJSON(r)
	if !s.allow(w, r, p, run.Repo, !asJSON) {
		return
	}
	if asJSON {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		view := *run
		view.LogPath = "" // a server path is nobody's business
		json.NewEncoder(w).Encode(view)
		return
	}
	pg := runPage{Run: run, ModelRepo: store.RepoKey(run.Repo),
		CommitURL: commitURL(run.Repo, run.SHA), PRURL: pullRequestURL(run.Repo, run.PR), HostURL: hostURL(run.Repo, "")}
	if run.BaseRunID != "" {
		base, err := s.opts.Runs.GetRun(ctx, run.BaseRunID)
		if err != nil && !errors.Is(err, store.ErrNoRun) {
			s.log.Error("base run unreadable", "id", run.BaseRunID, "err", err)
			s.unavailable(w, r, "the run store")
			return
		}
		pg.Base = base
	}
	if run.BaseSHA != "" {
		pg.BaseCommitURL = commitURL(run.Repo, run.BaseSHA)
	}
	if run.Outcome != "" {
		v := report.ViewOf(run.Comment(pg.Base, ""))
		pg.View = &v
	}
	if pg.View == nil || !pg.View.Table {
		for k := range run.Metrics {
			pg.Names = append(pg.Names, k)
		}
		sort.Strings(pg.Names)
	}
	pg.Log, pg.Offset = s.pageLog(ctx, run)
	pg.Live = run.State != store.RunFinished && s.opts.Logs != nil
	if run.State != store.RunFinished && !pg.Live {
		w.Header().Set("Refresh", "5")
	}
	p.Title = "Run " + shortSHA(run.SHA) + " of " + run.Repo.FullName
	p.Crumbs = []crumb{{Title: run.Repo.FullName, Href: repoHref(run.Repo)}, {Title: "run " + id[:8]}}
	s.render(w, r, runPageTemplate, p, pg)
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
