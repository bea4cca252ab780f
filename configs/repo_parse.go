package configs

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

var (
	runners       = []string{"local", "docker", "kubernetes"}
	goals         = []string{"maximize", "minimize"}
	permLevels    = []string{"read", "triage", "write", "maintain", "admin"}
	queueRE       = regexp.MustCompile(`^[a-z0-9_-]+$`)
	envVarRE      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	environmentRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
)

// ParseRepoConfig parses and validates the .mlbot.yml content data. filename
// is only used in error positions. On failure the error is a ConfigErrors
// holding every problem found, each at the line and column of the offending
// YAML node, and the config is nil.
func ParseRepoConfig(filename string, data []byte) (*RepoConfig, error) {
	d := newDecoder(filename)
	if len(data) > maxRepoConfigBytes {
		d.errorf(nil, "file is %d bytes; the limit is %d", len(data), maxRepoConfigBytes)
		return nil, d.finish()
	}
	root, ok := d.parseDocument(data)
	if !ok {
		return nil, d.finish()
	}
	if root == nil {
		d.errorf(nil, "file is empty; it needs at least \"version: 1\" and a pipeline with train and metrics")
		return nil, d.finish()
	}
	c := d.repoConfig(root)
	if err := d.finish(); err != nil {
		return nil, err
	}
	return c, nil
}

func (d *decoder) repoConfig(root *yaml.Node) *RepoConfig {
	c := &RepoConfig{
		Pipeline: Pipeline{Timeout: defaultTimeout, Runner: defaultRunner, Queue: defaultQueue},
		Permissions: Permissions{
			Deploy: "maintain", Rollback: "maintain",
			Retrain: "write", Cancel: "write", OkToTest: "write", Sweep: "write",
		},
	}
	if r := resolve(root); r.Kind != yaml.MappingNode {
		d.errorf(root, "top level must be a mapping with keys such as version and pipeline, got %s", describe(root))
		return c
	}
	present, _ := d.object(root, "", []field{
		{"version", func(_, v *yaml.Node) {
			n, ok := d.integer(v, "version")
			if ok && n != 1 {
				d.errorf(v, "version: unsupported version %d; this mlbot understands version 1", n)
			}
			c.Version = n
		}},
		{"pipeline", func(k, v *yaml.Node) { d.pipeline(k, v, &c.Pipeline) }},
		{"metrics", func(_, v *yaml.Node) { c.Metrics, c.MetricOrder = d.metrics(v) }},
		{"deploy", func(_, v *yaml.Node) { c.Deploy, c.DeployOrder = d.deploy(v) }},
		{"permissions", func(_, v *yaml.Node) { d.permissions(v, &c.Permissions) }},
		{"params", func(_, v *yaml.Node) { c.Params = d.params(v) }},
		{"sweep", func(_, v *yaml.Node) { c.Sweep = d.sweep(v) }},
		{"secrets", func(_, v *yaml.Node) {
			c.Secrets, _ = d.strList(v, "secrets", func(s string, at *yaml.Node) bool {
				if !envVarRE.MatchString(s) {
					d.errorf(at, "secrets: %q is not an environment variable name (letters, digits and _, not starting with a digit)", s)
					return false
				}
				return true
			})
		}},
	})
	// Missing top-level keys are reported at the start of the mapping, the
	// one place that exists in every file.
	if p, ok := present["version"]; !ok {
		d.errorf(root, "missing required key \"version\" (add \"version: 1\")")
	} else if isNull(p.value) {
		d.errorf(p.key, "version: a value is required (write \"version: 1\")")
	}
	d.require(present, root, "", "pipeline")
	if c.Sweep != nil {
		d.checkSweep(c, present["sweep"].key)
	}
	return c
}

