package ops

import (
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/bot/github"
	"github.com/mlbot/mlbot/jobs"
	"github.com/mlbot/mlbot/jobs/registry"
	"github.com/mlbot/mlbot/jobs/store"
	"github.com/mlbot/mlbot/runners"
	"github.com/mlbot/mlbot/runners/local"
)

// metricInfo is one metric family mlbot exports: its labels and whether it
// is a histogram or summary (which adds _bucket, _sum and _count series).
type metricInfo struct {
	labels    map[string]bool
	histogram bool // _bucket (with le), _sum, _count
	summary   bool // _sum, _count, and the quantile label
}

// exportedMetrics returns every metric mlbot's GET /metrics can serve, by
// name, from the collectors cmd/mlbot's registry is built of: the
// package-wide metrics of jobs and bot (the default registry) and the
// Worker's collectors read at scrape time (its own registry). It reads
// their descriptors, so metrics that have not been observed yet count.
func exportedMetrics(t *testing.T) map[string]metricInfo {
	t.Helper()
	// Describe touches neither Redis nor the host: nothing listens here.
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { rdb.Close() })
	gh, err := github.New(github.Options{Token: "unused"})
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(rdb, store.DefaultPrefix)
	w, err := jobs.New(jobs.Options{
		Redis:    rdb,
		Store:    st,
		Registry: registry.New(st, &registry.ArtifactStore{Dir: t.TempDir()}),
		Forges:   []jobs.ForgeSet{{Webhook: &github.Webhook{}, Forge: gh}},
		Runners:  runners.Set{runners.Local: local.New()},
		DataDir:  t.TempDir(),
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	var collectors []prometheus.Collector
	collectors = append(collectors, jobs.Collectors()...)
	collectors = append(collectors, bot.Collectors()...)
	collectors = append(collectors, w.DeployedCollector(), w.QueueCollector())

	out := map[string]metricInfo{}
	for _, c := range collectors {
		var histogram, summary bool
		switch c.(type) {
		case *prometheus.HistogramVec, prometheus.Histogram:
			histogram = true
		case *prometheus.SummaryVec, prometheus.Summary:
			summary = true
		}
		ch := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			name, labels := parseDesc(t, d)
			out[name] = metricInfo{labels: labels, histogram: histogram, summary: summary}
		}
	}
	// A metric registered with the default registry but left out of
	// jobs.Collectors or bot.Collectors would be missed above; those with
	// a series already (the ones without labels) are caught here.
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "mlbot_") {
			if _, ok := out[mf.GetName()]; !ok {
				t.Errorf("%s is registered but missing from jobs.Collectors or bot.Collectors", mf.GetName())
			}
		}
	}
	if len(out) < 20 {
		t.Fatalf("only %d metrics described: %v", len(out), sortedKeys(out))
	}
	return out
}

// descPattern reads a descriptor's name and variable labels from its
// String form, the only way client_golang shows them.
var descPattern = regexp.MustCompile(`^Desc\{fqName: "([^"]+)", .*variableLabels: \{([^}]*)\}\}$`)

func parseDesc(t *testing.T, d *prometheus.Desc) (string, map[string]bool) {
	t.Helper()
	m := descPattern.FindStringSubmatch(d.String())
	if m == nil {
		t.Fatalf("cannot read the descriptor %s (has client_golang changed Desc.String?)", d)
	}
	labels := map[string]bool{}
	for _, l := range strings.Split(m[2], ",") {
		// A constrained label shows as c(name).
		if l = strings.TrimSuffix(strings.TrimPrefix(l, "c("), ")"); l != "" {
			labels[l] = true
		}
	}
	return m[1], labels
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
