package configs

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// setting describes one Server field that can come from a flag, an
// environment variable and the config file. The env var and file key are
// derived from the flag name so the three can never drift apart.
type setting struct {
	// flag is the kebab-case flag name, such as "redis-url".
	flag string
	// help is the flag's description; a back-quoted word in it names the
	// flag's argument in -help output, as the flag package does.
	help string
	// def overrides the default shown in help when the zero-valued field
	// does not say it well.
	def string
	// field returns a pointer to the Server field the setting fills.
	field func(*Server) any
	// bytes parses an integer that may carry a KiB/MiB/GiB suffix.
	bytes bool
}

// envName is the environment variable of a setting: "redis-url" is
// MLBOT_REDIS_URL.
func (st setting) envName() string {
	return "MLBOT_" + strings.ToUpper(strings.ReplaceAll(st.flag, "-", "_"))
}

// fileKey is the config file key of a setting: "redis-url" is redis_url.
func (st setting) fileKey() string {
	return strings.ReplaceAll(st.flag, "-", "_")
}

// Names of settings handled outside the table: the config file cannot name
// itself, and secrets have no flag so they never appear in a process list.
const (
	configFlag    = "config"
	configEnv     = "MLBOT_CONFIG"
	secretsEnv    = "MLBOT_SECRETS"
	secretsKey    = "secrets"
	defaultListen = ":8080"
)