func (d *decoder) pipeline(key, v *yaml.Node, p *Pipeline) {
	const where = "pipeline"
	relPath := func(list string) func(string, *yaml.Node) bool {
		return func(s string, at *yaml.Node) bool {
			if err := checkRelPath(s); err != nil {
				d.errorf(at, "%s.%s: %q %v", where, list, s, err)
				return false
			}
			return true
		}
	}
	present, ok := d.object(v, where, []field{
		{"train", func(_, v *yaml.Node) { p.Train, _ = d.str(v, "pipeline.train") }},
		{"evaluate", func(_, v *yaml.Node) { p.Evaluate, _ = d.str(v, "pipeline.evaluate") }},
		{"metrics", func(_, v *yaml.Node) {
			list, ok := d.strList(v, "pipeline.metrics", relPath("metrics"))
			if ok && len(list) == 0 {
				d.errorf(v, "pipeline.metrics: at least one metrics file is required")
			}
			p.Metrics = list
		}},
		{"artifacts", func(_, v *yaml.Node) { p.Artifacts, _ = d.strList(v, "pipeline.artifacts", relPath("artifacts")) }},
		{"timeout", func(_, v *yaml.Node) {
			t, ok := d.duration(v, "pipeline.timeout")
			switch {
			case !ok:
			case t <= 0:
				d.errorf(v, "pipeline.timeout: must be positive, got %s", t)
			case t > maxTimeout:
				d.errorf(v, "pipeline.timeout: %s is longer than the limit of 7 days (168h)", t)
			default:
				p.Timeout = t
			}
		}},
		{"paths", func(_, v *yaml.Node) {
			p.Paths, _ = d.strList(v, "pipeline.paths", func(s string, at *yaml.Node) bool {
				if err := validateGlob(cleanRelPath(s)); err != nil {
					d.errorf(at, "pipeline.paths: %q: %v", s, err)
					return false
				}
				return true
			})
		}},
		{"runner", func(_, v *yaml.Node) {
			s, ok := d.str(v, "pipeline.runner")
			if ok && indexOf(runners, s) < 0 {
				d.errorf(v, "pipeline.runner: unknown runner %q%s", s, didYouMean(s, runners))
				return
			}
			if ok {
				p.Runner = s
			}
		}},
		{"queue", func(_, v *yaml.Node) {
			s, ok := d.str(v, "pipeline.queue")
			if ok && !queueRE.MatchString(s) {
				d.errorf(v, "pipeline.queue: %q is not a queue name (lowercase letters, digits, _ and -)", s)
				return
			}
			if ok {
				p.Queue = s
			}
		}},
		{"image", func(_, v *yaml.Node) { p.Image, _ = d.str(v, "pipeline.image") }},
		{"resources", func(_, v *yaml.Node) { p.Resources = d.resources(v) }},
		{"network", func(_, v *yaml.Node) {
			s, ok := d.str(v, "pipeline.network")
			if ok && s != "none" && s != "default" {
				d.errorf(v, "pipeline.network: %q is not a network mode (none or default)%s", s, didYouMean(s, []string{"none", "default"}))
				return
			}
			if ok {
				p.Network = s
			}
		}},
		{"examples", func(_, v *yaml.Node) { p.Examples = d.examples(v) }},
	})
	if !ok {
		return
	}
	d.require(present, key, where, "train", "metrics")
}

// tolerationRE is a toleration: key[=value][:effect].
var tolerationRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_./-]*(=[A-Za-z0-9_.-]*)?(:(NoSchedule|PreferNoSchedule|NoExecute))?$`)

// labelRE is a Kubernetes label key or value, loosely: the API server has
// the last word.
var labelRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_./-]{0,251}[A-Za-z0-9])?$`)

func (d *decoder) resources(v *yaml.Node) Resources {
	var r Resources
	quantity := func(n *yaml.Node, path string, parse func(string) (int64, error), into *int64) {
		s, ok := d.str(n, path)
		if !ok {
			return
		}
		q, err := parse(s)
		if err != nil {
			d.errorf(n, "%s: %v", path, err)
			return
		}
		*into = q
	}
	d.object(v, "pipeline.resources", []field{
		{"cpu", func(_, n *yaml.Node) { quantity(n, "pipeline.resources.cpu", ParseCPU, &r.CPUMilli) }},
		{"memory", func(_, n *yaml.Node) { quantity(n, "pipeline.resources.memory", ParseBytes, &r.MemoryBytes) }},
		{"shm_size", func(_, n *yaml.Node) { quantity(n, "pipeline.resources.shm_size", ParseBytes, &r.ShmBytes) }},
		{"gpus", func(_, n *yaml.Node) {
			g, ok := d.integer(n, "pipeline.resources.gpus")
			if ok && (g < 0 || g > 64) {
				d.errorf(n, "pipeline.resources.gpus: must be between 0 and 64, got %d", g)
				return
			}
			r.GPUs = g
		}},
		{"node_selector", func(_, n *yaml.Node) {
			ps, ok := d.mapping(n, "pipeline.resources.node_selector")
			if !ok {
				return
			}
			r.NodeSelector = make(map[string]string, len(ps))
			for _, p := range ps {
				k, _ := d.str(p.key, "pipeline.resources.node_selector")
				val, ok := d.str(p.value, "pipeline.resources.node_selector."+k)
				if !ok {
					continue
				}
				if !labelRE.MatchString(k) || (val != "" && !labelRE.MatchString(val)) {
					d.errorf(p.key, "pipeline.resources.node_selector: %q: %q is not a label key and value", k, val)
					continue
				}
				r.NodeSelector[k] = val
			}
		}},
		{"tolerations", func(_, n *yaml.Node) {
			r.Tolerations, _ = d.strList(n, "pipeline.resources.tolerations", func(s string, at *yaml.Node) bool {
				if !tolerationRE.MatchString(s) {
					d.errorf(at, "pipeline.resources.tolerations: %q is not key[=value][:NoSchedule|PreferNoSchedule|NoExecute]", s)
					return false
				}
				return true
			})
		}},
	})
	return r
}

