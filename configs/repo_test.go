package configs

import (
	"errors"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func ptr(f float64) *float64 { return &f }

// base is a minimal valid file; error cases append to it so that their line
// numbers start at 5.
const base = `version: 1
pipeline:
  train: python train.py
  metrics: [metrics.json]
`

func TestParseRepoConfigFullExample(t *testing.T) {
	data, err := os.ReadFile("testdata/full.mlbot.yml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseRepoConfig(RepoConfigFile, data)
	if err != nil {
		t.Fatalf("ParseRepoConfig: %v", err)
	}
	want := &RepoConfig{
		Version: 1,
		Pipeline: Pipeline{
			Train:     "python train.py --out model.pt",
			Evaluate:  "python eval.py --model model.pt --out metrics.json",
			Metrics:   []string{"metrics.json"},
			Artifacts: []string{"model.pt"},
			Timeout:   2 * time.Hour,
			Paths:     []string{"model/**", "data/**", ".mlbot.yml"},
			Runner:    "local",
			Queue:     "default",
		},
		Metrics: map[string]MetricSpec{
			"accuracy": {Goal: "maximize", Min: ptr(0.90), MaxDrop: ptr(0.005)},
			"loss":     {Goal: "minimize"},
		},
		MetricOrder: []string{"accuracy", "loss"},
		Deploy: map[string]Environment{
			"production": {
				Name: "production", Command: "./deploy.sh production", OnMerge: true,
				URL: "https://models.example.com/production",
				Verify: &Verify{
					Query: "sum(rate(model_errors_total[5m]))", Max: ptr(0.01),
					For: 10 * time.Minute, Every: 30 * time.Second,
				},
			},
			"staging": {Name: "staging", Command: "./deploy.sh staging", FromPR: true},
		},
		DeployOrder: []string{"production", "staging"},
		Permissions: Permissions{Deploy: "maintain", Rollback: "maintain", Retrain: "write", Cancel: "write", OkToTest: "write", Sweep: "write"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseRepoConfig mismatch\n got: %+v\nwant: %+v", got, want)
	}
}

func TestParseRepoConfigValid(t *testing.T) {
	tests := []struct {
		name  string
		input string
		check func(t *testing.T, c *RepoConfig)
	}{
		{
			name:  "defaults",
			input: base,
			check: func(t *testing.T, c *RepoConfig) {
				p := c.Pipeline
				if p.Timeout != time.Hour || p.Runner != "local" || p.Queue != "default" || p.Evaluate != "" || p.Paths != nil {
					t.Errorf("pipeline defaults = %+v", p)
				}
				want := Permissions{Deploy: "maintain", Rollback: "maintain", Retrain: "write", Cancel: "write", OkToTest: "write", Sweep: "write"}
				if c.Permissions != want {
					t.Errorf("permissions = %+v, want %+v", c.Permissions, want)
				}
			},
		},
		{
			name: "bare goal, null spec and nested metric names",
			input: base + `metrics:
  loss: minimize
  eval.accuracy: {goal: maximize}
  tracked:
`,
			check: func(t *testing.T, c *RepoConfig) {
				want := map[string]MetricSpec{"loss": {Goal: "minimize"}, "eval.accuracy": {Goal: "maximize"}, "tracked": {}}
				if !reflect.DeepEqual(c.Metrics, want) {
					t.Errorf("Metrics = %+v", c.Metrics)
				}
				if !reflect.DeepEqual(c.MetricOrder, []string{"loss", "eval.accuracy", "tracked"}) {
					t.Errorf("MetricOrder = %v", c.MetricOrder)
				}
			},
		},
		{
			name: "every option",
			input: base + `  evaluate: python eval.py
  runner: docker
  image: python:3.12
  queue: gpu_a100
  timeout: 90s
metrics:
  auc: {goal: maximize, min: 0, max: 1, max_drop: 0}
deploy:
  canary:
    command: ./deploy canary
    verify: {query: up, min: 1}
permissions:
  deploy: admin
  rollback: write
  retrain: triage
  cancel: read
  ok_to_test: maintain
secrets: [HF_TOKEN, WANDB_API_KEY]
`,
			check: func(t *testing.T, c *RepoConfig) {
				p := c.Pipeline
				if p.Runner != "docker" || p.Image != "python:3.12" || p.Queue != "gpu_a100" || p.Timeout != 90*time.Second {
					t.Errorf("pipeline = %+v", p)
				}
				if m := c.Metrics["auc"]; *m.Min != 0 || *m.Max != 1 || *m.MaxDrop != 0 {
					t.Errorf("auc = %+v", m)
				}
				v := c.Deploy["canary"].Verify
				if v.For != 5*time.Minute || v.Every != 30*time.Second || *v.Min != 1 || v.Max != nil {
					t.Errorf("verify defaults = %+v", v)
				}
				want := Permissions{Deploy: "admin", Rollback: "write", Retrain: "triage", Cancel: "read", OkToTest: "maintain", Sweep: "write"}
				if c.Permissions != want {
					t.Errorf("permissions = %+v", c.Permissions)
				}
				if !reflect.DeepEqual(c.Secrets, []string{"HF_TOKEN", "WANDB_API_KEY"}) {
					t.Errorf("secrets = %v", c.Secrets)
				}
			},
		},
		{
			name: "anchors and merge keys",
			input: base + `deploy:
  staging: &common
    command: ./deploy.sh
    from_pr: true
  production:
    <<: *common
    from_pr: false
    on_merge: true
`,
			check: func(t *testing.T, c *RepoConfig) {
				want := Environment{Name: "production", Command: "./deploy.sh", OnMerge: true}
				if got := c.Deploy["production"]; !reflect.DeepEqual(got, want) {
					t.Errorf("production = %+v, want %+v", got, want)
				}
			},
		},
		{
			name:  "null values count as unset",
			input: base + "  evaluate: ~\n  runner:\n",
			check: func(t *testing.T, c *RepoConfig) {
				if c.Pipeline.Evaluate != "" || c.Pipeline.Runner != "local" {
					t.Errorf("pipeline = %+v", c.Pipeline)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseRepoConfig(RepoConfigFile, []byte(tt.input))
			if err != nil {
				t.Fatalf("ParseRepoConfig: %v", err)
			}
			tt.check(t, c)
		})
	}
}

// wantErr is one expected error: its exact position and a part of its message.
type wantErr struct {
	line, col int
	msg       string
}

func TestParseRepoConfigErrors(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []wantErr
	}{
		// Syntax and document shape.
		{"yaml syntax: unclosed flow mapping", "version: 1\npipeline: {train: x\n", []wantErr{{2, 1, "invalid YAML: did not find expected ',' or '}'"}}},
		{"yaml syntax: tab indentation", "version: 1\npipeline:\n\ttrain: x\n", []wantErr{{3, 1, "invalid YAML: found character that cannot start any token (YAML does not allow tabs"}}},
		{"yaml syntax: bad indentation", base + " paths: [a]\n", []wantErr{{5, 2, "invalid YAML: did not find expected key"}}},
		{"yaml syntax: mapping value in plain scalar", "version: 1\npipeline:\n  train: python -c a: b\n", []wantErr{{3, 3, "invalid YAML: mapping values are not allowed in this context"}}},
		{"yaml syntax: unclosed quote", base + "  evaluate: \"python eval.py\n", []wantErr{{5, 3, "invalid YAML: found unexpected end of stream"}}},
		{"yaml syntax: error past a multi-line string", "version: 1\npipeline:\n  train: \"python\n    train.py\"\n  metrics: [m.json]\n bad: 1\n", []wantErr{{6, 2, "invalid YAML: did not find expected key"}}},
		{"yaml syntax: unknown alias", base + "  evaluate: *cmd\n", []wantErr{{5, 13, "invalid YAML: alias *cmd refers to no anchor &cmd defined before it"}}},
		{"yaml syntax: in a second document", base + "---\na: [\n", []wantErr{{6, 1, "invalid YAML: did not find expected node content"}}},
		// Lines end where YAML says they do, bare CRs included (classic
		// Mac files), so a position is never past the file's end.
		{"yaml syntax: bare CR line ends", "version: 1\rpipeline:\r  train: x\r bad: 1\r", []wantErr{{4, 2, "invalid YAML: did not find expected key"}}},
		{"yaml syntax: NEL and LS line ends", "version: 1\u0085pipeline:\u2028  train: x\r\n bad: 1\n", []wantErr{{4, 2, "invalid YAML: did not find expected key"}}},
		{"second document empty", base + "---", []wantErr{{5, 1, "only one YAML document is allowed"}}},
		{"empty file", "", []wantErr{{1, 1, "file is empty"}}},
		{"only comments", "# nothing here\n\n", []wantErr{{1, 1, "file is empty"}}},
		{"top level is a list", "- version: 1\n", []wantErr{{1, 1, "top level must be a mapping with keys such as version and pipeline, got a list"}}},
		{"top level is a string", "hello\n", []wantErr{{1, 1, "top level must be a mapping"}}},
		{"two documents", base + "---\nversion: 1\n", []wantErr{{6, 1, "only one YAML document is allowed"}}},
		{"duplicate key", base + "  train: again\n", []wantErr{{5, 3, `duplicate key "train" in pipeline (first set at line 3)`}}},

		// Unknown keys, with suggestions.
		{"unknown top-level key", base + "pipline: {}\n", []wantErr{{5, 1, `unknown key "pipline" at top level (did you mean "pipeline"?)`}}},
		{"unknown pipeline key", "version: 1\npipeline:\n  trian: python train.py\n  metrics: [m.json]\n", []wantErr{
			{2, 1, `missing required key "train" in pipeline`},
			{3, 3, `unknown key "trian" in pipeline (did you mean "train"?)`},
		}},
		{"unknown key without a near match lists choices", base + "  gpu: 2\n", []wantErr{{5, 3, `unknown key "gpu" in pipeline (expected one of: train, evaluate, metrics, artifacts, timeout, paths, runner, queue, image, resources, network, examples)`}}},
		{"unknown metric key", base + "metrics:\n  acc: {goal: maximize, maxdrop: 0.1}\n", []wantErr{{6, 25, `unknown key "maxdrop" in metrics.acc (did you mean "max_drop"?)`}}},
		{"unknown deploy key", base + "deploy:\n  prod:\n    command: x\n    on-merge: true\n", []wantErr{{8, 5, `unknown key "on-merge" in deploy.prod (did you mean "on_merge"?)`}}},
		{"unknown verify key", base + "deploy:\n  prod:\n    command: x\n    verify: {query: up, min: 1, evry: 1m}\n", []wantErr{{8, 33, `unknown key "evry" in deploy.prod.verify (did you mean "every"?)`}}},
		{"unknown permissions key", base + "permissions:\n  ok-to-test: write\n", []wantErr{{6, 3, `unknown key "ok-to-test" in permissions (did you mean "ok_to_test"?)`}}},

		// Wrong types.
		{"string expected", "version: 1\npipeline:\n  train: [python, train.py]\n  metrics: [m.json]\n", []wantErr{{3, 10, "pipeline.train: string expected, got a list"}}},
		{"string expected in list", "version: 1\npipeline:\n  train: x\n  metrics: [m.json, {a: b}]\n", []wantErr{{4, 21, "pipeline.metrics[1]: string expected, got a mapping"}}},
		{"number expected", base + "metrics:\n  acc: {min: \"0.9\"}\n", []wantErr{{6, 14, `metrics.acc.min: number expected, got string "0.9"`}}},
		{"list expected", "version: 1\npipeline:\n  train: x\n  metrics: m.json\n", []wantErr{{4, 12, `pipeline.metrics: list expected, got string "m.json" (write [m.json])`}}},
		{"boolean expected", base + "deploy:\n  prod:\n    command: x\n    on_merge: yes\n", []wantErr{{8, 15, `deploy.prod.on_merge: boolean expected (true or false), got string "yes"`}}},
		{"mapping expected", base + "deploy: [prod]\n", []wantErr{{5, 9, "deploy: mapping expected, got a list"}}},
		{"metric spec of wrong kind", base + "metrics:\n  acc: [maximize]\n", []wantErr{{6, 8, "metrics.acc: mapping or goal expected"}}},

		// Version.
		{"version missing", "pipeline:\n  train: x\n  metrics: [m.json]\n", []wantErr{{1, 1, `missing required key "version" (add "version: 1")`}}},
		{"version 2", strings.Replace(base, "version: 1", "version: 2", 1), []wantErr{{1, 10, "version: unsupported version 2; this mlbot understands version 1"}}},
		{"version not a number", strings.Replace(base, "version: 1", `version: "1"`, 1), []wantErr{{1, 10, `version: whole number expected, got string "1"`}}},
		{"version null", strings.Replace(base, "version: 1", "version:", 1), []wantErr{{1, 1, "version: a value is required"}}},

		// Pipeline requirements.
		{"pipeline missing", "version: 1\n", []wantErr{{1, 1, `missing required key "pipeline" at top level`}}},
		{"train missing", "version: 1\npipeline:\n  metrics: [m.json]\n", []wantErr{{2, 1, `missing required key "train" in pipeline`}}},
		{"train empty", "version: 1\npipeline:\n  train:\n  metrics: [m.json]\n", []wantErr{{3, 3, "pipeline.train: a value is required"}}},
		{"metrics missing", "version: 1\npipeline:\n  train: x\n", []wantErr{{2, 1, `missing required key "metrics" in pipeline`}}},
		{"metrics empty", "version: 1\npipeline:\n  train: x\n  metrics: []\n", []wantErr{{4, 12, "pipeline.metrics: at least one metrics file is required"}}},
		{"metrics path outside checkout", "version: 1\npipeline:\n  train: x\n  metrics: [../secret.json, /etc/passwd]\n", []wantErr{
			{4, 13, `pipeline.metrics: "../secret.json" must stay inside the checkout`},
			{4, 29, `pipeline.metrics: "/etc/passwd" must be relative to the checkout`},
		}},
		{"pipeline not a mapping", "version: 1\npipeline: python train.py\n", []wantErr{{2, 11, `pipeline: mapping expected, got string "python train.py"`}}},
		{"timeout unparsable", base + "  timeout: 2 hours\n", []wantErr{{5, 12, `pipeline.timeout: invalid duration "2 hours"`}}},
		{"timeout without unit", base + "  timeout: 3600\n", []wantErr{{5, 12, `pipeline.timeout: invalid duration "3600"`}}},
		{"timeout zero", base + "  timeout: 0s\n", []wantErr{{5, 12, "pipeline.timeout: must be positive, got 0s"}}},
		{"timeout negative", base + "  timeout: -1h\n", []wantErr{{5, 12, "pipeline.timeout: must be positive, got -1h0m0s"}}},
		{"timeout too long", base + "  timeout: 169h\n", []wantErr{{5, 12, "pipeline.timeout: 169h0m0s is longer than the limit of 7 days"}}},
		{"runner unknown", base + "  runner: dokcer\n", []wantErr{{5, 11, `pipeline.runner: unknown runner "dokcer" (did you mean "docker"?)`}}},
		{"runner unknown without near match", base + "  runner: slurm\n", []wantErr{{5, 11, `unknown runner "slurm" (expected one of: local, docker, kubernetes)`}}},
		{"network unknown", base + "  network: host\n", []wantErr{{5, 12, `pipeline.network: "host" is not a network mode (none or default)`}}},
		{"queue invalid", base + "  queue: GPU pool\n", []wantErr{{5, 10, `pipeline.queue: "GPU pool" is not a queue name`}}},
		{"bad path glob", base + "  paths: [\"model/[a\"]\n", []wantErr{{5, 11, `pipeline.paths: "model/[a": bad pattern segment "[a"`}}},

		// Metrics.
		{"goal invalid", base + "metrics:\n  acc: {goal: maximise}\n", []wantErr{{6, 15, `metrics.acc.goal: goal must be maximize or minimize, got "maximise" (did you mean "maximize"?)`}}},
		{"bare goal invalid", base + "metrics:\n  loss: lower\n", []wantErr{{6, 9, `metrics.loss: goal must be maximize or minimize, got "lower"`}}},
		{"max_drop negative", base + "metrics:\n  acc: {goal: maximize, max_drop: -0.1}\n", []wantErr{{6, 35, "metrics.acc.max_drop: must not be negative, got -0.1"}}},
		{"max_drop without goal", base + "metrics:\n  acc: {max_drop: 0.1}\n", []wantErr{{6, 19, "metrics.acc.max_drop: needs a goal"}}},
		{"min greater than max", base + "metrics:\n  acc:\n    min: 0.9\n    max: 0.5\n", []wantErr{{7, 10, "metrics.acc: min 0.9 is greater than max 0.5 (at line 8)"}}},
		{"non-finite bound", base + "metrics:\n  acc: {min: .nan}\n", []wantErr{{6, 14, "metrics.acc.min: finite number expected"}}},

		// Permissions.
		{"permission level invalid", base + "permissions:\n  deploy: maintainer\n", []wantErr{{6, 11, `permissions.deploy: unknown permission level "maintainer" (did you mean "maintain"?)`}}},
		{"permission level wrong type", base + "permissions:\n  retrain: 3\n", []wantErr{{6, 12, `permissions.retrain: unknown permission level "3"`}}},

		// Deploy.
		{"deploy env without command", base + "deploy:\n  staging:\n    from_pr: true\n", []wantErr{{6, 3, `missing required key "command" in deploy.staging`}}},
		{"deploy env null", base + "deploy:\n  staging:\n", []wantErr{{6, 3, `missing required key "command" in deploy.staging`}}},
		{"deploy env bad name", base + "deploy:\n  my env:\n    command: x\n", []wantErr{{6, 3, `deploy: environment name "my env" must start with a letter or digit`}}},
		{"deploy url not absolute", base + "deploy:\n  prod:\n    command: x\n    url: models.example.com\n", []wantErr{{8, 10, `deploy.prod.url: "models.example.com" is not an absolute http:// or https:// URL`}}},
		{"verify without query", base + "deploy:\n  prod:\n    command: x\n    verify: {max: 0.01}\n", []wantErr{{8, 5, `missing required key "query" in deploy.prod.verify`}}},
		{"verify without bounds", base + "deploy:\n  prod:\n    command: x\n    verify:\n      query: up\n", []wantErr{{8, 5, "deploy.prod.verify: set min, max or both"}}},
		{"verify min greater than max", base + "deploy:\n  prod:\n    command: x\n    verify: {query: up, min: 2, max: 1}\n", []wantErr{{8, 30, "deploy.prod.verify: min 2 is greater than max 1"}}},
		{"verify bad every", base + "deploy:\n  prod:\n    command: x\n    verify: {query: up, max: 1, every: 0s}\n", []wantErr{{8, 40, "deploy.prod.verify.every: must be positive"}}},

		// Secrets.
		{"secret name invalid", base + "secrets: [HF_TOKEN, my-token]\n", []wantErr{{5, 21, `secrets: "my-token" is not an environment variable name`}}},
		{"secrets not a list", base + "secrets: HF_TOKEN\n", []wantErr{{5, 10, `secrets: list expected, got string "HF_TOKEN" (write [HF_TOKEN])`}}},

		// Several errors come back together, in file order.
		{"all errors at once", `version: 3
pipeline:
  trian: x
  metrics: []
  runner: gpu
metrics:
  acc: {goal: up}
`, []wantErr{
			{1, 10, "unsupported version 3"},
			{2, 1, `missing required key "train" in pipeline`},
			{3, 3, `unknown key "trian"`},
			{4, 12, "at least one metrics file"},
			{5, 11, `unknown runner "gpu"`},
			{7, 15, "goal must be maximize or minimize"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseRepoConfig(".mlbot.yml", []byte(tt.input))
			if err == nil {
				t.Fatalf("ParseRepoConfig succeeded (%+v), want errors", c)
			}
			if c != nil {
				t.Errorf("config = %+v, want nil on error", c)
			}
			var errs ConfigErrors
			if !errors.As(err, &errs) {
				t.Fatalf("error %T is not ConfigErrors: %v", err, err)
			}
			if len(errs) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(tt.want), err)
			}
			for i, w := range tt.want {
				e := errs[i]
				if e.File != ".mlbot.yml" || e.Line != w.line || e.Col != w.col || !strings.Contains(e.Msg, w.msg) {
					t.Errorf("error %d = %q\nwant .mlbot.yml:%d:%d: ...%s...", i, e.Error(), w.line, w.col, w.msg)
				}
			}
		})
	}
}

func TestConfigErrorFormat(t *testing.T) {
	_, err := ParseRepoConfig("repo/.mlbot.yml", []byte("version: 1\npipeline:\n  trian: x\n"))
	want := "repo/.mlbot.yml:2:1: missing required key \"train\" in pipeline\n" +
		"repo/.mlbot.yml:2:1: missing required key \"metrics\" in pipeline\n" +
		"repo/.mlbot.yml:3:3: unknown key \"trian\" in pipeline (did you mean \"train\"?)"
	if err == nil || err.Error() != want {
		t.Fatalf("error =\n%v\nwant\n%s", err, want)
	}
	var one *ConfigError
	if !errors.As(err, &one) || one.Line != 2 {
		t.Errorf("errors.As(*ConfigError) = %v", one)
	}
}

func TestParseRepoConfigHostileInput(t *testing.T) {
	// Each level merges the previous one twice: 2^30 keys if expanded naively.
	var b strings.Builder
	b.WriteString(base + "metrics:\n  m0: &m0 {goal: maximize}\n")
	for i := 1; i <= 30; i++ {
		b.WriteString("  m" + itoa(i) + ": &m" + itoa(i) + " {<<: [*m" + itoa(i-1) + ", *m" + itoa(i-1) + "]}\n")
	}
	done := make(chan error, 1)
	go func() {
		_, err := ParseRepoConfig(".mlbot.yml", []byte(b.String()))
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "merge keys nested more than") {
			t.Errorf("error = %v, want a merge depth error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ParseRepoConfig did not bound alias expansion")
	}

	big := make([]byte, maxRepoConfigBytes+1)
	if _, err := ParseRepoConfig(".mlbot.yml", big); err == nil || !strings.Contains(err.Error(), "the limit is") {
		t.Errorf("oversized file: error = %v", err)
	}

	var many strings.Builder
	many.WriteString(base)
	for i := range 200 {
		many.WriteString("  bogus" + itoa(i) + ": 1\n")
	}
	_, err := ParseRepoConfig(".mlbot.yml", []byte(many.String()))
	var errs ConfigErrors
	if !errors.As(err, &errs) || len(errs) != maxErrors+1 || !strings.Contains(errs[maxErrors].Msg, "150 more not shown") {
		t.Errorf("many errors: got %d errors, last %v", len(errs), errs[len(errs)-1])
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestDigest(t *testing.T) {
	digest := func(s string) string {
		t.Helper()
		c, err := ParseRepoConfig(RepoConfigFile, []byte(s))
		if err != nil {
			t.Fatalf("ParseRepoConfig: %v", err)
		}
		return c.Digest()
	}
	orig := digest(base + "metrics:\n  acc: {goal: maximize, min: 0.9}\n")
	if len(orig) != 64 {
		t.Fatalf("Digest = %q, want 64 hex digits", orig)
	}
	tests := []struct {
		name  string
		input string
		same  bool
	}{
		{"identical", base + "metrics:\n  acc: {goal: maximize, min: 0.9}\n", true},
		{"comments and whitespace", "# mlbot\nversion: 1   # schema\n\npipeline:\n    train:   python train.py\n    metrics:\n      - metrics.json\nmetrics:\n    acc:\n      min: 0.90\n      goal: maximize\n", true},
		{"explicit defaults", base + "  timeout: 60m\n  runner: local\nmetrics:\n  acc: {goal: maximize, min: 0.9}\n", true},
		{"changed gate", base + "metrics:\n  acc: {goal: maximize, min: 0.91}\n", false},
		{"changed command", strings.Replace(base, "train.py", "train2.py", 1) + "metrics:\n  acc: {goal: maximize, min: 0.9}\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := digest(tt.input); (got == orig) != tt.same {
				t.Errorf("Digest = %s, original %s; want same=%v", got, orig, tt.same)
			}
		})
	}
	if (*RepoConfig)(nil).Digest() != "" {
		t.Error("nil Digest not empty")
	}
}

func TestNeedsRun(t *testing.T) {
	paths := []string{"model/**", "data/*.csv", ".mlbot.yml", "**/requirements.txt", "./src/**/*.py"}
	tests := []struct {
		name    string
		paths   []string
		changed []string
		want    bool
	}{
		{"no paths means always", nil, []string{"README.md"}, true},
		{"no paths, no changes", nil, nil, true},
		{"nothing changed", paths, nil, false},
		{"unrelated file", paths, []string{"README.md", "docs/x.md"}, false},
		{"** matches deep", paths, []string{"model/layers/attn.py"}, true},
		{"** matches one level", paths, []string{"model/net.py"}, true},
		{"* stays in its segment", paths, []string{"data/raw/train.csv"}, false},
		{"* within segment", paths, []string{"data/train.csv"}, true},
		{"literal file", paths, []string{".mlbot.yml"}, true},
		{"leading ** matches at root", paths, []string{"requirements.txt"}, true},
		{"leading ** matches deep", paths, []string{"a/b/requirements.txt"}, true},
		{"./ prefix on pattern", paths, []string{"src/pkg/m.py"}, true},
		{"** between segments matches zero", paths, []string{"src/m.py"}, true},
		{"./ prefix on change", paths, []string{"./model/net.py"}, true},
		{"case sensitive", paths, []string{"Model/net.py"}, false},
		{"prefix is not a match", paths, []string{"models/net.py"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (Pipeline{Paths: tt.paths}).NeedsRun(tt.changed); got != tt.want {
				t.Errorf("NeedsRun(%v) with %v = %v, want %v", tt.changed, tt.paths, got, tt.want)
			}
		})
	}
}

func TestMatchGlobIsNotExponential(t *testing.T) {
	pattern := strings.Repeat("**/a/", 40) + "b"
	name := strings.Repeat("a/", 200) + "c"
	start := time.Now()
	if matchGlob(pattern, name) {
		t.Fatal("unexpected match")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("matchGlob took %v", d)
	}
}
