package configs

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Server is the configuration of one mlbot process, assembled by
// ServerFlags.Load from command-line flags, MLBOT_* environment variables, an
// optional YAML file and defaults, in that order of precedence.
//
// Each field's comment names its environment variable; the flag is the
// variable's name without MLBOT_, lowercased, with dashes (MLBOT_REDIS_URL is
// --redis-url) and the config file key is the same with underscores
// (redis_url).
type Server struct {
	// ConfigFile is the YAML file the other settings were read from, if any
	// (--config, MLBOT_CONFIG).
	ConfigFile string
	// Listen is the HTTP listen address (MLBOT_LISTEN, default ":8080").
	Listen string
	// PublicURL is the address users and code hosts reach the bot at, used
	// for run-page links (MLBOT_PUBLIC_URL, default http://localhost plus
	// the port of Listen).
	PublicURL string
	// RedisURL locates Redis (MLBOT_REDIS_URL); empty means an in-process
	// Redis whose state does not survive a restart.
	RedisURL string
	// DataDir holds checkouts and run workspaces (MLBOT_DATA_DIR, default
	// "mlbot" under os.TempDir(), which some systems clean on reboot).
	DataDir string
	// RepoAllowlist lists globs of repositories the bot serves, such as
	// "github.com/acme/*" (MLBOT_REPO_ALLOWLIST, comma-separated).
	RepoAllowlist []string
	// AllowAllRepos serves every repository that sends a signed webhook
	// (MLBOT_ALLOW_ALL_REPOS).
	AllowAllRepos bool
	// GitHubAPIURL is the GitHub REST API base URL, always ending in "/"
	// (MLBOT_GITHUB_API_URL, default "https://api.github.com/").
	GitHubAPIURL string
	// GitHubToken is a personal or bot access token (MLBOT_GITHUB_TOKEN).
	GitHubToken string
	// GitHubAppID is the GitHub App's id, the alternative to GitHubToken
	// (MLBOT_GITHUB_APP_ID).
	GitHubAppID int64
	// GitHubAppPrivateKeyFile is the PEM file of the GitHub App's private key
	// (MLBOT_GITHUB_APP_PRIVATE_KEY_FILE).
	GitHubAppPrivateKeyFile string
	// GitHubWebhookSecret verifies X-Hub-Signature-256
	// (MLBOT_GITHUB_WEBHOOK_SECRET).
	GitHubWebhookSecret string
	// GitLabURL is the GitLab instance, without a trailing slash
	// (MLBOT_GITLAB_URL, default "https://gitlab.com").
	GitLabURL string
	// GitLabToken is a GitLab access token (MLBOT_GITLAB_TOKEN).
	GitLabToken string
	// GitLabWebhookSecret verifies X-Gitlab-Token (MLBOT_GITLAB_WEBHOOK_SECRET).
	GitLabWebhookSecret string
	// InsecureNoWebhookSecret accepts unsigned webhooks; for local testing
	// only (MLBOT_INSECURE_NO_WEBHOOK_SECRET).
	InsecureNoWebhookSecret bool
	// Concurrency is how many pipelines this process runs at once
	// (MLBOT_CONCURRENCY, default 2).
	Concurrency int
	// EventConcurrency is how many webhook events and reports this process
	// handles at once (MLBOT_EVENT_CONCURRENCY, default 32). Each waits
	// mostly on the code host's API, so a burst of webhooks reaches its
	// pending statuses sooner with more; every process's count adds to the
	// concurrent requests the host sees (GitHub allows 100).
	EventConcurrency int
	// Queues lists the pipeline queues this worker serves (MLBOT_QUEUES,
	// comma-separated, default "default").
	Queues []string
	// LogLevel is debug, info, warn or error (MLBOT_LOG_LEVEL, default info).
	LogLevel string
	// LogFormat is text or json (MLBOT_LOG_FORMAT, default text).
	LogFormat string
	// MaxPipelineTimeout caps every .mlbot.yml pipeline timeout
	// (MLBOT_MAX_PIPELINE_TIMEOUT, default 24h).
	MaxPipelineTimeout time.Duration
	// FIFOPipelines queues pipeline runs first come, first served
	// (MLBOT_FIFO_PIPELINES), instead of taking repositories in turns: one
	// repository's burst of pull requests then delays every other's.
	FIFOPipelines bool
	// TaskCheckInterval is how often an idle worker polls for tasks
	// (MLBOT_TASK_CHECK_INTERVAL, default 20ms).
	TaskCheckInterval time.Duration
	// ShutdownTimeout is how long running tasks get to finish on shutdown
	// before they are requeued (MLBOT_SHUTDOWN_TIMEOUT, default 30s).
	ShutdownTimeout time.Duration
	// PrometheusURL is the Prometheus server that verifies deploys
	// (MLBOT_PROMETHEUS_URL); without it `verify:` blocks are skipped with a
	// note in the deploy's reply.
	PrometheusURL string
	// RetryBase is the first delay before a failed task (a host answering
	// 5xx, say) is retried; it doubles per attempt up to ten minutes, unless
	// the host named its own wait (MLBOT_RETRY_BASE, default 2s).
	RetryBase time.Duration
	// ReconcileInterval is how often the reconciler lists the open pull
	// and merge requests and the default branch's head of every repository
	// mlbot serves, and starts what a lost webhook left without a status
	// (MLBOT_RECONCILE_INTERVAL, default 10m; 0 turns it off).
	ReconcileInterval time.Duration
	// MaxWebhookBytes bounds a webhook body (MLBOT_MAX_WEBHOOK_BYTES,
	// default 25 MiB, GitHub's own cap).
	MaxWebhookBytes int64
	// UnsafeNoSandbox runs pipeline and deploy steps as plain processes of
	// mlbot's user instead of in a namespace sandbox: for hosts where
	// namespaces cannot be made, never with untrusted code
	// (MLBOT_UNSAFE_NO_SANDBOX, default false; logged loudly).
	UnsafeNoSandbox bool
	// DeployPaths lists host directories that deploy commands may write,
	// besides their own workspace (MLBOT_DEPLOY_PATHS, comma-separated
	// absolute paths; default none).
	DeployPaths []string
	// SandboxUID is the host uid steps run as when mlbot runs as root
	// (MLBOT_SANDBOX_UID, default 200000).
	SandboxUID int
	// SandboxMemory bounds the memory of one step, in bytes
	// (MLBOT_SANDBOX_MEMORY, default three quarters of the machine's).
	SandboxMemory int64
	// SandboxCPU bounds the CPU time of each process of a step
	// (MLBOT_SANDBOX_CPU, default 48h).
	SandboxCPU time.Duration
	// SandboxProcesses bounds the processes and threads of one step
	// (MLBOT_SANDBOX_PROCESSES, default 4096).
	SandboxProcesses int
	// MaxArtifactBytes bounds one artifact a run records; a larger one
	// fails the run (MLBOT_MAX_ARTIFACT_BYTES, default 2 GiB).
	MaxArtifactBytes int64
	// MaxRunArtifactBytes bounds all artifacts of one run together
	// (MLBOT_MAX_RUN_ARTIFACT_BYTES, default 10 GiB).
	MaxRunArtifactBytes int64
	// TaskKey signs every task mlbot puts in Redis; a task without a valid
	// signature is never run (MLBOT_TASK_KEY, at least 32 characters).
	// Unset, a random key is generated and kept in DataDir/task.key with
	// mode 0600, shared by every process using that data directory;
	// processes on other machines must all be given the same key.
	TaskKey string
	// APIToken is the bearer token that /api/v1 requires (MLBOT_API_TOKEN,
	// at least 16 characters); unset, the API is off and answers 404.
	APIToken string
	// MetricsToken is the bearer token that GET /metrics requires
	// (MLBOT_METRICS_TOKEN, at least 16 characters); unset, /metrics is
	// open to anyone who reaches the port, and its series name every
	// repository's deployed models and their metrics.
	MetricsToken string
	// UIAuth is who may open the web pages (MLBOT_UI_AUTH): "oauth", people
	// who log in with their GitHub or GitLab account and may read the
	// repository on the host, or "none", anyone who reaches the port.
	// Unset, it is oauth when an OAuth client is configured and none
	// otherwise, which mlbot logs loudly at start.
	UIAuth string
	// GitHubOAuthClientID and GitHubOAuthClientSecret are the OAuth app
	// people log in with GitHub through (MLBOT_GITHUB_OAUTH_CLIENT_ID,
	// MLBOT_GITHUB_OAUTH_CLIENT_SECRET); its callback URL is
	// <MLBOT_PUBLIC_URL>/login/github/callback.
	GitHubOAuthClientID, GitHubOAuthClientSecret string
	// GitLabOAuthClientID and GitLabOAuthClientSecret are the GitLab
	// application people log in with GitLab through
	// (MLBOT_GITLAB_OAUTH_CLIENT_ID, MLBOT_GITLAB_OAUTH_CLIENT_SECRET),
	// with the read_user scope and the redirect URI
	// <MLBOT_PUBLIC_URL>/login/gitlab/callback.
	GitLabOAuthClientID, GitLabOAuthClientSecret string
	// Runners names the runners this mlbot offers to .mlbot.yml
	// (MLBOT_RUNNERS, default "local"); docker and kubernetes are opt-in.
	Runners []string
	// AgentBinary is a statically linked mlbot binary that the container
	// runners inject to run `mlbot agent` in any image (MLBOT_AGENT_BINARY;
	// default: this process's own executable).
	AgentBinary string
	// Docker bounds what the docker runner gives a run (MLBOT_DOCKER_*).
	Docker RunnerLimits
	// K8s bounds what the kubernetes runner gives a run (MLBOT_K8S_*) and
	// where it puts the run's Job.
	K8s Kubernetes
	// Secrets maps the names listed in MLBOT_SECRETS (comma-separated, or
	// the config file key "secrets") to their values in the process
	// environment; trusted runs whose .mlbot.yml asks for them receive them.
	// There is no flag, and values are never read from the config file, so
	// they cannot leak through a command line or a checked-in file.
	Secrets map[string]string
	// Retention is what the registry keeps of model versions and their
	// artifacts (MLBOT_RETENTION_*).
	Retention Retention
}

