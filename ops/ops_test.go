package ops

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// dashboardUIDs are the fixed uids of the dashboards, by file: links and
// bookmarks to them must survive a reload.
var dashboardUIDs = map[string]string{
	"mlbot.json":  "mlbot",
	"models.json": "mlbot-models",
}

// datasourceRef is how every panel, target, variable and annotation names
// its data source: the dashboard's "datasource" variable.
var datasourceRef = map[string]any{"type": "prometheus", "uid": "${datasource}"}

// dashboard is one dashboard file, decoded.
type dashboard struct {
	file string
	raw  []byte
	m    map[string]any
}

func loadDashboards(t *testing.T) []dashboard {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("grafana", "dashboards", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(dashboardUIDs) {
		t.Fatalf("dashboards %v, want one for each of %v", files, sortedKeys(dashboardUIDs))
	}
	var out []dashboard
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d, err := decodeDashboard(filepath.Base(f), raw)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

func decodeDashboard(file string, raw []byte) (dashboard, error) {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&m); err != nil {
		return dashboard{}, fmt.Errorf("%s: not valid JSON: %w", file, err)
	}
	if dec.More() {
		return dashboard{}, fmt.Errorf("%s: more than one JSON value", file)
	}
	return dashboard{file: file, raw: raw, m: m}, nil
}

// panels returns every panel of d, those inside rows included.
func (d dashboard) panels() []map[string]any {
	var out []map[string]any
	var walk func(list []any)
	walk = func(list []any) {
		for _, p := range list {
			pm, _ := p.(map[string]any)
			if pm == nil {
				continue
			}
			out = append(out, pm)
			if sub, ok := pm["panels"].([]any); ok {
				walk(sub)
			}
		}
	}
	list, _ := d.m["panels"].([]any)
	walk(list)
	return out
}

// list returns d[section]["list"], the form of templating and annotations.
func (d dashboard) list(section string) []map[string]any {
	s, _ := d.m[section].(map[string]any)
	items, _ := s["list"].([]any)
	var out []map[string]any
	for _, it := range items {
		if m, ok := it.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// queries returns the PromQL of d: panel targets, query variables and
// annotations.
func (d dashboard) queries() []query {
	var out []query
	for _, p := range d.panels() {
		targets, _ := p["targets"].([]any)
		for _, tg := range targets {
			tm, _ := tg.(map[string]any)
			expr, _ := tm["expr"].(string)
			out = append(out, query{fmt.Sprintf("%s: panel %v %q target %v", d.file, p["id"], p["title"], tm["refId"]), expr})
		}
	}
	for _, v := range d.list("templating") {
		if v["type"] != "query" {
			continue
		}
		q := v["query"]
		if qm, ok := q.(map[string]any); ok {
			q = qm["query"]
		}
		s, _ := q.(string)
		out = append(out, query{fmt.Sprintf("%s: variable %v", d.file, v["name"]), s})
	}
	for _, a := range d.list("annotations") {
		if expr, ok := a["expr"].(string); ok {
			out = append(out, query{fmt.Sprintf("%s: annotation %q", d.file, a["name"]), expr})
		}
	}
	return out
}

// rangePattern finds the range of a range selector.
var rangePattern = regexp.MustCompile(`\[([^\]]*)\]`)

// dashboardProblems returns what is wrong with d as a provisioned
// dashboard, one sentence each.
func dashboardProblems(d dashboard) []string {
	var problems []string
	bad := func(format string, args ...any) {
		problems = append(problems, d.file+": "+fmt.Sprintf(format, args...))
	}
	if want := dashboardUIDs[d.file]; d.m["uid"] != want {
		bad("uid %v, want the fixed %q", d.m["uid"], want)
	}
	if title, _ := d.m["title"].(string); title == "" {
		bad("no title")
	}
	if v, _ := d.m["schemaVersion"].(float64); v < 36 || v > 41 {
		bad("schemaVersion %v, want about 39", d.m["schemaVersion"])
	}
	// File provisioning substitutes no ${DS_…} inputs: such a dashboard
	// loads with every panel broken.
	if bytes.Contains(d.raw, []byte("${DS_")) {
		bad("names a ${DS_…} input")
	}
	if _, ok := d.m["__inputs"]; ok {
		bad("has __inputs (an export for sharing, not for provisioning)")
	}
	if _, ok := d.m["id"]; ok {
		bad("has a database id; provisioned dashboards are matched by uid")
	}
	var dsVar bool
	for _, v := range d.list("templating") {
		if v["type"] == "datasource" && v["name"] == "datasource" && v["query"] == "prometheus" {
			dsVar = true
		}
		if v["type"] == "query" && !sameRef(v["datasource"]) {
			bad("variable %v: datasource %v, want %v", v["name"], v["datasource"], datasourceRef)
		}
	}
	if !dsVar {
		bad("no datasource variable named datasource of type prometheus")
	}
	for _, a := range d.list("annotations") {
		if _, ok := a["expr"]; ok && !sameRef(a["datasource"]) {
			bad("annotation %q: datasource %v, want %v", a["name"], a["datasource"], datasourceRef)
		}
	}
	ids := map[float64]bool{}
	for _, p := range d.panels() {
		id, ok := p["id"].(float64)
		switch {
		case !ok:
			bad("panel %q has no id", p["title"])
		case ids[id]:
			bad("panel id %v is used twice", id)
		}
		ids[id] = true
		if title, _ := p["title"].(string); title == "" {
			bad("panel %v has no title", p["id"])
		}
		gp, _ := p["gridPos"].(map[string]any)
		w, _ := gp["w"].(float64)
		h, _ := gp["h"].(float64)
		x, _ := gp["x"].(float64)
		if w <= 0 || h <= 0 || x < 0 || x+w > 24 {
			bad("panel %v: gridPos %v does not fit the 24-column grid", p["id"], p["gridPos"])
		}
		if p["type"] == "row" {
			continue
		}
		if !sameRef(p["datasource"]) {
			bad("panel %v: datasource %v, want %v", p["id"], p["datasource"], datasourceRef)
		}
		targets, _ := p["targets"].([]any)
		if len(targets) == 0 {
			bad("panel %v %q has no query", p["id"], p["title"])
		}
		refs := map[any]bool{}
		for _, tg := range targets {
			tm, _ := tg.(map[string]any)
			if refs[tm["refId"]] || tm["refId"] == nil {
				bad("panel %v: refId %v missing or used twice", p["id"], tm["refId"])
			}
			refs[tm["refId"]] = true
			if !sameRef(tm["datasource"]) {
				bad("panel %v target %v: datasource %v, want %v", p["id"], tm["refId"], tm["datasource"], datasourceRef)
			}
			expr, _ := tm["expr"].(string)
			if strings.TrimSpace(expr) == "" {
				bad("panel %v target %v: no expression", p["id"], tm["refId"])
			}
			// A fixed range breaks at scrape intervals other than the
			// author's; $__rate_interval follows the data source's.
			for _, m := range rangePattern.FindAllStringSubmatch(expr, -1) {
				if m[1] != "$__rate_interval" && m[1] != "$__range" {
					bad("panel %v target %v: range [%s], want [$__rate_interval] (or [$__range] for a total)", p["id"], tm["refId"], m[1])
				}
			}
		}
	}
	return problems
}

func sameRef(v any) bool {
	m, _ := v.(map[string]any)
	return len(m) == len(datasourceRef) && m["type"] == datasourceRef["type"] && m["uid"] == datasourceRef["uid"]
}

func TestDashboards(t *testing.T) {
	dashboards := loadDashboards(t)
	uids := map[any]string{}
	for _, d := range dashboards {
		for _, p := range dashboardProblems(d) {
			t.Error(p)
		}
		if other, ok := uids[d.m["uid"]]; ok {
			t.Errorf("%s and %s share uid %v", other, d.file, d.m["uid"])
		}
		uids[d.m["uid"]] = d.file
	}
}

// TestDashboardProblemsFound shows that the dashboard checks fail on the
// mistakes they are there for.
func TestDashboardProblemsFound(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("grafana", "dashboards", "mlbot.json"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, old, new, want string
	}{
		{"exported with inputs", `"uid": "${datasource}"`, `"uid": "${DS_PROMETHEUS}"`, "${DS_"},
		{"a panel id twice", `"id": 3,`, `"id": 2,`, "panel id 2 is used twice"},
		{"uid changed", `"uid": "mlbot",`, `"uid": "abc123",`, `want the fixed "mlbot"`},
		{"a fixed range", `[$__rate_interval]`, `[5m]`, "range [5m]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !bytes.Contains(raw, []byte(tc.old)) {
				t.Fatalf("mlbot.json has no %s to change", tc.old)
			}
			d, err := decodeDashboard("mlbot.json", bytes.Replace(raw, []byte(tc.old), []byte(tc.new), 1))
			if err != nil {
				t.Fatal(err)
			}
			problems := strings.Join(dashboardProblems(d), "\n")
			if !strings.Contains(problems, tc.want) {
				t.Errorf("problems %q, want one saying %q", problems, tc.want)
			}
		})
	}
	if _, err := decodeDashboard("broken.json", raw[:len(raw)/2]); err == nil {
		t.Error("half a dashboard decoded")
	}
}

// rule is one alerting or recording rule of a rule file.
type rule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func loadRules(t *testing.T) []rule {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []rule `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	var out []rule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatal("alerts.yml has no rules")
	}
	return out
}

// TestAlertRules checks the conventions promtool does not: every alert has
// a severity and says what happened and what it means.
func TestAlertRules(t *testing.T) {
	severities := map[string]bool{"critical": true, "warning": true, "info": true}
	names := map[string]bool{}
	for _, r := range loadRules(t) {
		if r.Alert == "" {
			t.Errorf("rule %q is not an alert", r.Record)
			continue
		}
		if names[r.Alert] {
			t.Errorf("alert %s defined twice", r.Alert)
		}
		names[r.Alert] = true
		if !severities[r.Labels["severity"]] {
			t.Errorf("%s: severity %q, want critical, warning or info", r.Alert, r.Labels["severity"])
		}
		for _, a := range []string{"summary", "description"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("%s: no %s", r.Alert, a)
			}
		}
	}
	for _, want := range []string{"MlbotDown", "MlbotWebhooksFailing", "MlbotEventBacklog", "MlbotPipelinesFailing", "MlbotHostRateLimitLow", "MlbotAutomaticRollback"} {
		if !names[want] {
			t.Errorf("no alert %s", want)
		}
	}
}

// TestQueriedSeriesAreExported parses every PromQL expression of the
// dashboards and the alert rules and checks that each mlbot_* series they
// select is one mlbot exports, with the labels they match on.
func TestQueriedSeriesAreExported(t *testing.T) {
	exported := exportedMetrics(t)
	var qs []query
	for _, d := range loadDashboards(t) {
		qs = append(qs, d.queries()...)
	}
	for _, r := range loadRules(t) {
		qs = append(qs, query{"alerts.yml: " + r.Alert, r.Expr})
	}
	if len(qs) < 40 {
		t.Fatalf("only %d queries found in the dashboards and rules", len(qs))
	}
	for _, p := range checkQueries(qs, exported) {
		t.Error(p)
	}
	// Every metric the dashboards exist to show is on one of them.
	var all strings.Builder
	for _, q := range qs {
		all.WriteString(q.expr + "\n")
	}
	for _, name := range []string{"mlbot_webhook_requests_total", "mlbot_queue_tasks", "mlbot_pipeline_stage_duration_seconds_bucket",
		"mlbot_webhook_to_pending_seconds_bucket", "mlbot_host_api_requests_total", "mlbot_host_rate_limit_remaining", "mlbot_workers_busy",
		"mlbot_deployed_model_info", "mlbot_deployed_model_metric", "mlbot_deploys_finished_total", "mlbot_deploy_verifications_total"} {
		if !strings.Contains(all.String(), name) {
			t.Errorf("no dashboard or rule queries %s", name)
		}
	}
}

// TestUnexportedSeriesFound shows that the check fails on a dashboard or
// rule naming a series mlbot does not export, or a label it does not have.
func TestUnexportedSeriesFound(t *testing.T) {
	exported := exportedMetrics(t)
	tests := []struct {
		expr string
		want string // "" for no problem
	}{
		{`sum(rate(mlbot_webhook_requests_total{code="202"}[$__rate_interval]))`, ""},
		{`histogram_quantile(0.95, sum by (le) (rate(mlbot_pipeline_stage_duration_seconds_bucket{stage="train"}[5m])))`, ""},
		{`mlbot_webhook_to_pending_seconds_sum / mlbot_webhook_to_pending_seconds_count`, ""},
		{`max by (queue) (mlbot_queue_tasks{job=~"$job", state="pending"})`, ""},
		{`label_values(mlbot_deployed_model_info{repo=~"$repo"}, env)`, ""},
		{`{__name__="mlbot_workers_busy"}`, ""},
		{`up{job="mlbot"} == 0`, ""},
		{`sum(rate(mlbot_no_such_thing_total[5m]))`, "mlbot_no_such_thing_total is not a series mlbot exports"},
		{`{__name__="mlbot_no_such_gauge"}`, "mlbot_no_such_gauge is not a series mlbot exports"},
		{`rate(mlbot_webhook_requests_total_bucket[5m])`, "mlbot_webhook_requests_total_bucket is not a series"},
		{`mlbot_queue_tasks_sum`, "mlbot_queue_tasks_sum is not a series"},
		{`mlbot_queue_tasks{status="pending"}`, `mlbot_queue_tasks has no label "status"`},
		{`mlbot_workers_busy{le="1"}`, `mlbot_workers_busy has no label "le"`},
		{`sum(rate(mlbot_webhook_requests_total[5m])`, "not PromQL"},
	}
	for _, tc := range tests {
		problems := strings.Join(checkQueries([]query{{"test", tc.expr}}, exported), "\n")
		if tc.want == "" && problems != "" {
			t.Errorf("%s: %s", tc.expr, problems)
		}
		if tc.want != "" && !strings.Contains(problems, tc.want) {
			t.Errorf("%s: problems %q, want one saying %q", tc.expr, problems, tc.want)
		}
	}

	// A real dashboard with one metric misspelled fails the check.
	raw, err := os.ReadFile(filepath.Join("grafana", "dashboards", "mlbot.json"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := decodeDashboard("mlbot.json", bytes.Replace(raw, []byte("mlbot_workers_busy"), []byte("mlbot_worker_busy"), 1))
	if err != nil {
		t.Fatal(err)
	}
	problems := strings.Join(checkQueries(d.queries(), exported), "\n")
	if !strings.Contains(problems, "mlbot_worker_busy is not a series mlbot exports") {
		t.Errorf("a misspelt metric passed: %q", problems)
	}
}
