package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strconv"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/jobs/registry"
	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/jobs/store"
)

// DeployPage serves GET /deploys/{id}: a deploy's record, what its
// verification observed (drawn against the threshold), and the end of
// its log, as HTML or (?format=json) JSON. The log comes from the deploy's
// log file under DataDir when this process can read it, otherwise from
// the tail kept in the record.
func (s *Server) DeployPage() http.Handler {
	return s.page(s.serveDeploy)
}

// deployPage is what the deploy page shows.
type deployPage struct {
	D   *registry.Deploy
	Log string
	// Chart draws the verification's samples; nil without samples.
	Chart *svgChart
	// Samples are the verification's values with whether each held.
	Samples []sampleRow
	// CommitURL links to the host.
	CommitURL string
	Repo      bot.Repo
}

// sampleRow is one verification value.
type sampleRow struct {
	registry.Sample
	Value string
	Held  bool
}

func (s *Server) serveDeploy(w http.ResponseWriter, r *http.Request, p *pageData) {
	id := r.PathValue("id")
	if !idPattern.MatchString(id) {
		s.notFound(w, r, "no such deploy")
		return
	}
	d, err := s.opts.Deploys.GetDeploy(r.Context(), id)
	if errors.Is(err, registry.ErrNotFound) {
		if p.LoginOn && len(p.Users) == 0 && !wantsJSON(r) {
			http.Redirect(w, r, p.LoginHref, http.StatusFound)
			return
		}
		s.notFound(w, r, "no such deploy")
		return
	}
	if err != nil {
		s.log.Error("deploy unreadable", "id", id, "err", err)
		s.unavailable(w, r, "the model registry")
		return
	}
	repo := repoFromKey(d.Repo)
	if !s.allow(w, r, p, repo, !wantsJSON(r)) {
		return
	}
	if wantsJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(d)
		return
	}
	pg := deployPage{D: d, Log: logEnd(filepath.Join(s.opts.DataDir, "logs", "deploy-"+id+".log"), d.LogTail), Repo: repo}
	if run := s.runOfDeploy(r.Context(), d); run != nil {
		repo = run.Repo
		pg.Repo = repo
	}
	pg.CommitURL = commitURL(repo, d.SHA)
	if v := d.Verification; v != nil && len(v.Samples) > 0 {
		c := chart{ID: "verification", Title: v.Query}
		for _, smp := range v.Samples {
			held := (v.Min == nil || smp.Value >= *v.Min) && (v.Max == nil || smp.Value <= *v.Max)
			c.Points = append(c.Points, chartPoint{At: smp.At, Value: smp.Value, Label: v.Query, Bad: !held})
			pg.Samples = append(pg.Samples, sampleRow{Sample: smp, Value: report.FormatNumber(smp.Value), Held: held})
		}
		if v.Min != nil {
			c.Lines = append(c.Lines, chartLine{Value: *v.Min, Label: "min " + report.FormatNumber(*v.Min)})
		}
		if v.Max != nil {
			c.Lines = append(c.Lines, chartLine{Value: *v.Max, Label: "max " + report.FormatNumber(*v.Max)})
		}
		l := c.layout()
		pg.Chart = &l
	}
	p.Title = "Deploy of v" + strconv.Itoa(d.Version) + " to " + d.Env
	p.Crumbs = []crumb{{Title: repo.FullName, Href: repoHref(repo)}, {Title: "deploy to " + d.Env}}
	s.render(w, r, deployPageTemplate, p, pg)
}

// runOfDeploy returns the run that made d's version, for the host links
// its repository carries; nil when it is not kept or cannot be read.
func (s *Server) runOfDeploy(ctx context.Context, d *registry.Deploy) *store.Run {
	if s.opts.Models == nil || s.opts.Runs == nil {
		return nil
	}
	v, err := s.opts.Models.Get(ctx, d.Repo, d.Version)
	if err != nil || v.RunID == "" {
		return nil
	}
	run, err := s.opts.Runs.GetRun(ctx, v.RunID)
	if err != nil {
		return nil
	}
	return run
}