var serverSettings = []setting{
	{flag: "listen", help: "HTTP listen `address`", field: func(s *Server) any { return &s.Listen }},
	{flag: "public-url", help: "`URL` at which users and code hosts reach mlbot, used in run-page links", def: "http://localhost plus the port of --listen", field: func(s *Server) any { return &s.PublicURL }},
	{flag: "redis-url", help: "Redis `URL` (redis://, rediss://, unix://, redis+sentinel://host1:26379,host2:26379/mastername[/db] or redis+cluster://host1:6379,host2:6379)", def: "an in-process Redis whose state is lost on restart", field: func(s *Server) any { return &s.RedisURL }},
	{flag: "data-dir", help: "`directory` for checkouts and run workspaces", field: func(s *Server) any { return &s.DataDir }},
	{flag: "repo-allowlist", help: "comma-separated `globs` of repositories to serve, such as github.com/acme/* (* is one path segment, ** any number)", def: "none; required unless --allow-all-repos", field: func(s *Server) any { return &s.RepoAllowlist }},
	{flag: "allow-all-repos", help: "serve every repository that sends a correctly signed webhook", field: func(s *Server) any { return &s.AllowAllRepos }},
	{flag: "github-api-url", help: "GitHub REST API base `URL` (GitHub Enterprise: https://HOST/api/v3/)", field: func(s *Server) any { return &s.GitHubAPIURL }},
	{flag: "github-token", help: "GitHub access `token`; prefer the env var, flags show in process lists", field: func(s *Server) any { return &s.GitHubToken }},
	{flag: "github-app-id", help: "GitHub App `id`, instead of a token", field: func(s *Server) any { return &s.GitHubAppID }},
	{flag: "github-app-private-key-file", help: "PEM `file` holding the GitHub App's private key", field: func(s *Server) any { return &s.GitHubAppPrivateKeyFile }},
	{flag: "github-webhook-secret", help: "`secret` that GitHub webhooks are signed with; prefer the env var", field: func(s *Server) any { return &s.GitHubWebhookSecret }},
	{flag: "gitlab-url", help: "GitLab instance `URL`", field: func(s *Server) any { return &s.GitLabURL }},
	{flag: "gitlab-token", help: "GitLab access `token`; prefer the env var, flags show in process lists", field: func(s *Server) any { return &s.GitLabToken }},
	{flag: "gitlab-webhook-secret", help: "`secret` token of GitLab webhooks; prefer the env var", field: func(s *Server) any { return &s.GitLabWebhookSecret }},
	{flag: "insecure-no-webhook-secret", help: "accept unsigned webhooks (local testing only: anyone reaching the endpoint can run code)", field: func(s *Server) any { return &s.InsecureNoWebhookSecret }},
	{flag: "concurrency", help: "`number` of pipelines this process runs at once", field: func(s *Server) any { return &s.Concurrency }},
	{flag: "event-concurrency", help: "`number` of webhook events and reports this process handles at once (each waits mostly on the code host)", field: func(s *Server) any { return &s.EventConcurrency }},
	{flag: "queues", help: "comma-separated pipeline `queues` this worker serves", field: func(s *Server) any { return &s.Queues }},
	{flag: "log-level", help: "log `level`: debug, info, warn or error", field: func(s *Server) any { return &s.LogLevel }},
	{flag: "log-format", help: "log `format`: text or json", field: func(s *Server) any { return &s.LogFormat }},
	{flag: "max-pipeline-timeout", help: "upper bound on any .mlbot.yml pipeline timeout (a `duration` such as 24h)", field: func(s *Server) any { return &s.MaxPipelineTimeout }},
	{flag: "fifo-pipelines", help: "queue pipeline runs first come, first served instead of taking repositories in turns", field: func(s *Server) any { return &s.FIFOPipelines }},
	{flag: "task-check-interval", help: "how often an idle worker polls for tasks (a `duration`)", field: func(s *Server) any { return &s.TaskCheckInterval }},
	{flag: "shutdown-timeout", help: "how long running tasks may finish on shutdown before being requeued (a `duration`)", field: func(s *Server) any { return &s.ShutdownTimeout }},
	{flag: "prometheus-url", help: "Prometheus server `URL` that checks deploys with a verify: block", field: func(s *Server) any { return &s.PrometheusURL }},
	{flag: "retry-base", help: "first delay before a failed task is retried; it doubles per attempt (a `duration`)", field: func(s *Server) any { return &s.RetryBase }},
	{flag: "reconcile-interval", help: "how often open pull/merge requests and default-branch heads are listed to catch up lost webhooks (a `duration`; 0 turns it off)", field: func(s *Server) any { return &s.ReconcileInterval }},
	{flag: "max-webhook-bytes", help: "largest webhook body accepted, in `bytes` (suffixes KiB, MiB, GiB allowed)", def: "25MiB, GitHub's own cap", field: func(s *Server) any { return &s.MaxWebhookBytes }, bytes: true},
	{flag: "unsafe-no-sandbox", help: "run steps as plain processes of mlbot's user, without the namespace sandbox (only where namespaces cannot be made, never with untrusted code)", field: func(s *Server) any { return &s.UnsafeNoSandbox }},
	{flag: "deploy-paths", help: "comma-separated host `directories` that deploy commands may write (in the sandbox they see nothing else of the host's files but the read-only system)", field: func(s *Server) any { return &s.DeployPaths }},
	{flag: "sandbox-uid", help: "host `uid` that sandboxed steps run as when mlbot runs as root", field: func(s *Server) any { return &s.SandboxUID }},
	{flag: "sandbox-memory", help: "memory limit of one step, in `bytes` (suffixes KiB, MiB, GiB allowed)", def: "three quarters of the machine's memory", field: func(s *Server) any { return &s.SandboxMemory }, bytes: true},
	{flag: "sandbox-cpu", help: "CPU time limit of each process of a step (a `duration`)", field: func(s *Server) any { return &s.SandboxCPU }},
	{flag: "sandbox-processes", help: "limit on the processes and threads of one step (a `number`)", field: func(s *Server) any { return &s.SandboxProcesses }},
	{flag: "max-artifact-bytes", help: "largest artifact a run may record, in `bytes` (suffixes KiB, MiB, GiB allowed); a larger one fails the run", def: "2GiB", field: func(s *Server) any { return &s.MaxArtifactBytes }, bytes: true},
	{flag: "max-run-artifact-bytes", help: "largest total of one run's artifacts, in `bytes` (suffixes KiB, MiB, GiB allowed)", def: "10GiB", field: func(s *Server) any { return &s.MaxRunArtifactBytes }, bytes: true},
	{flag: "task-key", help: "`key` (32 characters or more) that signs mlbot's tasks in Redis; every process of an install needs the same; prefer the env var", def: "a random key kept in --data-dir/task.key", field: func(s *Server) any { return &s.TaskKey }},
	{flag: "runners", help: "comma-separated `runners` that .mlbot.yml may choose: local, docker, kubernetes", field: func(s *Server) any { return &s.Runners }},
	{flag: "agent-binary", help: "statically linked mlbot `file` that the docker and kubernetes runners inject to run `mlbot agent`", def: "this mlbot's own executable", field: func(s *Server) any { return &s.AgentBinary }},
	{flag: "docker-images", help: "comma-separated image `globs` the docker runner may run, such as pytorch/pytorch:* (none: it runs nothing)", field: func(s *Server) any { return &s.Docker.Images }},
	{flag: "docker-max-cpu", help: "most CPU one docker run may ask for (a `quantity` such as 8 or 500m)", def: "no bound", field: func(s *Server) any { return &s.Docker.MaxCPU }},
	{flag: "docker-max-memory", help: "most memory one docker run may ask for, in `bytes` (suffixes KiB, MiB, GiB allowed); also the default limit", def: "no bound", field: func(s *Server) any { return &s.Docker.MaxMemory }, bytes: true},
	{flag: "docker-max-gpus", help: "most GPUs one docker run may ask for (a `number`)", field: func(s *Server) any { return &s.Docker.MaxGPUs }},
	{flag: "k8s-images", help: "comma-separated image `globs` the kubernetes runner may run (none: it runs nothing)", field: func(s *Server) any { return &s.K8s.Images }},
	{flag: "k8s-max-cpu", help: "most CPU one kubernetes run may ask for (a `quantity` such as 8 or 500m)", def: "no bound", field: func(s *Server) any { return &s.K8s.MaxCPU }},
	{flag: "k8s-max-memory", help: "most memory one kubernetes run may ask for, in `bytes` (suffixes KiB, MiB, GiB allowed); also the default limit", def: "no bound", field: func(s *Server) any { return &s.K8s.MaxMemory }, bytes: true},
	{flag: "k8s-max-gpus", help: "most GPUs one kubernetes run may ask for (a `number`)", field: func(s *Server) any { return &s.K8s.MaxGPUs }},
	{flag: "k8s-namespace", help: "`namespace` of the runs' Jobs", field: func(s *Server) any { return &s.K8s.Namespace }},
	{flag: "k8s-service-account", help: "service `account` of the runs' pods (its token is never mounted)", field: func(s *Server) any { return &s.K8s.ServiceAccount }},
	{flag: "k8s-runtime-class", help: "runtime `class` of the runs' pods, such as gvisor or nvidia", field: func(s *Server) any { return &s.K8s.RuntimeClass }},
	{flag: "k8s-image-pull-secrets", help: "comma-separated `secrets` the runs' pods pull images with", field: func(s *Server) any { return &s.K8s.ImagePullSecrets }},
	{flag: "k8s-pending-timeout", help: "how long a run's pod may wait to be scheduled before the run fails (a `duration`)", field: func(s *Server) any { return &s.K8s.PendingTimeout }},
	{flag: "k8s-agent-image", help: "mlbot `image` whose binary the runs' init container copies into the pod", field: func(s *Server) any { return &s.K8s.AgentImage }},
	{flag: "k8s-agent-url", help: "`URL` at which pods reach mlbot", def: "MLBOT_PUBLIC_URL", field: func(s *Server) any { return &s.K8s.AgentURL }},
	{flag: "k8s-kubeconfig", help: "kubeconfig `file` of the cluster", def: "the in-cluster service account", field: func(s *Server) any { return &s.K8s.Kubeconfig }},
	{flag: "ui-auth", help: "who may open the web pages: `mode` oauth (people who log in with GitHub or GitLab and may read the repository there) or none (anyone who reaches the port)", def: "oauth when an OAuth client is configured, otherwise none", field: func(s *Server) any { return &s.UIAuth }},
	{flag: "github-oauth-client-id", help: "client `id` of the GitHub OAuth app people log in to the pages with (callback <public URL>/login/github/callback)", field: func(s *Server) any { return &s.GitHubOAuthClientID }},
	{flag: "github-oauth-client-secret", help: "client `secret` of the GitHub OAuth app; prefer the env var", field: func(s *Server) any { return &s.GitHubOAuthClientSecret }},
	{flag: "gitlab-oauth-client-id", help: "application `id` of the GitLab OAuth application people log in to the pages with (scope read_user, redirect URI <public URL>/login/gitlab/callback)", field: func(s *Server) any { return &s.GitLabOAuthClientID }},
	{flag: "gitlab-oauth-client-secret", help: "`secret` of the GitLab OAuth application; prefer the env var", field: func(s *Server) any { return &s.GitLabOAuthClientSecret }},
	{flag: "api-token", help: "bearer `token` that /api/v1 requires (16 characters or more); prefer the env var", def: "none: the API is off", field: func(s *Server) any { return &s.APIToken }},
	{flag: "metrics-token", help: "bearer `token` that GET /metrics requires (16 characters or more); prefer the env var", def: "none: /metrics is open", field: func(s *Server) any { return &s.MetricsToken }},
	{flag: "retention-deploys", help: "`number` of the newest successful deploys of each environment whose versions are kept as rollback targets (the running version is always kept)", field: func(s *Server) any { return &s.Retention.Deploys }},
	{flag: "retention-main", help: "`number` of the newest default-branch model versions kept", field: func(s *Server) any { return &s.Retention.Main }},
	{flag: "retention-days", help: "model versions recorded within this many `days` are kept", field: func(s *Server) any { return &s.Retention.Days }},
	{flag: "retention-interval", help: "how often the collector drops the versions no rule keeps and deletes the artifacts nothing names (a `duration`; 0 turns it off)", field: func(s *Server) any { return &s.Retention.Interval }},
}