// Retention says which model versions the registry keeps, and how often
// the collector drops the others and deletes the artifact blobs no record
// names. A version is kept when any rule keeps it.
type Retention struct {
	// Deploys is how many of the newest successful deploys of each
	// environment keep their versions as rollback targets; the version an
	// environment runs now and any deploy under way are always kept
	// (MLBOT_RETENTION_DEPLOYS, default 10).
	Deploys int
	// Main is how many of the newest versions made on the default branch
	// are kept (MLBOT_RETENTION_MAIN, default 20).
	Main int
	// Days keeps every version recorded within that many days
	// (MLBOT_RETENTION_DAYS, default 30).
	Days int
	// Interval is how often the collector runs; 0 turns it off
	// (MLBOT_RETENTION_INTERVAL, default 1h). One process at a time runs
	// it, whatever the number of replicas.
	Interval time.Duration
}

// Validate reports retention settings that cannot be applied; Server's
// Validate includes it.
func (r Retention) Validate() error {
	var errs []error
	for _, n := range []struct {
		value     int
		env, flag string
	}{
		{r.Deploys, "MLBOT_RETENTION_DEPLOYS", "--retention-deploys"},
		{r.Main, "MLBOT_RETENTION_MAIN", "--retention-main"},
		{r.Days, "MLBOT_RETENTION_DAYS", "--retention-days"},
	} {
		if n.value < 0 {
			errs = append(errs, fmt.Errorf("%s (%s) must not be negative, got %d", n.env, n.flag, n.value))
		}
	}
	if r.Days > maxRetentionDays {
		errs = append(errs, fmt.Errorf("MLBOT_RETENTION_DAYS (--retention-days) must be at most %d, got %d", maxRetentionDays, r.Days))
	}
	if r.Interval < 0 {
		errs = append(errs, fmt.Errorf("MLBOT_RETENTION_INTERVAL (--retention-interval) must not be negative (0 turns the collector off), got %s", r.Interval))
	}
	return errors.Join(errs...)
}

