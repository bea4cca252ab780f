package configs

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// env returns a getenv backed by a map, so tests never read the real
// environment.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// load parses args into a fresh FlagSet and loads the Server.
func load(t *testing.T, args []string, vars map[string]string) (*Server, error) {
	t.Helper()
	fs := flag.NewFlagSet("mlbot", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := NewServerFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("Parse(%q): %v", args, err)
	}
	return f.Load(env(vars))
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "mlbot.yml")
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestLoadDefaults(t *testing.T) {
	s, err := load(t, nil, nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := &Server{
		Listen:             ":8080",
		PublicURL:          "http://localhost:8080",
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

		MaxArtifactBytes:    2 << 30,
		MaxRunArtifactBytes: 10 << 30,
		Runners:             []string{"local"},
		K8s:                 Kubernetes{PendingTimeout: 10 * time.Minute},
		Retention:           Retention{Deploys: 10, Main: 20, Days: 30, Interval: time.Hour},
		// No OAuth client is configured: the pages stay open.
		UIAuth: UIAuthNone,
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("defaults\n got: %+v\nwant: %+v", s, want)
	}
}

func TestLoadExampleFile(t *testing.T) {
	s, err := load(t, []string{"--config", "testdata/server.yml"}, map[string]string{"HF_TOKEN": "hf_abc"})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := &Server{
		ConfigFile:         "testdata/server.yml",
		Listen:             ":9090",
		PublicURL:          "https://mlbot.example.com",
		DataDir:            filepath.Join(os.TempDir(), "mlbot"),
		RepoAllowlist:      []string{"github.com/acme/*", "gitlab.com/ml/**"},
		GitHubAPIURL:       "https://github.example.com/api/v3/",
		GitLabURL:          "https://gitlab.com",
		Concurrency:        4,
		EventConcurrency:   32,
		Queues:             []string{"gpu", "cpu"},
		LogLevel:           "info",
		LogFormat:          "json",
		MaxPipelineTimeout: 12 * time.Hour,
		TaskCheckInterval:  20 * time.Millisecond,
		ShutdownTimeout:    30 * time.Second,
		RetryBase:          2 * time.Second,
		ReconcileInterval:  10 * time.Minute,
		MaxWebhookBytes:    10 << 20,
		SandboxUID:         200000,
		SandboxCPU:         48 * time.Hour,
		SandboxProcesses:   4096,
		Secrets:            map[string]string{"HF_TOKEN": "hf_abc"},

		MaxArtifactBytes:    2 << 30,
		MaxRunArtifactBytes: 10 << 30,
		Runners:             []string{"local"},
		K8s:                 Kubernetes{PendingTimeout: 10 * time.Minute},
		UIAuth:              UIAuthOAuth,
		GitHubOAuthClientID: "Iv1.0123456789abcdef",
		Retention:           Retention{Deploys: 10, Main: 20, Days: 30, Interval: time.Hour},
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("loaded\n got: %+v\nwant: %+v", s, want)
	}
}

func TestLoadPrecedence(t *testing.T) {
	file := writeFile(t, "listen: \":3000\"\nconcurrency: 3\nqueues: [file]\nallow_all_repos: true\nshutdown_timeout: 1m\n")
	tests := []struct {
		name  string
		args  []string
		vars  map[string]string
		check func(s *Server) bool
	}{
		{"default", nil, nil, func(s *Server) bool { return s.Listen == ":8080" && s.Concurrency == 2 && !s.AllowAllRepos }},
		{"file beats default", []string{"--config", file}, nil, func(s *Server) bool {
			return s.Listen == ":3000" && s.Concurrency == 3 && s.AllowAllRepos && s.ShutdownTimeout == time.Minute &&
				reflect.DeepEqual(s.Queues, []string{"file"}) && s.PublicURL == "http://localhost:3000"
		}},
		{"config file named by env", nil, map[string]string{"MLBOT_CONFIG": file}, func(s *Server) bool { return s.ConfigFile == file && s.Listen == ":3000" }},
		{"--config beats MLBOT_CONFIG", []string{"--config", file}, map[string]string{"MLBOT_CONFIG": "/nonexistent.yml"}, func(s *Server) bool { return s.Listen == ":3000" }},
		{"env beats file", []string{"--config", file}, map[string]string{"MLBOT_LISTEN": ":4000", "MLBOT_QUEUES": "a, b", "MLBOT_ALLOW_ALL_REPOS": "false"}, func(s *Server) bool {
			return s.Listen == ":4000" && s.Concurrency == 3 && !s.AllowAllRepos && reflect.DeepEqual(s.Queues, []string{"a", "b"})
		}},
		{"empty env counts as unset", []string{"--config", file}, map[string]string{"MLBOT_LISTEN": ""}, func(s *Server) bool { return s.Listen == ":3000" }},
		{"flag beats env and file", []string{"--config", file, "--listen", ":5000", "--queues", "x", "--queues", "y", "--allow-all-repos=false"}, map[string]string{"MLBOT_LISTEN": ":4000", "MLBOT_QUEUES": "a"}, func(s *Server) bool {
			return s.Listen == ":5000" && s.Concurrency == 3 && !s.AllowAllRepos && reflect.DeepEqual(s.Queues, []string{"x", "y"})
		}},
		{"bool flag without value", []string{"--allow-all-repos", "--insecure-no-webhook-secret"}, nil, func(s *Server) bool { return s.AllowAllRepos && s.InsecureNoWebhookSecret }},
		{"flag set to its default still wins", []string{"--config", file, "--concurrency", "2"}, map[string]string{"MLBOT_CONCURRENCY": "9"}, func(s *Server) bool { return s.Concurrency == 2 }},
		{"public URL follows listen", nil, map[string]string{"MLBOT_LISTEN": "0.0.0.0:9000"}, func(s *Server) bool { return s.PublicURL == "http://localhost:9000" }},
		{"explicit public URL", nil, map[string]string{"MLBOT_PUBLIC_URL": "https://bot.example.com"}, func(s *Server) bool { return s.PublicURL == "https://bot.example.com" }},
		{"no OAuth client leaves the pages open", nil, nil, func(s *Server) bool { return s.UIAuth == UIAuthNone }},
		{"an OAuth client turns the login on", nil, map[string]string{"MLBOT_GITLAB_OAUTH_CLIENT_ID": "app", "MLBOT_GITLAB_OAUTH_CLIENT_SECRET": "s"}, func(s *Server) bool {
			return s.UIAuth == UIAuthOAuth && s.GitLabOAuthClientID == "app" && s.GitLabOAuthClientSecret == "s"
		}},
		{"explicit none beats an OAuth client", nil, map[string]string{"MLBOT_GITHUB_OAUTH_CLIENT_ID": "c", "MLBOT_UI_AUTH": "none"}, func(s *Server) bool { return s.UIAuth == UIAuthNone }},
		{"URLs normalised", nil, map[string]string{"MLBOT_GITHUB_API_URL": "http://127.0.0.1:1234", "MLBOT_GITLAB_URL": "https://gitlab.example.com/"}, func(s *Server) bool {
			return s.GitHubAPIURL == "http://127.0.0.1:1234/" && s.GitLabURL == "https://gitlab.example.com"
		}},
		{"byte sizes", nil, map[string]string{"MLBOT_MAX_WEBHOOK_BYTES": "512KiB"}, func(s *Server) bool { return s.MaxWebhookBytes == 512<<10 }},
		{"plain byte count", []string{"--max-webhook-bytes", "1000"}, nil, func(s *Server) bool { return s.MaxWebhookBytes == 1000 }},
		{"artifact limits in human sizes", []string{"--max-artifact-bytes", "512MiB"}, map[string]string{"MLBOT_MAX_RUN_ARTIFACT_BYTES": "3GiB"},
			func(s *Server) bool { return s.MaxArtifactBytes == 512<<20 && s.MaxRunArtifactBytes == 3<<30 }},
		{"first come, first served pipelines by env", nil, map[string]string{"MLBOT_FIFO_PIPELINES": "true"}, func(s *Server) bool { return s.FIFOPipelines }},
		{"fair pipelines by default", nil, nil, func(s *Server) bool { return !s.FIFOPipelines }},
		{"app id", nil, map[string]string{"MLBOT_GITHUB_APP_ID": "12345"}, func(s *Server) bool { return s.GitHubAppID == 12345 }},
		{"retention from flags, env and file", []string{"--config", writeFile(t, "retention_days: 7\nretention_interval: 10m\n"), "--retention-deploys", "3"},
			map[string]string{"MLBOT_RETENTION_MAIN": "5", "MLBOT_RETENTION_INTERVAL": "0"}, func(s *Server) bool {
				return s.Retention == Retention{Deploys: 3, Main: 5, Days: 7, Interval: 0}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := load(t, tt.args, tt.vars)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !tt.check(s) {
				t.Errorf("unexpected server: %+v", s)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		vars map[string]string
		file string // config file content, if any
		want []string
	}{
		{"bad int from env", nil, map[string]string{"MLBOT_CONCURRENCY": "many"}, "",
			[]string{`env MLBOT_CONCURRENCY (flag --concurrency): invalid value "many": want a whole number`}},
		{"bad int from flag", []string{"--concurrency", "many"}, nil, "",
			[]string{`flag --concurrency (env MLBOT_CONCURRENCY): invalid value "many"`}},
		{"bad bool from flag", []string{"--allow-all-repos=maybe"}, nil, "",
			[]string{`flag --allow-all-repos (env MLBOT_ALLOW_ALL_REPOS): invalid value "maybe": want true or false`}},
		{"bad duration from env", nil, map[string]string{"MLBOT_SHUTDOWN_TIMEOUT": "30"}, "",
			[]string{`env MLBOT_SHUTDOWN_TIMEOUT (flag --shutdown-timeout): invalid value "30": want a duration`}},
		{"bad byte size", nil, map[string]string{"MLBOT_MAX_WEBHOOK_BYTES": "25 parsecs"}, "",
			[]string{`invalid value "25 parsecs": want a whole number with an optional KiB, MiB or GiB suffix`}},
		{"several errors at once", nil, map[string]string{"MLBOT_CONCURRENCY": "x", "MLBOT_GITHUB_APP_ID": "y"}, "",
			[]string{"MLBOT_GITHUB_APP_ID", "MLBOT_CONCURRENCY"}},
		{"bad value in file", nil, nil, "listen: \":1\"\nconcurrency: lots\n",
			[]string{`mlbot.yml:2:14: concurrency: invalid value "lots": want a whole number (flag --concurrency, env MLBOT_CONCURRENCY)`}},
		{"unknown key in file", nil, nil, "listen: \":1\"\nwebhook_secret: x\n",
			[]string{`mlbot.yml:2:1: unknown key "webhook_secret" in config file`}},
		{"misspelt key in file", nil, nil, "concurency: 3\n",
			[]string{`mlbot.yml:1:1: unknown key "concurency" in config file (did you mean "concurrency"?)`}},
		{"list for a single value in file", nil, nil, "listen: [\":1\"]\n",
			[]string{`mlbot.yml:1:9: listen: single value expected, got a list`}},
		{"mapping for a list in file", nil, nil, "queues: {a: b}\n",
			[]string{`mlbot.yml:1:9: queues: list or comma-separated string expected, got a mapping`}},
		{"file not a mapping", nil, nil, "- listen\n", []string{"mlbot.yml:1:1: top level: mapping expected, got a list"}},
		{"file syntax error", nil, nil, "listen: [\n", []string{"mlbot.yml:1:1: invalid YAML"}},
		{"missing file", []string{"--config", "/nonexistent/mlbot.yml"}, nil, "",
			[]string{"reading config file (--config, MLBOT_CONFIG): open /nonexistent/mlbot.yml"}},
		{"secret not in env", nil, map[string]string{"MLBOT_SECRETS": "HF_TOKEN"}, "",
			[]string{"MLBOT_SECRETS lists HF_TOKEN, but HF_TOKEN is not set in the environment"}},
		{"secret name invalid", nil, map[string]string{"MLBOT_SECRETS": "HF-TOKEN"}, "",
			[]string{`MLBOT_SECRETS: "HF-TOKEN" is not an environment variable name`}},
		{"own setting as secret", nil, map[string]string{"MLBOT_SECRETS": "MLBOT_GITHUB_TOKEN", "MLBOT_GITHUB_TOKEN": "ghp_x"}, "",
			[]string{`"MLBOT_GITHUB_TOKEN" is one of mlbot's own settings`}},
		{"secret from file not in env", nil, nil, "secrets: [HF_TOKEN]\n",
			[]string{"mlbot.yml:1:10: secrets lists HF_TOKEN, but HF_TOKEN is not set"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.file != "" {
				args = append([]string{"--config", writeFile(t, tt.file)}, args...)
			}
			s, err := load(t, args, tt.vars)
			if err == nil {
				t.Fatalf("Load succeeded: %+v", s)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadSecrets(t *testing.T) {
	s, err := load(t, nil, map[string]string{"MLBOT_SECRETS": "HF_TOKEN, WANDB_API_KEY", "HF_TOKEN": "hf_1", "WANDB_API_KEY": "wb_2", "OTHER": "x"})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := map[string]string{"HF_TOKEN": "hf_1", "WANDB_API_KEY": "wb_2"}
	if !reflect.DeepEqual(s.Secrets, want) {
		t.Errorf("Secrets = %v, want %v", s.Secrets, want)
	}
}

func TestFlagHelp(t *testing.T) {
	fs := flag.NewFlagSet("mlbot", flag.ContinueOnError)
	NewServerFlags(fs)
	names := []string{"listen", "public-url", "redis-url", "data-dir", "repo-allowlist", "allow-all-repos",
		"github-api-url", "github-token", "github-app-id", "github-app-private-key-file", "github-webhook-secret",
		"gitlab-url", "gitlab-token", "gitlab-webhook-secret", "insecure-no-webhook-secret", "concurrency",
		"queues", "log-level", "log-format", "max-pipeline-timeout", "fifo-pipelines", "task-check-interval", "shutdown-timeout", "retry-base", "reconcile-interval", "prometheus-url",
		"max-webhook-bytes", "unsafe-no-sandbox", "deploy-paths", "sandbox-uid", "sandbox-memory", "sandbox-cpu", "sandbox-processes",
		"max-artifact-bytes", "max-run-artifact-bytes", "task-key", "api-token", "metrics-token", "config",
		"ui-auth", "github-oauth-client-id", "github-oauth-client-secret", "gitlab-oauth-client-id", "gitlab-oauth-client-secret",
		"runners", "agent-binary", "docker-images", "docker-max-cpu", "docker-max-memory", "docker-max-gpus",
		"k8s-images", "k8s-max-cpu", "k8s-max-memory", "k8s-max-gpus", "k8s-namespace", "k8s-service-account",
		"k8s-runtime-class", "k8s-image-pull-secrets", "k8s-pending-timeout", "k8s-agent-image", "k8s-agent-url", "k8s-kubeconfig",
		"retention-deploys", "retention-main", "retention-days", "retention-interval", "event-concurrency"}
	count := 0
	fs.VisitAll(func(*flag.Flag) { count++ })
	if count != len(names) {
		t.Errorf("registered %d flags, want %d", count, len(names))
	}
	for _, name := range names {
		f := fs.Lookup(name)
		if f == nil {
			t.Errorf("flag --%s not registered", name)
			continue
		}
		envVar := "MLBOT_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		if !strings.Contains(f.Usage, "env "+envVar) {
			t.Errorf("--%s help %q does not name %s", name, f.Usage, envVar)
		}
		if name != "config" && !strings.Contains(f.Usage, "default ") {
			t.Errorf("--%s help %q does not state the default", name, f.Usage)
		}
	}
	if u := fs.Lookup("data-dir").Usage; !strings.Contains(u, filepath.Join(os.TempDir(), "mlbot")) {
		t.Errorf("--data-dir help %q does not show the default directory", u)
	}
}

// validServer returns a Server that passes Validate, for tests to break.
func validServer() *Server {
	s := defaultServer()
	s.PublicURL = "http://localhost:8080"
	s.RepoAllowlist = []string{"github.com/acme/*"}
	s.GitHubToken = "ghp_token"
	s.GitHubWebhookSecret = "whsec"
	s.UIAuth = UIAuthNone
	return s
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(s *Server)
		want   []string // substrings of the error; none means valid
	}{
		{"valid", func(*Server) {}, nil},
		{"no webhook secret", func(s *Server) { s.GitHubWebhookSecret = "" },
			[]string{"no webhook secret is set: set MLBOT_GITHUB_WEBHOOK_SECRET (--github-webhook-secret) or MLBOT_GITLAB_WEBHOOK_SECRET", "--insecure-no-webhook-secret"}},
		{"no webhook secret but insecure", func(s *Server) { s.GitHubWebhookSecret = ""; s.InsecureNoWebhookSecret = true }, nil},
		{"GitLab token without its secret", func(s *Server) { s.GitLabToken = "glpat" },
			[]string{"MLBOT_GITLAB_TOKEN is set but MLBOT_GITLAB_WEBHOOK_SECRET (--gitlab-webhook-secret) is not"}},
		{"GitHub token without its secret", func(s *Server) { s.GitHubWebhookSecret = ""; s.GitLabWebhookSecret = "gl" },
			[]string{"GitHub credentials are set but MLBOT_GITHUB_WEBHOOK_SECRET"}},
		{"empty allowlist", func(s *Server) { s.RepoAllowlist = nil },
			[]string{"set MLBOT_REPO_ALLOWLIST (--repo-allowlist)", "--allow-all-repos"}},
		{"empty allowlist but allow all", func(s *Server) { s.RepoAllowlist = nil; s.AllowAllRepos = true }, nil},
		{"bad allowlist glob", func(s *Server) { s.RepoAllowlist = []string{"github.com/[acme"} }, []string{`MLBOT_REPO_ALLOWLIST (--repo-allowlist): "github.com/[acme"`}},
		{"token and app", func(s *Server) { s.GitHubAppID = 7; s.GitHubAppPrivateKeyFile = "key.pem" },
			[]string{"both MLBOT_GITHUB_TOKEN (--github-token) and MLBOT_GITHUB_APP_ID (--github-app-id) are set"}},
		{"app without key", func(s *Server) { s.GitHubToken = ""; s.GitHubAppID = 7 },
			[]string{"MLBOT_GITHUB_APP_ID (--github-app-id) is set but MLBOT_GITHUB_APP_PRIVATE_KEY_FILE (--github-app-private-key-file) is not"}},
		{"app with key", func(s *Server) { s.GitHubToken = ""; s.GitHubAppID = 7; s.GitHubAppPrivateKeyFile = "key.pem" }, nil},
		{"key without app", func(s *Server) { s.GitHubAppPrivateKeyFile = "key.pem" }, []string{"MLBOT_GITHUB_APP_PRIVATE_KEY_FILE (--github-app-private-key-file) is set but MLBOT_GITHUB_APP_ID"}},
		{"bad public URL", func(s *Server) { s.PublicURL = "localhost:8080" }, []string{"MLBOT_PUBLIC_URL (--public-url)"}},
		{"bad GitHub API URL", func(s *Server) { s.GitHubAPIURL = "ftp://github.com/" }, []string{"MLBOT_GITHUB_API_URL (--github-api-url)"}},
		{"bad GitLab URL", func(s *Server) { s.GitLabURL = "gitlab.com" }, []string{"MLBOT_GITLAB_URL (--gitlab-url)"}},
		{"bad Redis URL hides password", func(s *Server) { s.RedisURL = "http://:hunter2@redis:6379" }, []string{"MLBOT_REDIS_URL (--redis-url) must be a redis://"}},
		{"good Redis URL", func(s *Server) { s.RedisURL = "rediss://:pw@redis:6380/1" }, nil},
		{"sentinel Redis URL", func(s *Server) { s.RedisURL = "redis+sentinel://:pw@s1:26379,s2:26379,[::1]:26379/mymaster/1" }, nil},
		{"cluster Redis URL", func(s *Server) { s.RedisURL = "redis+cluster://:hunter2@n1:6379,n2:6379" }, nil},
		{"bad listen", func(s *Server) { s.Listen = "8080" }, []string{"MLBOT_LISTEN (--listen)"}},
		{"zero concurrency", func(s *Server) { s.Concurrency = 0 }, []string{"MLBOT_CONCURRENCY (--concurrency) must be at least 1"}},
		{"zero event concurrency", func(s *Server) { s.EventConcurrency = 0 }, []string{"MLBOT_EVENT_CONCURRENCY (--event-concurrency) must be at least 1"}},
		{"no queues", func(s *Server) { s.Queues = nil }, []string{"MLBOT_QUEUES (--queues) must list"}},
		{"bad queue", func(s *Server) { s.Queues = []string{"GPU"} }, []string{`MLBOT_QUEUES (--queues): "GPU"`}},
		{"bad log level", func(s *Server) { s.LogLevel = "verbose" }, []string{"MLBOT_LOG_LEVEL (--log-level)"}},
		{"bad log format", func(s *Server) { s.LogFormat = "xml" }, []string{"MLBOT_LOG_FORMAT (--log-format)"}},
		{"zero timeout", func(s *Server) { s.ShutdownTimeout = 0 }, []string{"MLBOT_SHUTDOWN_TIMEOUT (--shutdown-timeout) must be positive"}},
		{"negative reconcile interval", func(s *Server) { s.ReconcileInterval = -time.Minute }, []string{"MLBOT_RECONCILE_INTERVAL (--reconcile-interval) must not be negative"}},
		{"zero webhook bytes", func(s *Server) { s.MaxWebhookBytes = 0 }, []string{"MLBOT_MAX_WEBHOOK_BYTES (--max-webhook-bytes) must be positive"}},
		{"zero artifact bytes", func(s *Server) { s.MaxArtifactBytes = 0 }, []string{"MLBOT_MAX_ARTIFACT_BYTES (--max-artifact-bytes) must be positive"}},
		{"run limit below file limit", func(s *Server) { s.MaxRunArtifactBytes = 1 << 20 }, []string{"MLBOT_MAX_RUN_ARTIFACT_BYTES (--max-run-artifact-bytes) must be at least"}},
		{"negative retention counts", func(s *Server) { s.Retention.Deploys, s.Retention.Main, s.Retention.Days = -1, -2, -3 }, []string{
			"MLBOT_RETENTION_DEPLOYS (--retention-deploys) must not be negative, got -1", "MLBOT_RETENTION_MAIN (--retention-main) must not be negative, got -2",
			"MLBOT_RETENTION_DAYS (--retention-days) must not be negative, got -3"}},
		{"retention days past a duration", func(s *Server) { s.Retention.Days = 1 << 20 }, []string{"MLBOT_RETENTION_DAYS (--retention-days) must be at most 36500"}},
		{"negative retention interval", func(s *Server) { s.Retention.Interval = -time.Second }, []string{"MLBOT_RETENTION_INTERVAL (--retention-interval) must not be negative"}},
		{"retention keeping only what runs, collector off", func(s *Server) { s.Retention = Retention{} }, nil},
		{"short task key", func(s *Server) { s.TaskKey = "short-key" }, []string{"MLBOT_TASK_KEY (--task-key) must be at least 32 characters, got 9"}},
		{"task key", func(s *Server) { s.TaskKey = strings.Repeat("k", 32) }, nil},
		{"short API token", func(s *Server) { s.APIToken = "tok" }, []string{"MLBOT_API_TOKEN (--api-token) must be at least 16 characters, got 3"}},
		{"short metrics token", func(s *Server) { s.MetricsToken = "tok" }, []string{"MLBOT_METRICS_TOKEN (--metrics-token) must be at least 16 characters, got 3"}},
		{"API token", func(s *Server) { s.APIToken = strings.Repeat("t", 16) }, nil},
		{"unknown UI auth", func(s *Server) { s.UIAuth = "basic" }, []string{`MLBOT_UI_AUTH (--ui-auth) must be oauth or none, got "basic"`}},
		{"oauth without a client", func(s *Server) { s.UIAuth = UIAuthOAuth }, []string{"MLBOT_UI_AUTH (--ui-auth) is oauth but no OAuth client is configured"}},
		{"oauth with a GitHub client", func(s *Server) {
			s.UIAuth, s.GitHubOAuthClientID, s.GitHubOAuthClientSecret = UIAuthOAuth, "Iv1.abc", "secret"
		}, nil},
		{"OAuth client id without its secret", func(s *Server) { s.GitHubOAuthClientID = "Iv1.abc" },
			[]string{"MLBOT_GITHUB_OAUTH_CLIENT_ID is set but MLBOT_GITHUB_OAUTH_CLIENT_SECRET is not"}},
		{"OAuth client secret without its id", func(s *Server) { s.GitLabOAuthClientSecret = "s" },
			[]string{"MLBOT_GITLAB_OAUTH_CLIENT_SECRET is set but MLBOT_GITLAB_OAUTH_CLIENT_ID is not"}},
		{"GitLab login without GitLab credentials", func(s *Server) { s.GitLabOAuthClientID, s.GitLabOAuthClientSecret = "app", "s" },
			[]string{"MLBOT_GITLAB_OAUTH_CLIENT_ID is set but mlbot has no GITLAB credentials", "MLBOT_GITLAB_TOKEN"}},
		{"GitHub login with the App", func(s *Server) {
			s.GitHubToken, s.GitHubAppID, s.GitHubAppPrivateKeyFile = "", 7, "key.pem"
			s.GitHubOAuthClientID, s.GitHubOAuthClientSecret = "Iv1.abc", "secret"
		}, nil},
		{"all problems reported", func(s *Server) { s.GitHubWebhookSecret = ""; s.RepoAllowlist = nil; s.Concurrency = -1 },
			[]string{"no webhook secret", "no repository is allowed", "MLBOT_CONCURRENCY"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validServer()
			tt.modify(s)
			err := s.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks a password: %v", err)
			}
		})
	}
}

func TestRepoAllowed(t *testing.T) {
	allow := []string{"github.com/acme/*", "gitlab.com/ml/**", "github.com/*/public-model", "GitHub.com/Other/Exact"}
	tests := []struct {
		repo string
		want bool
	}{
		{"github.com/acme/model", true},
		{"github.com/ACME/Model", true},
		{"github.com/acme/model/", true},
		{"github.com/acme", false},
		{"github.com/acme/team/model", false},
		{"github.com/acmecorp/model", false},
		{"github.com/acme/../evil/model", false},
		{"github.com/acme//model", false},
		{"gitlab.com/ml/proj", true},
		{"gitlab.com/ml/group/sub/proj", true},
		{"gitlab.com/other/proj", false},
		{"github.com/anyone/public-model", true},
		{"github.com/anyone/private-model", false},
		{"github.com/other/exact", true},
		{"gitlab.com/acme/model", false},
		{"", false},
	}
	s := &Server{RepoAllowlist: allow}
	for _, tt := range tests {
		t.Run(tt.repo, func(t *testing.T) {
			if got := s.RepoAllowed(tt.repo); got != tt.want {
				t.Errorf("RepoAllowed(%q) = %v, want %v", tt.repo, got, tt.want)
			}
		})
	}
	all := &Server{AllowAllRepos: true}
	if !all.RepoAllowed("example.org/anything/at/all") {
		t.Error("AllowAllRepos did not allow a repository")
	}
	if (&Server{}).RepoAllowed("github.com/acme/model") {
		t.Error("an empty allowlist allowed a repository")
	}
}

func TestLogValueHidesSecrets(t *testing.T) {
	s := validServer()
	s.GitHubToken = "ghp_SECRET1"
	s.GitHubWebhookSecret = "SECRET2"
	s.GitLabToken = "glpat-SECRET3"
	s.GitLabWebhookSecret = ""
	s.RedisURL = "redis+sentinel://admin:SECRET4@redis:26379,redis2:26379/mymaster/0?sentinel_password=SECRET11"
	s.GitHubAPIURL = "https://x-token:SECRET5@github.example.com/api/v3/"
	s.Secrets = map[string]string{"HF_TOKEN": "SECRET6"}
	s.TaskKey = "SECRET7-0123456789abcdef0123456789abcdef"
	s.APIToken = "SECRET8-0123456789"
	s.GitHubOAuthClientID, s.GitHubOAuthClientSecret = "Iv1.client", "SECRET9"
	s.GitLabOAuthClientSecret = "SECRET10"
	s.MetricsToken = "SECRET12-0123456789"
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			var h slog.Handler = slog.NewJSONHandler(&buf, nil)
			if format == "text" {
				h = slog.NewTextHandler(&buf, nil)
			}
			slog.New(h).Info("starting", "config", s)
			out := buf.String()
			if strings.Contains(out, "SECRET") {
				t.Errorf("log leaks a secret: %s", out)
			}
			for _, want := range []string{"github_token", "[set]", "gitlab_webhook_secret", "[unset]", "HF_TOKEN", "redis:26379,redis2:26379/mymaster", "github.com/acme/*", "Iv1.client", "ui_auth"} {
				if !strings.Contains(out, want) {
					t.Errorf("log lacks %q: %s", want, out)
				}
			}
		})
	}
}

func TestConfigErrorsUnwrap(t *testing.T) {
	_, err := load(t, []string{"--config", writeFile(t, "concurency: 3\n")}, nil)
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Line != 1 || ce.Col != 1 {
		t.Fatalf("errors.As(%v) = %+v", err, ce)
	}
}