// defaultServer returns a Server holding every default. PublicURL stays
// empty here because its default depends on the final Listen.
func defaultServer() *Server {
	return &Server{
		Listen:             defaultListen,
		DataDir:            filepath.Join(os.TempDir(), "mlbot"),
		GitHubAPIURL:       "https://api.github.com/",
		GitLabURL:          "https://gitlab.com",
		Concurrency:        2,
		EventConcurrency:   32,
		Queues:             []string{"default"},
		LogLevel:           "info",
		LogFormat:          "text",
		MaxPipelineTimeout: 24 * time.Hour,
		TaskCheckInterval:  20 * time.Millisecond,
		ShutdownTimeout:    30 * time.Second,
		RetryBase:          2 * time.Second,
		ReconcileInterval:  10 * time.Minute,
		MaxWebhookBytes:    25 << 20,
		SandboxUID:         200000,
		SandboxCPU:         48 * time.Hour,
		SandboxProcesses:   4096,
		// Artifacts are models: a few GiB is a large one, and the store
		// keeps every version.
		MaxArtifactBytes:    2 << 30,
		MaxRunArtifactBytes: 10 << 30,
		Runners:             []string{"local"},
		K8s:                 Kubernetes{PendingTimeout: 10 * time.Minute},
		Retention:           defaultRetention,
	}
}