// maxRetentionDays bounds MLBOT_RETENTION_DAYS so that it converts to a
// time.Duration without overflow (a hundred years).
const maxRetentionDays = 36500

// MaxAge is how old a version may be and still be kept by Days.
func (r Retention) MaxAge() time.Duration { return time.Duration(r.Days) * 24 * time.Hour }

// Validate reports every setting that would make the server unsafe or
// unable to start, each with the variable or flag that fixes it. ServerFlags.Load
// does not call it, so that commands which need no server (such as
// "mlbot validate") can still load the configuration.
func (s *Server) Validate() error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	githubUsed := s.GitHubToken != "" || s.GitHubAppID != 0
	gitlabUsed := s.GitLabToken != ""
	if !s.InsecureNoWebhookSecret {
		// Without a secret anyone who can reach the endpoint could make
		// mlbot run code, so refusing to start is the only safe default.
		switch {
		case s.GitHubWebhookSecret == "" && s.GitLabWebhookSecret == "":
			fail("no webhook secret is set: set MLBOT_GITHUB_WEBHOOK_SECRET (--github-webhook-secret) or MLBOT_GITLAB_WEBHOOK_SECRET (--gitlab-webhook-secret), or pass --insecure-no-webhook-secret (MLBOT_INSECURE_NO_WEBHOOK_SECRET=true) for local testing only")
		default:
			if githubUsed && s.GitHubWebhookSecret == "" {
				fail("GitHub credentials are set but MLBOT_GITHUB_WEBHOOK_SECRET (--github-webhook-secret) is not: GitHub webhooks could not be verified")
			}
			if gitlabUsed && s.GitLabWebhookSecret == "" {
				fail("MLBOT_GITLAB_TOKEN is set but MLBOT_GITLAB_WEBHOOK_SECRET (--gitlab-webhook-secret) is not: GitLab webhooks could not be verified")
			}
		}
	}
	if len(s.RepoAllowlist) == 0 && !s.AllowAllRepos {
		fail("no repository is allowed: set MLBOT_REPO_ALLOWLIST (--repo-allowlist) to globs such as github.com/acme/*, or pass --allow-all-repos (MLBOT_ALLOW_ALL_REPOS=true)")
	}
	for _, g := range s.RepoAllowlist {
		if err := validateGlob(strings.ToLower(g)); err != nil {
			fail("MLBOT_REPO_ALLOWLIST (--repo-allowlist): %q: %w", g, err)
		}
	}
	if s.GitHubToken != "" && s.GitHubAppID != 0 {
		fail("both MLBOT_GITHUB_TOKEN (--github-token) and MLBOT_GITHUB_APP_ID (--github-app-id) are set: use a token or a GitHub App, not both")
	}
	if s.GitHubAppID < 0 {
		fail("MLBOT_GITHUB_APP_ID (--github-app-id) must be positive, got %d", s.GitHubAppID)
	}
	if s.GitHubAppID != 0 && s.GitHubAppPrivateKeyFile == "" {
		fail("MLBOT_GITHUB_APP_ID (--github-app-id) is set but MLBOT_GITHUB_APP_PRIVATE_KEY_FILE (--github-app-private-key-file) is not: a GitHub App needs its private key")
	}
	if s.GitHubAppID == 0 && s.GitHubAppPrivateKeyFile != "" {
		fail("MLBOT_GITHUB_APP_PRIVATE_KEY_FILE (--github-app-private-key-file) is set but MLBOT_GITHUB_APP_ID (--github-app-id) is not")
	}
	for _, u := range []struct{ value, env, flag string }{
		{s.PublicURL, "MLBOT_PUBLIC_URL", "--public-url"},
		{s.GitHubAPIURL, "MLBOT_GITHUB_API_URL", "--github-api-url"},
		{s.GitLabURL, "MLBOT_GITLAB_URL", "--gitlab-url"},
	} {
		if err := checkHTTPURL(u.value); err != nil {
			fail("%s (%s): %w", u.env, u.flag, err)
		}
	}
	if s.RedisURL != "" {
		// Never echo the URL: it may hold the Redis password. The URL is
		// read in full when Redis is dialled (jobs/store.ParseURL); a
		// sentinel or cluster URL's comma-separated hosts are not a URL
		// host.
		scheme, _, _ := strings.Cut(s.RedisURL, "://")
		switch scheme = strings.ToLower(scheme); {
		case scheme == "redis+cluster", scheme == "redis+sentinel":
		default:
			if u, err := url.Parse(s.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
				fail("MLBOT_REDIS_URL (--redis-url) must be a redis://, rediss://, unix://, redis+sentinel:// or redis+cluster:// URL")
			}
		}
	}
	if _, _, err := net.SplitHostPort(s.Listen); err != nil {
		fail("MLBOT_LISTEN (--listen) %q is not a host:port address such as :8080: %w", s.Listen, err)
	}
	if s.DataDir == "" {
		fail("MLBOT_DATA_DIR (--data-dir) must not be empty")
	}
	if s.EventConcurrency < 1 {
		fail("MLBOT_EVENT_CONCURRENCY (--event-concurrency) must be at least 1, got %d", s.EventConcurrency)
	}
	if s.Concurrency < 1 {
		fail("MLBOT_CONCURRENCY (--concurrency) must be at least 1, got %d", s.Concurrency)
	}
	if len(s.Queues) == 0 {
		fail("MLBOT_QUEUES (--queues) must list at least one queue")
	}
	for _, q := range s.Queues {
		if !queueRE.MatchString(q) {
			fail("MLBOT_QUEUES (--queues): %q is not a queue name (lowercase letters, digits, _ and -)", q)
		}
	}
	if !oneOf(s.LogLevel, "debug", "info", "warn", "error") {
		fail("MLBOT_LOG_LEVEL (--log-level) must be debug, info, warn or error, got %q", s.LogLevel)
	}
	if !oneOf(s.LogFormat, "text", "json") {
		fail("MLBOT_LOG_FORMAT (--log-format) must be text or json, got %q", s.LogFormat)
	}
	for _, d := range []struct {
		value     time.Duration
		env, flag string
	}{
		{s.MaxPipelineTimeout, "MLBOT_MAX_PIPELINE_TIMEOUT", "--max-pipeline-timeout"},
		{s.TaskCheckInterval, "MLBOT_TASK_CHECK_INTERVAL", "--task-check-interval"},
		{s.ShutdownTimeout, "MLBOT_SHUTDOWN_TIMEOUT", "--shutdown-timeout"},
		{s.RetryBase, "MLBOT_RETRY_BASE", "--retry-base"},
	} {
		if d.value <= 0 {
			fail("%s (%s) must be positive, got %s", d.env, d.flag, d.value)
		}
	}
	for _, p := range s.DeployPaths {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p {
			fail("MLBOT_DEPLOY_PATHS (--deploy-paths): %q is not a clean absolute path", p)
		}
	}
	if s.SandboxUID < 0 || s.SandboxProcesses < 0 || s.SandboxMemory < 0 || s.SandboxCPU < 0 {
		fail("the MLBOT_SANDBOX_* limits must not be negative")
	}
	if s.ReconcileInterval < 0 {
		fail("MLBOT_RECONCILE_INTERVAL (--reconcile-interval) must not be negative (0 turns the reconciler off), got %s", s.ReconcileInterval)
	}
	if s.MaxWebhookBytes <= 0 {
		fail("MLBOT_MAX_WEBHOOK_BYTES (--max-webhook-bytes) must be positive, got %d", s.MaxWebhookBytes)
	}
	if s.MaxArtifactBytes <= 0 {
		fail("MLBOT_MAX_ARTIFACT_BYTES (--max-artifact-bytes) must be positive, got %d", s.MaxArtifactBytes)
	}
	if s.MaxRunArtifactBytes < s.MaxArtifactBytes {
		fail("MLBOT_MAX_RUN_ARTIFACT_BYTES (--max-run-artifact-bytes) must be at least MLBOT_MAX_ARTIFACT_BYTES (--max-artifact-bytes), %d; got %d", s.MaxArtifactBytes, s.MaxRunArtifactBytes)
	}
	if s.TaskKey != "" && len(s.TaskKey) < 32 {
		fail("MLBOT_TASK_KEY (--task-key) must be at least 32 characters, got %d: generate one with `openssl rand -hex 32`", len(s.TaskKey))
	}
	s.validateUIAuth(fail)
	if err := s.Retention.Validate(); err != nil {
		errs = append(errs, err)
	}
	if s.APIToken != "" && len(s.APIToken) < 16 {
		fail("MLBOT_API_TOKEN (--api-token) must be at least 16 characters, got %d: generate one with `openssl rand -hex 32`", len(s.APIToken))
	}
	if s.MetricsToken != "" && len(s.MetricsToken) < 16 {
		fail("MLBOT_METRICS_TOKEN (--metrics-token) must be at least 16 characters, got %d: generate one with `openssl rand -hex 32`", len(s.MetricsToken))
	}
	return errors.Join(errs...)
}

