package ops

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/prometheus/prometheus/promql/parser"
)

// query is one PromQL expression found in a dashboard or a rule file, with
// where it was found.
type query struct {
	where string
	expr  string
}

// grafanaVars replaces Grafana's template variables with what Grafana
// would put there, so that the expression parses as PromQL: the interval
// variables with durations, any other variable with a plain value (they
// appear as label values, "$job" in job=~"$job").
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "5m", "${__rate_interval}", "5m",
	"$__range", "1h", "${__range}", "1h",
	"$__interval", "1m", "${__interval}", "1m",
)

var templateVar = regexp.MustCompile(`\$\{?[A-Za-z_][A-Za-z0-9_]*\}?`)

// labelValues is Grafana's label_values(selector, label) variable query,
// which is not PromQL itself; its selector is.
var labelValues = regexp.MustCompile(`^\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$`)

// promQL returns the PromQL of a Grafana expression or variable query.
func promQL(expr string) string {
	if m := labelValues.FindStringSubmatch(expr); m != nil {
		expr = m[1]
	}
	return templateVar.ReplaceAllString(grafanaVars.Replace(expr), "x")
}

// suffixed lists the series a histogram or summary family adds to its
// name, and the extra label each may carry.
var suffixed = []struct {
	suffix    string
	histogram bool
	summary   bool
	label     string
}{
	{"_bucket", true, false, "le"},
	{"_sum", true, true, ""},
	{"_count", true, true, ""},
}

// targetLabels are added by Prometheus to every scraped series.
var targetLabels = map[string]bool{"job": true, "instance": true}

// checkQueries parses every query and returns a sentence for each problem:
// a query that is not PromQL, an mlbot_* series that mlbot does not export,
// or a label matcher on an mlbot_* series naming a label it does not have.
func checkQueries(qs []query, exported map[string]metricInfo) []string {
	var problems []string
	for _, q := range qs {
		expr, err := parser.ParseExpr(promQL(q.expr))
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: not PromQL: %v\n\t%s", q.where, err, q.expr))
			continue
		}
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			vs, ok := n.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			name := vs.Name
			for _, m := range vs.LabelMatchers {
				if m.Name == "__name__" && name == "" {
					name = m.Value
				}
			}
			if !strings.HasPrefix(name, "mlbot_") {
				return nil
			}
			labels, ok := seriesLabels(name, exported)
			if !ok {
				problems = append(problems, fmt.Sprintf("%s: %s is not a series mlbot exports\n\t%s", q.where, name, q.expr))
				return nil
			}
			for _, m := range vs.LabelMatchers {
				if m.Name != "__name__" && !labels[m.Name] && !targetLabels[m.Name] {
					problems = append(problems, fmt.Sprintf("%s: %s has no label %q\n\t%s", q.where, name, m.Name, q.expr))
				}
			}
			return nil
		})
	}
	return problems
}

// seriesLabels returns the labels of series name if mlbot exports it: a
// family's own name, or a histogram's or summary's _bucket, _sum or _count.
func seriesLabels(name string, exported map[string]metricInfo) (map[string]bool, bool) {
	if mi, ok := exported[name]; ok {
		if !mi.summary {
			return mi.labels, true
		}
		return with(mi.labels, "quantile"), true
	}
	for _, s := range suffixed {
		base, ok := strings.CutSuffix(name, s.suffix)
		if !ok {
			continue
		}
		mi, ok := exported[base]
		if !ok || !(mi.histogram && s.histogram || mi.summary && s.summary) {
			return nil, false
		}
		if s.label != "" {
			return with(mi.labels, s.label), true
		}
		return mi.labels, true
	}
	return nil, false
}

func with(labels map[string]bool, extra string) map[string]bool {
	out := map[string]bool{extra: true}
	for l := range labels {
		out[l] = true
	}
	return out
}