// defaultRetention is what the registry keeps unless MLBOT_RETENTION_*
// say otherwise: rollback targets of the last 10 deploys per environment,
// the last 20 default-branch versions, everything of the last 30 days,
// collected hourly.
var defaultRetention = Retention{Deploys: 10, Main: 20, Days: 30, Interval: time.Hour}

// ServerFlags holds the flags NewServerFlags registered, so that Load can
// tell a flag given on the command line from one left at its default.
type ServerFlags struct {
	config *flagValue
	values []*flagValue // parallel to serverSettings
}

// flagValue records a flag's raw text. Parsing waits for Load so that one
// parser, with one error message naming both flag and env var, serves flags,
// env vars and the config file alike.
type flagValue struct {
	value  string
	set    bool
	isBool bool
	isList bool
}

func (v *flagValue) String() string {
	if v == nil {
		return ""
	}
	return v.value
}

// Set records the flag's text; a list flag given twice keeps both values,
// so "--queues gpu --queues cpu" means "gpu,cpu".
func (v *flagValue) Set(s string) error {
	if v.isList && v.set && v.value != "" {
		s = v.value + "," + s
	}
	v.value, v.set = s, true
	return nil
}

// IsBoolFlag lets boolean flags be given without a value, as in
// --allow-all-repos.
func (v *flagValue) IsBoolFlag() bool { return v.isBool }

// NewServerFlags registers one flag per Server setting on fs, plus --config.
// Each help text names the setting's environment variable and default. Call
// Load after fs.Parse.
func NewServerFlags(fs *flag.FlagSet) *ServerFlags {
	f := &ServerFlags{config: &flagValue{}}
	fs.Var(f.config, configFlag, fmt.Sprintf("optional YAML `file` of settings whose keys are the env var names without MLBOT_, in lower case, such as listen or repo_allowlist (env %s, default none)", configEnv))
	defaults := defaultServer()
	for _, st := range serverSettings {
		v := &flagValue{}
		switch st.field(defaults).(type) {
		case *bool:
			v.isBool = true
		case *[]string:
			v.isList = true
		}
		def := st.def
		if def == "" {
			def = formatDefault(st.field(defaults))
		}
		fs.Var(v, st.flag, fmt.Sprintf("%s (env %s, default %s)", st.help, st.envName(), def))
		f.values = append(f.values, v)
	}
	return f
}

func formatDefault(p any) string {
	switch p := p.(type) {
	case *string:
		if *p == "" {
			return "none"
		}
		return strconv.Quote(*p)
	case *[]string:
		return strconv.Quote(strings.Join(*p, ","))
	case *bool:
		return strconv.FormatBool(*p)
	case *int:
		return strconv.Itoa(*p)
	case *int64:
		if *p == 0 {
			return "none"
		}
		return strconv.FormatInt(*p, 10)
	case *time.Duration:
		return p.String()
	}
	return fmt.Sprint(p)
}