// UI authentication modes (MLBOT_UI_AUTH).
const (
	UIAuthOAuth = "oauth"
	UIAuthNone  = "none"
)

// OAuthConfigured reports whether an OAuth client is configured for a
// code host, which makes oauth MLBOT_UI_AUTH's default.
func (s *Server) OAuthConfigured() bool {
	return s.GitHubOAuthClientID != "" || s.GitLabOAuthClientID != ""
}

// validateUIAuth checks MLBOT_UI_AUTH and the OAuth clients.
func (s *Server) validateUIAuth(fail func(string, ...any)) {
	if !oneOf(s.UIAuth, UIAuthOAuth, UIAuthNone) {
		fail("MLBOT_UI_AUTH (--ui-auth) must be oauth or none, got %q", s.UIAuth)
	}
	for _, c := range []struct {
		id, secret, prefix string
		credentials        bool
	}{
		{s.GitHubOAuthClientID, s.GitHubOAuthClientSecret, "MLBOT_GITHUB_OAUTH_CLIENT_", s.GitHubToken != "" || s.GitHubAppID != 0},
		{s.GitLabOAuthClientID, s.GitLabOAuthClientSecret, "MLBOT_GITLAB_OAUTH_CLIENT_", s.GitLabToken != ""},
	} {
		switch {
		case c.id != "" && c.secret == "":
			fail("%sID is set but %sSECRET is not: an OAuth client needs both", c.prefix, c.prefix)
		case c.id == "" && c.secret != "":
			fail("%sSECRET is set but %sID is not: an OAuth client needs both", c.prefix, c.prefix)
		case c.id != "" && !c.credentials:
			// Who may read a repository is asked of the host with mlbot's
			// own credentials.
			host := strings.TrimSuffix(strings.TrimPrefix(c.prefix, "MLBOT_"), "_OAUTH_CLIENT_")
			fail("%sID is set but mlbot has no %s credentials to ask the host who may read a repository: set MLBOT_%s_TOKEN%s", c.prefix, host, host,
				map[bool]string{true: " or the GitHub App"}[host == "GITHUB"])
		}
	}
	if s.UIAuth == UIAuthOAuth && !s.OAuthConfigured() {
		fail("MLBOT_UI_AUTH (--ui-auth) is oauth but no OAuth client is configured: set MLBOT_GITHUB_OAUTH_CLIENT_ID and MLBOT_GITHUB_OAUTH_CLIENT_SECRET, or the GitLab pair, or MLBOT_UI_AUTH=none")
	}
}

