package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mlbot/mlbot/jobs/registry"
)

var (
	deployedInfoDesc = prometheus.NewDesc("mlbot_deployed_model_info",
		"The model version each environment runs now (always 1).", []string{"repo", "env", "version"}, nil)
	deployedMetricDesc = prometheus.NewDesc("mlbot_deployed_model_metric",
		"The evaluation metrics of the model version each environment runs now.", []string{"repo", "env", "metric"}, nil)
)

// DeployedCollector exports what runs where, read from the registry at
// scrape time so that every mlbot process reports the same, whichever
// worker deployed. Only current deploys are exported, which keeps the
// label sets bounded.
func (w *Worker) DeployedCollector() prometheus.Collector { return deployedCollector{w.registry} }

type deployedCollector struct{ reg *registry.Registry }

func (c deployedCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- deployedInfoDesc
	ch <- deployedMetricDesc
}

func (c deployedCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	repos, err := c.reg.Repos(ctx)
	if err != nil {
		return
	}
	for _, repo := range repos {
		envs, err := c.reg.Environments(ctx, repo)
		if err != nil {
			continue
		}
		for _, env := range envs {
			d, err := c.reg.Current(ctx, repo, env)
			if err != nil || d == nil {
				continue
			}
			ch <- prometheus.MustNewConstMetric(deployedInfoDesc, prometheus.GaugeValue, 1, repo, env, strconv.Itoa(d.Version))
			v, err := c.reg.Get(ctx, repo, d.Version)
			if err != nil {
				continue
			}
			n := 0
			for name, val := range v.Metrics {
				if n++; n > 50 {
					break // a model with thousands of metrics must not flood Prometheus
				}
				ch <- prometheus.MustNewConstMetric(deployedMetricDesc, prometheus.GaugeValue, val, repo, env, name)
			}
		}
	}
}

// deployIDPattern is the shape of a deploy id (NewID).
var deployIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// DeployPage serves GET /deploys/{id}: a deploy's record and the end of its
// log, as HTML or (?format=json) JSON.
func (w *Worker) DeployPage() http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if !deployIDPattern.MatchString(id) {
			http.Error(rw, "no such deploy", http.StatusNotFound)
			return
		}
		d, err := w.registry.GetDeploy(r.Context(), id)
		if errors.Is(err, registry.ErrNotFound) {
			http.Error(rw, "no such deploy", http.StatusNotFound)
			return
		}
		if err != nil {
			http.Error(rw, "registry unavailable", http.StatusServiceUnavailable)
			return
		}
		if r.URL.Query().Get("format") == "json" {
			rw.Header().Set("Content-Type", "application/json")
			json.NewEncoder(rw).Encode(d)
			return
		}
		log := logEnd(filepath.Join(w.opts.DataDir, "logs", "deploy-"+id+".log"), d.LogTail)
		rw.Header().Set("Content-Type", "text/html; charset=utf-8")
		rw.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		deployPageTemplate.Execute(rw, struct {
			D   *registry.Deploy
			Log string
		}{d, log})
	})
}

var deployPageTemplate = template.Must(template.New("deploy").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mlbot deploy {{.D.ID}}</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:70em}pre{background:#111;color:#ddd;padding:1em;overflow:auto;max-height:40em}td,th{padding:.2em .8em;text-align:left}</style></head>
<body><h1>Deploy of model v{{.D.Version}} to <code>{{.D.Env}}</code></h1>
<table>
<tr><th>Repository</th><td>{{.D.Repo}}</td></tr>
<tr><th>Commit</th><td><code>{{.D.SHA}}</code></td></tr>
<tr><th>State</th><td id="state">{{.D.State}}</td></tr>
<tr><th>Why</th><td>{{.D.Reason}}</td></tr>
{{if .D.Detail}}<tr><th>Detail</th><td>{{.D.Detail}}</td></tr>{{end}}
<tr><th>Requested</th><td>{{.D.Requested}}</td></tr>
</table>
<h2>Log</h2><pre id="log">{{.Log}}</pre>
</body></html>
`))