// Load assembles the Server: a flag given on the command line beats its
// MLBOT_* environment variable, which beats the config file (--config or
// MLBOT_CONFIG), which beats the default. An environment variable set to the
// empty string counts as unset. getenv is normally os.Getenv; tests pass a
// map lookup. Load reports every malformed value, naming its flag, env var or
// file position, but leaves policy checks to Validate.
func (f *ServerFlags) Load(getenv func(string) string) (*Server, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	s := defaultServer()
	s.ConfigFile = getenv(configEnv)
	if f.config.set {
		s.ConfigFile = f.config.value
	}
	d := newDecoder(s.ConfigFile)
	var file map[string]pair
	if s.ConfigFile != "" {
		var err error
		if file, err = readServerFile(d, s.ConfigFile); err != nil {
			return nil, err
		}
	}

	var errs []error
	for i, st := range serverSettings {
		ptr := st.field(s)
		_, isList := ptr.(*[]string)
		var raw, source string
		var items []string
		switch fv, env := f.values[i], getenv(st.envName()); {
		case fv.set:
			raw, source = fv.value, fmt.Sprintf("flag --%s (env %s)", st.flag, st.envName())
		case env != "":
			raw, source = env, fmt.Sprintf("env %s (flag --%s)", st.envName(), st.flag)
		default:
			p, ok := file[st.fileKey()]
			if !ok || isNull(p.value) {
				continue
			}
			var good bool
			if raw, items, good = d.fileValue(p, isList); !good {
				continue
			}
			if err := assign(ptr, raw, items, st.bytes); err != nil {
				d.errorf(p.value, "%s: %v (flag --%s, env %s)", st.fileKey(), err, st.flag, st.envName())
			}
			continue
		}
		if err := assign(ptr, raw, nil, st.bytes); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", source, err))
		}
	}
	if err := loadSecrets(s, d, file, getenv); err != nil {
		errs = append(errs, err)
	}
	if err := d.finish(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	if s.PublicURL == "" {
		s.PublicURL = publicURLFor(s.Listen)
	}
	if s.UIAuth == "" {
		// Configuring a login turns it on; without one the pages stay
		// open as before, and serve says so loudly.
		s.UIAuth = UIAuthNone
		if s.OAuthConfigured() {
			s.UIAuth = UIAuthOAuth
		}
	}
	// go-github resolves API paths against the base URL, which only works
	// when it ends in a slash; GitLab URLs are joined by string, which wants
	// none.
	if s.GitHubAPIURL != "" && !strings.HasSuffix(s.GitHubAPIURL, "/") {
		s.GitHubAPIURL += "/"
	}
	s.GitLabURL = strings.TrimRight(s.GitLabURL, "/")
	return s, nil
}

// readServerFile parses the config file into its top-level pairs, reporting
// unknown keys with a suggestion.
func readServerFile(d *decoder, name string) (map[string]pair, error) {
	data, info, err := readFileInfo(name)
	if err != nil {
		return nil, fmt.Errorf("reading config file (--%s, %s): %w", configFlag, configEnv, err)
	}
	root, ok := d.parseDocument(data)
	if !ok {
		return nil, d.finish()
	}
	if root == nil {
		return nil, nil // an empty file sets nothing, which is not an error
	}
	ps, ok := d.mapping(root, "")
	if !ok {
		return nil, d.finish()
	}
	keys := []string{secretsKey}
	for _, st := range serverSettings {
		keys = append(keys, st.fileKey())
	}
	out := make(map[string]pair, len(ps))
	for _, p := range ps {
		key := resolve(p.key).Value
		if indexOf(keys, key) < 0 {
			d.errorf(p.key, "unknown key %q in config file%s", key, suggestOnly(key, keys))
			continue
		}
		out[key] = p
	}
	// Unknown keys stop the load: a misspelt "webhook_secret" silently
	// ignored would leave the server less safe than its operator believes.
	if err := d.finish(); err != nil {
		return nil, err
	}
	// A file holding a credential must be private, as ssh insists for a
	// private key; one without may be shared.
	if key := heldSecret(out); key != "" {
		if err := CheckPrivateMode(name, "config file", info); err != nil {
			return nil, fmt.Errorf("%w (the file holds %s)", err, key)
		}
	}
	return out, nil
}

