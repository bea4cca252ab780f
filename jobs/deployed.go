package jobs

import (
	"context"
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