// validateRunners checks the runner settings.
func (s *Server) validateRunners(fail func(string, ...any)) {
	for _, r := range s.Runners {
		if indexOf(runners, r) < 0 {
			fail("MLBOT_RUNNERS (--runners): unknown runner %q%s", r, didYouMean(r, runners))
		}
	}
	for _, l := range []struct {
		lim    RunnerLimits
		prefix string
	}{{s.Docker, "MLBOT_DOCKER_"}, {s.K8s.RunnerLimits, "MLBOT_K8S_"}} {
		if l.lim.MaxCPU != "" {
			if _, err := ParseCPU(l.lim.MaxCPU); err != nil {
				fail("%sMAX_CPU: %v", l.prefix, err)
			}
		}
		if l.lim.MaxMemory < 0 || l.lim.MaxGPUs < 0 {
			fail("%sMAX_MEMORY and %sMAX_GPUS must not be negative", l.prefix, l.prefix)
		}
		for _, g := range l.lim.Images {
			if _, err := path.Match(g, ""); err != nil {
				fail("%sIMAGES: %q: %v", l.prefix, g, err)
			}
		}
	}
	if indexOf(s.Runners, "kubernetes") >= 0 {
		if s.K8s.Namespace == "" {
			fail("MLBOT_RUNNERS names kubernetes but MLBOT_K8S_NAMESPACE (--k8s-namespace) is not set")
		}
		if s.K8s.AgentImage == "" {
			fail("MLBOT_RUNNERS names kubernetes but MLBOT_K8S_AGENT_IMAGE (--k8s-agent-image), the mlbot image whose binary pods run as their agent, is not set")
		}
		if s.K8s.PendingTimeout <= 0 {
			fail("MLBOT_K8S_PENDING_TIMEOUT (--k8s-pending-timeout) must be positive, got %s", s.K8s.PendingTimeout)
		}
		if s.K8s.AgentURL != "" {
			if err := checkHTTPURL(s.K8s.AgentURL); err != nil {
				fail("MLBOT_K8S_AGENT_URL (--k8s-agent-url): %v", err)
			}
		}
	}
}

