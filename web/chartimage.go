package web

import (
	"bytes"
	"errors"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/mlbot/mlbot/jobs/registry"
	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/jobs/store"
)

// ChartImagePurpose is what the key of Options.Images is derived for;
// jobs signs the comments' chart URLs with a Signer of the same purpose.
const ChartImagePurpose = "chart images v1"

// chartImageTop is the room above the plot for the image's title.
const chartImageTop = 16

// chartImageTemplate draws a chart as an SVG document of its own, styled
// inline, for an <img> in a comment.
var chartImageTemplate = template.Must(template.New("chartimage").Funcs(funcs).ParseFS(templateFiles,
	"templates/chart.html", "templates/chartimage.svg"))

// chartImage is a laid-out chart with the image's title band.
type chartImage struct {
	svgChart
	Top, FullH int
}

// serveChartImage serves GET /charts/runs/{file}: the chart of a run's
// headline metric over its repository's default branch, with the run's
// own value drawn filled, as an SVG image. The code host's image proxy
// fetches it without a session, so it asks for no login: a signature
// (exp, sig) over its path does, and a URL without a valid, unexpired one
// gets 403 and nothing else.
func (s *Server) serveChartImage(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutSuffix(r.PathValue("file"), ".svg")
	if !ok || s.opts.Images == nil || !idPattern.MatchString(id) {
		http.NotFound(w, r)
		return
	}
	if err := s.opts.Images.Verify(report.ChartImagePath(id), r.URL.Query(), time.Now()); err != nil {
		s.log.Info("chart image refused", "run", id, "err", err)
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	ctx := r.Context()
	run, err := s.opts.Runs.GetRun(ctx, id)
	if errors.Is(err, store.ErrNoRun) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		s.log.Error("run unreadable", "run", id, "err", err)
		http.Error(w, "the run store did not answer", http.StatusServiceUnavailable)
		return
	}
	key := store.RepoKey(run.Repo)
	baselines, err := s.opts.Runs.BaselineRuns(ctx, key)
	if err != nil {
		s.log.Error("default-branch runs unreadable", "repo", key, "err", err)
		http.Error(w, "the run store did not answer", http.StatusServiceUnavailable)
		return
	}
	// A registry that does not answer costs the deploy markers, not the
	// chart.
	var deploys []registry.Deploy
	if history, err := s.deployHistory(ctx, key); err == nil {
		for _, e := range history {
			deploys = append(deploys, e.Deploys...)
		}
	} else {
		s.log.Warn("chart drawn without deploys", "repo", key, "err", err)
	}
	c := runChart(run, baselines, deployMarkers(deploys))
	var b bytes.Buffer
	img := chartImage{svgChart: c.layout(), Top: chartImageTop, FullH: chartH + chartImageTop}
	if err := chartImageTemplate.ExecuteTemplate(&b, "chartimage", img); err != nil {
		s.log.Error("chart not rendered", "run", id, "err", err)
		http.Error(w, "the chart could not be rendered", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "image/svg+xml")
	h.Set("X-Content-Type-Options", "nosniff")
	// An SVG opened on its own is a document: it may run no script and
	// load nothing.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; sandbox")
	h.Set("Cache-Control", "private, max-age=300")
	w.Write(b.Bytes())
}

// runChart is the chart a run's comment embeds: its headline metric (the
// first gated one, or the first it reports) over the default branch's
// runs, with run's own value among them when run is not one of them.
func runChart(run *store.Run, baselines []*store.Run, markers []chartMarker) chart {
	runs := append(append([]*store.Run(nil), baselines...), run)
	names, specs := gatedMetrics(runs)
	name := ""
	if len(names) > 0 {
		name = names[0]
	} else {
		for _, n := range run.Order {
			if _, ok := run.Metrics[n]; ok {
				name = n
				break
			}
		}
	}
	sp := specs[name]
	c := metricChart(name, sp, baselines, markers)
	if p, ok := runPoint(run, name, sp); ok {
		in := false
		for _, b := range baselines {
			in = in || b.ID == run.ID
		}
		if !in {
			// A run that failed a gate (max_drop, say) is drawn as
			// failing, though its value is within the bounds drawn.
			p.This, p.Bad = true, p.Bad || run.Outcome == report.OutcomeGateFailed
			p.Label = "this run (" + p.Label + ")"
			if run.PR != nil {
				p.Label = "this pull request (" + shortSHA(run.SHA) + ")"
			}
			c.Points = append(c.Points, p)
		}
	}
	if name == "" {
		c.Title = "no metric to draw"
	} else if run.PR != nil {
		c.Title = name + " on the default branch and this pull request"
	}
	return c
}