// checkRelPath refuses paths that would leave the checkout: the runner reads
// metrics and artifacts from these paths on the worker's disk.
func checkRelPath(p string) error {
	if p == "" {
		return fmt.Errorf("is empty")
	}
	if path.IsAbs(p) || strings.HasPrefix(p, `\`) || (len(p) > 1 && p[1] == ':') {
		return fmt.Errorf("must be relative to the checkout, not absolute")
	}
	if c := path.Clean(p); c == ".." || strings.HasPrefix(c, "../") {
		return fmt.Errorf("must stay inside the checkout")
	}
	return nil
}

func (d *decoder) metrics(v *yaml.Node) (map[string]MetricSpec, []string) {
	ps, ok := d.mapping(v, "metrics")
	if !ok {
		return nil, nil
	}
	specs := make(map[string]MetricSpec, len(ps))
	var order []string
	for _, p := range ps {
		name := resolve(p.key).Value
		if name == "" {
			d.errorf(p.key, "metrics: metric name must not be empty")
			continue
		}
		specs[name] = d.metricSpec(p.value, "metrics."+name)
		order = append(order, name)
	}
	return specs, order
}

func (d *decoder) metricSpec(v *yaml.Node, where string) MetricSpec {
	var m MetricSpec
	goal := func(v *yaml.Node, path string) {
		s, ok := d.str(v, path)
		if ok && indexOf(goals, s) < 0 {
			d.errorf(v, "%s: goal must be maximize or minimize, got %q%s", path, s, suggestOnly(s, goals))
			return
		}
		m.Goal = s
	}
	r := resolve(v)
	switch {
	case isNull(v):
		// A bare "accuracy:" tracks the metric without gates.
		return m
	case r.Kind == yaml.ScalarNode:
		// "loss: minimize" is shorthand for "loss: {goal: minimize}".
		goal(v, where)
		return m
	case r.Kind != yaml.MappingNode:
		d.errorf(v, "%s: mapping or goal expected (such as {goal: minimize} or minimize), got %s", where, describe(v))
		return m
	}
	var minNode, maxNode, dropNode *yaml.Node
	d.object(v, where, []field{
		{"goal", func(_, v *yaml.Node) { goal(v, where+".goal") }},
		{"min", func(_, v *yaml.Node) { m.Min, _ = d.number(v, where+".min"); minNode = v }},
		{"max", func(_, v *yaml.Node) { m.Max, _ = d.number(v, where+".max"); maxNode = v }},
		{"max_drop", func(_, v *yaml.Node) {
			f, ok := d.number(v, where+".max_drop")
			if ok && *f < 0 {
				d.errorf(v, "%s.max_drop: must not be negative, got %v", where, *f)
				return
			}
			m.MaxDrop, dropNode = f, v
		}},
		{"significance", func(_, v *yaml.Node) { m.Significance = d.significance(v, where) }},
		{"non_inferiority", func(_, v *yaml.Node) { m.NonInferiority = d.nonInferiority(v, where) }},
	})
	d.checkExampleGates(v, where, m)
	if m.Min != nil && m.Max != nil && *m.Min > *m.Max {
		d.errorf(minNode, "%s: min %v is greater than max %v (at line %d)", where, *m.Min, *m.Max, maxNode.Line)
	}
	if m.MaxDrop != nil && m.Goal == "" {
		// Without a direction there is no telling a drop from a gain.
		d.errorf(dropNode, "%s.max_drop: needs a goal (maximize or minimize) to know which direction is a drop", where)
	}
	return m
}

// suggestOnly is didYouMean without the list of choices, for messages that
// already name them.
func suggestOnly(word string, candidates []string) string {
	if c := closest(word, candidates); c != "" {
		return fmt.Sprintf(" (did you mean %q?)", c)
	}
	return ""
}

func (d *decoder) deploy(v *yaml.Node) (map[string]Environment, []string) {
	ps, ok := d.mapping(v, "deploy")
	if !ok {
		return nil, nil
	}
	envs := make(map[string]Environment, len(ps))
	var order []string
	for _, p := range ps {
		name := resolve(p.key).Value
		if !environmentRE.MatchString(name) {
			// The name appears in "/deploy <env>" comments and in the status
			// context mlbot/deploy/<env>, so it must be one plain word.
			d.errorf(p.key, "deploy: environment name %q must start with a letter or digit and hold only letters, digits, _, . and -", name)
			continue
		}
		envs[name] = d.environment(p.key, p.value, name)
		order = append(order, name)
	}
	return envs, order
}

func (d *decoder) environment(key, v *yaml.Node, name string) Environment {
	where := "deploy." + name
	e := Environment{Name: name}
	if isNull(v) {
		d.errorf(key, "missing required key \"command\" in %s", where)
		return e
	}
	present, ok := d.object(v, where, []field{
		{"command", func(_, v *yaml.Node) { e.Command, _ = d.str(v, where+".command") }},
		{"on_merge", func(_, v *yaml.Node) { e.OnMerge, _ = d.boolean(v, where+".on_merge") }},
		{"from_pr", func(_, v *yaml.Node) { e.FromPR, _ = d.boolean(v, where+".from_pr") }},
		{"url", func(_, v *yaml.Node) {
			s, ok := d.str(v, where+".url")
			if !ok {
				return
			}
			if err := checkHTTPURL(s); err != nil {
				d.errorf(v, "%s.url: %v", where, err)
				return
			}
			e.URL = s
		}},
		{"verify", func(k, v *yaml.Node) { e.Verify = d.verify(k, v, where+".verify") }},
	})
	if ok {
		d.require(present, key, where, "command")
	}
	return e
}

func (d *decoder) verify(key, v *yaml.Node, where string) *Verify {
	vf := &Verify{For: defaultVerifyFor, Every: defaultVerifyEvery}
	positive := func(v *yaml.Node, path string, dst *time.Duration) {
		t, ok := d.duration(v, path)
		if ok && t <= 0 {
			d.errorf(v, "%s: must be positive, got %s", path, t)
			return
		}
		if ok {
			*dst = t
		}
	}
	var minNode, maxNode *yaml.Node
	present, ok := d.object(v, where, []field{
		{"query", func(_, v *yaml.Node) { vf.Query, _ = d.str(v, where+".query") }},
		{"min", func(_, v *yaml.Node) { vf.Min, _ = d.number(v, where+".min"); minNode = v }},
		{"max", func(_, v *yaml.Node) { vf.Max, _ = d.number(v, where+".max"); maxNode = v }},
		{"for", func(_, v *yaml.Node) { positive(v, where+".for", &vf.For) }},
		{"every", func(_, v *yaml.Node) { positive(v, where+".every", &vf.Every) }},
	})
	if !ok {
		return vf
	}
	d.require(present, key, where, "query")
	_, hasMin := present["min"]
	_, hasMax := present["max"]
	if !hasMin && !hasMax {
		d.errorf(key, "%s: set min, max or both: the bounds the query result must stay within", where)
	}
	if vf.Min != nil && vf.Max != nil && *vf.Min > *vf.Max {
		d.errorf(minNode, "%s: min %v is greater than max %v (at line %d)", where, *vf.Min, *vf.Max, maxNode.Line)
	}
	return vf
}

func (d *decoder) permissions(v *yaml.Node, p *Permissions) {
	level := func(dst *string, path string) func(_, v *yaml.Node) {
		return func(_, v *yaml.Node) {
			s, ok := d.str(v, path)
			if ok && indexOf(permLevels, s) < 0 {
				d.errorf(v, "%s: unknown permission level %q%s", path, s, didYouMean(s, permLevels))
				return
			}
			if ok {
				*dst = s
			}
		}
	}
	d.object(v, "permissions", []field{
		{"deploy", level(&p.Deploy, "permissions.deploy")},
		{"rollback", level(&p.Rollback, "permissions.rollback")},
		{"retrain", level(&p.Retrain, "permissions.retrain")},
		{"cancel", level(&p.Cancel, "permissions.cancel")},
		{"ok_to_test", level(&p.OkToTest, "permissions.ok_to_test")},
		{"sweep", level(&p.Sweep, "permissions.sweep")},
	})
}

// checkHTTPURL accepts absolute http and https URLs with a host.
func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("invalid URL %q: %w", s, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http:// or https:// URL", s)
	}
	return nil
}