func oneOf(s string, choices ...string) bool {
	return indexOf(choices, s) >= 0
}

// RepoAllowed reports whether the bot serves repo, written as host and path
// like "github.com/acme/model" or "gitlab.com/group/sub/proj". A pattern's
// "*" matches within one path segment and "**" any number of segments, and
// matching ignores case, as both hosts do for repository names.
func (s *Server) RepoAllowed(repo string) bool {
	if s.AllowAllRepos {
		return true
	}
	repo = strings.ToLower(strings.TrimSuffix(repo, "/"))
	// A path with empty, "." or ".." segments is never a real repository;
	// refusing it keeps "github.com/acme/**" from admitting
	// "github.com/acme/../evil/x".
	for _, seg := range strings.Split(repo, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	if path.Clean(repo) != repo {
		return false
	}
	for _, pattern := range s.RepoAllowlist {
		if matchGlob(strings.ToLower(strings.TrimSuffix(pattern, "/")), repo) {
			return true
		}
	}
	return false
}

// LogValue makes a Server safe to log with slog: tokens, webhook secrets and
// server-side secrets appear only as "[set]" or "[unset]", and passwords in
// URLs are masked.
func (s *Server) LogValue() slog.Value {
	secretNames := make([]slog.Attr, 0, len(s.Secrets))
	for _, name := range sortedKeys(s.Secrets) {
		secretNames = append(secretNames, slog.String(name, setOrUnset(s.Secrets[name])))
	}
	return slog.GroupValue(
		slog.String("config_file", s.ConfigFile),
		slog.String("listen", s.Listen),
		slog.String("public_url", redactURL(s.PublicURL)),
		slog.String("redis_url", redactURL(s.RedisURL)),
		slog.String("data_dir", s.DataDir),
		slog.Any("repo_allowlist", s.RepoAllowlist),
		slog.Bool("allow_all_repos", s.AllowAllRepos),
		slog.String("github_api_url", redactURL(s.GitHubAPIURL)),
		slog.String("github_token", setOrUnset(s.GitHubToken)),
		slog.Int64("github_app_id", s.GitHubAppID),
		slog.String("github_app_private_key_file", s.GitHubAppPrivateKeyFile),
		slog.String("github_webhook_secret", setOrUnset(s.GitHubWebhookSecret)),
		slog.String("gitlab_url", redactURL(s.GitLabURL)),
		slog.String("gitlab_token", setOrUnset(s.GitLabToken)),
		slog.String("gitlab_webhook_secret", setOrUnset(s.GitLabWebhookSecret)),
		slog.Bool("insecure_no_webhook_secret", s.InsecureNoWebhookSecret),
		slog.Int("concurrency", s.Concurrency),
		slog.Int("event_concurrency", s.EventConcurrency),
		slog.Any("queues", s.Queues),
		slog.String("log_level", s.LogLevel),
		slog.String("log_format", s.LogFormat),
		slog.Duration("max_pipeline_timeout", s.MaxPipelineTimeout),
		slog.Duration("task_check_interval", s.TaskCheckInterval),
		slog.Bool("fifo_pipelines", s.FIFOPipelines),
		slog.Duration("shutdown_timeout", s.ShutdownTimeout),
		slog.Duration("retry_base", s.RetryBase),
		slog.Duration("reconcile_interval", s.ReconcileInterval),
		slog.String("prometheus_url", redactURL(s.PrometheusURL)),
		slog.Int64("max_webhook_bytes", s.MaxWebhookBytes),
		slog.Bool("unsafe_no_sandbox", s.UnsafeNoSandbox),
		slog.Int64("max_artifact_bytes", s.MaxArtifactBytes),
		slog.Int64("max_run_artifact_bytes", s.MaxRunArtifactBytes),
		slog.String("task_key", setOrUnset(s.TaskKey)),
		slog.String("api_token", setOrUnset(s.APIToken)),
		slog.String("metrics_token", setOrUnset(s.MetricsToken)),
		slog.String("ui_auth", s.UIAuth),
		slog.String("github_oauth_client_id", s.GitHubOAuthClientID),
		slog.String("github_oauth_client_secret", setOrUnset(s.GitHubOAuthClientSecret)),
		slog.String("gitlab_oauth_client_id", s.GitLabOAuthClientID),
		slog.String("gitlab_oauth_client_secret", setOrUnset(s.GitLabOAuthClientSecret)),
		slog.Attr{Key: "secrets", Value: slog.GroupValue(secretNames...)},
		slog.Group("retention", slog.Int("deploys", s.Retention.Deploys), slog.Int("main", s.Retention.Main),
			slog.Int("days", s.Retention.Days), slog.Duration("interval", s.Retention.Interval)),
	)
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}

func setOrUnset(secret string) string {
	if secret == "" {
		return "[unset]"
	}
	return "[set]"
}

// redactURL hides the user information of a URL such as redis://:pw@host or
// https://token@host; both halves are masked because tokens are often passed
// as the user name. A value that does not parse is hidden entirely, since
// its secret part cannot be found.
func redactURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return "[unparsable]"
	}
	if u.User != nil {
		u.User = url.User("xxxxx")
	}
	// go-redis and redis+sentinel:// take passwords as query parameters too.
	if q := u.Query(); q.Has("password") || q.Has("sentinel_password") {
		for _, k := range []string{"password", "sentinel_password"} {
			if q.Has(k) {
				q.Set(k, "xxxxx")
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}