// fileValue turns a config file value into the raw text an env var would
// hold, or into items for a YAML list.
func (d *decoder) fileValue(p pair, isList bool) (raw string, items []string, ok bool) {
	key := resolve(p.key).Value
	v := resolve(p.value)
	switch {
	case v.Kind == yaml.ScalarNode:
		return v.Value, nil, true
	case v.Kind == yaml.SequenceNode && isList:
		items, ok := d.strList(p.value, key, nil)
		return "", items, ok
	case isList:
		d.errorf(p.value, "%s: list or comma-separated string expected, got %s", key, describe(p.value))
	default:
		d.errorf(p.value, "%s: single value expected, got %s", key, describe(p.value))
	}
	return "", nil, false
}

// assign parses raw (or items, for a YAML list) into the field ptr points to.
func assign(ptr any, raw string, items []string, bytes bool) error {
	switch p := ptr.(type) {
	case *string:
		*p = raw
	case *[]string:
		if items == nil {
			items = splitList(raw)
		}
		*p = items
	case *bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("invalid value %q: want true or false", raw)
		}
		*p = b
	case *int:
		n, err := strconv.Atoi(raw)
		if err != nil {
			return fmt.Errorf("invalid value %q: want a whole number", raw)
		}
		*p = n
	case *int64:
		var n int64
		var err error
		if bytes {
			n, err = parseBytes(raw)
		} else {
			n, err = strconv.ParseInt(raw, 10, 64)
		}
		if err != nil && bytes {
			return fmt.Errorf("invalid value %q: want a whole number with an optional KiB, MiB or GiB suffix", raw)
		}
		if err != nil {
			return fmt.Errorf("invalid value %q: want a whole number", raw)
		}
		*p = n
	case *time.Duration:
		t, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("invalid value %q: want a duration such as 30s, 5m or 24h", raw)
		}
		*p = t
	default:
		return fmt.Errorf("internal error: unsupported setting type %T", ptr)
	}
	return nil
}

// splitList splits a comma-separated value, dropping blanks so that
// "a, b," means [a b].
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// parseBytes parses "26214400", "25MiB" or "25 MB". Decimal and binary
// suffixes both mean powers of 1024, since nobody sizing a webhook limit
// means the difference.
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	num := strings.TrimRight(s, "KMGiBkmgib ")
	unit := strings.ToLower(strings.TrimSpace(s[len(num):]))
	mult := map[string]int64{"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
		"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("unknown unit %q", unit)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parsing %q: %w", s, err)
	}
	if n > math.MaxInt64/mult || n < math.MinInt64/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}

// publicURLFor derives the default public URL from the listen address, so
// that a local run links to a page that actually loads.
func publicURLFor(listen string) string {
	_, port, err := net.SplitHostPort(listen)
	if err != nil || port == "" {
		return "http://localhost"
	}
	return "http://localhost:" + port
}

// loadSecrets fills s.Secrets from the environment for the names listed in
// MLBOT_SECRETS, or else under the config file's "secrets" key.
func loadSecrets(s *Server, d *decoder, file map[string]pair, getenv func(string) string) error {
	var names []string
	source := secretsEnv
	if env := getenv(secretsEnv); env != "" {
		names = splitList(env)
	} else if p, ok := file[secretsKey]; ok && !isNull(p.value) {
		raw, items, ok := d.fileValue(p, true)
		if !ok {
			return nil // recorded in d with its position
		}
		if names = items; items == nil {
			names = splitList(raw)
		}
		source = fmt.Sprintf("%s:%d:%d: %s", s.ConfigFile, p.value.Line, p.value.Column, secretsKey)
	}
	var errs []error
	for _, name := range names {
		switch {
		case !envVarRE.MatchString(name):
			errs = append(errs, fmt.Errorf("%s: %q is not an environment variable name", source, name))
		case strings.HasPrefix(strings.ToUpper(name), "MLBOT_"):
			// mlbot's own settings include its tokens; handing them to
			// training code would let any trusted run act as the bot.
			errs = append(errs, fmt.Errorf("%s: %q is one of mlbot's own settings and cannot be passed to runs", source, name))
		default:
			v := getenv(name)
			if v == "" {
				errs = append(errs, fmt.Errorf("%s lists %s, but %s is not set in the environment", source, name, name))
				continue
			}
			if s.Secrets == nil {
				s.Secrets = make(map[string]string)
			}
			s.Secrets[name] = v
		}
	}
	return errors.Join(errs...)
}
