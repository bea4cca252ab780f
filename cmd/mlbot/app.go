package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/bot/github"
	"github.com/mlbot/mlbot/bot/gitlab"
	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/internal/urlsig"
	"github.com/mlbot/mlbot/jobs"
	"github.com/mlbot/mlbot/jobs/registry"
	"github.com/mlbot/mlbot/jobs/store"
	"github.com/mlbot/mlbot/runners"
	"github.com/mlbot/mlbot/web"
	"github.com/mlbot/mlbot/web/agentsrv"
)

// wrapRunner, when set (by tests), wraps the runner of every app.
var wrapRunner func(cfg *configs.Server, r runners.Runner) runners.Runner

// app is one running mlbot process: the HTTP server, the workers, or both.
type app struct {
	cfg *configs.Server
	log *slog.Logger
	rdb store.UniversalClient
	// prefix starts the Store's keys (store.ClusterPrefix on a cluster).
	prefix string
	mini   *miniredis.Miniredis
	// waitReplicas is how many replicas must hold a delivery before its
	// webhook is acknowledged (MLBOT_REDIS_URL's wait_replicas).
	waitReplicas int
	// store and registry are mlbot's state in Redis and its model
	// registry, built once and shared by the workers and the pages.
	store    *store.Store
	registry *registry.Registry
	forges   []jobs.ForgeSet
	// logins are the code hosts people log in to the pages with.
	logins []bot.OAuth
	// hub is mlbot's side of the agent protocol: the container runners
	// drive their runs through it and /api/v1/agent/ serves it.
	hub *agentsrv.Hub
	// images signs (worker) and verifies (pages) the comments' chart URLs.
	images *urlsig.Signer
	// containers are the container runners, swept at start.
	containers []sweeper
	worker     *jobs.Worker
	ingest     *asynq.Client
	srv        *http.Server
	ln         net.Listener
	// withHTTP serves webhooks; without it only /livez, /readyz and
	// /metrics are served (a pure worker).
	withHTTP bool
	// retention drops old model versions and unnamed artifacts every
	// MLBOT_RETENTION_INTERVAL; bg counts it.
	retention *retention
	bg        sync.WaitGroup
}

// newApp wires a process from its configuration.
func newApp(cfg *configs.Server, log *slog.Logger, withHTTP bool) (*app, error) {
	a := &app{cfg: cfg, log: log, withHTTP: withHTTP}
	if err := a.openRedis(); err != nil {
		return nil, err
	}
	a.store = store.New(a.rdb, a.prefix)
	a.registry = registry.New(a.store, &registry.ArtifactStore{Dir: filepath.Join(cfg.DataDir, "artifacts"),
		MaxFileBytes: cfg.MaxArtifactBytes, MaxRunBytes: cfg.MaxRunArtifactBytes})
	forges, err := buildForges(cfg)
	if err != nil {
		a.close()
		return nil, err
	}
	a.forges = forges
	if withHTTP {
		if a.logins, err = buildLogins(cfg); err != nil {
			a.close()
			return nil, err
		}
		warnUIAuth(cfg, log)
	}
	taskKey, err := jobs.LoadTaskKey(cfg.TaskKey, cfg.DataDir)
	if err != nil {
		a.close()
		return nil, fmt.Errorf("MLBOT_TASK_KEY: %w", err)
	}
	// The comments' chart images are signed with a key derived from the
	// task key, which every process of an install shares.
	if a.images, err = urlsig.New(taskKey, web.ChartImagePurpose); err != nil {
		a.close()
		return nil, err
	}
	runner, stepMemory, err := buildRunner(context.Background(), cfg, log)
	if err != nil {
		a.close()
		return nil, err
	}
	if wrapRunner != nil {
		runner = wrapRunner(cfg, runner)
	}
	// The runner set is built once, here: the one place a runner name of
	// .mlbot.yml becomes a runner (docker and kubernetes join it later).
	runnerSet := runners.Set{runners.Local: runner}
	if a.hub, err = agentsrv.New(a.store, cfg.DataDir, log); err != nil {
		a.close()
		return nil, err
	}
	if a.containers, err = addContainerRunners(context.Background(), cfg, runnerSet, a.hub, log); err != nil {
		a.close()
		return nil, err
	}
	w, err := jobs.New(jobs.Options{
		Redis:              a.rdb,
		Store:              a.store,
		Registry:           a.registry,
		Forges:             forges,
		Runners:            runnerSet,
		StepMemoryLimit:    stepMemory,
		RunnerLimits:       cfg.Limits,
		DeployPaths:        cfg.DeployPaths,
		DataDir:            cfg.DataDir,
		PublicURL:          strings.TrimRight(cfg.PublicURL, "/"),
		RepoAllowed:        cfg.RepoAllowed,
		Concurrency:        cfg.Concurrency,
		EventConcurrency:   cfg.EventConcurrency,
		PipelineQueues:     cfg.Queues,
		TaskCheckInterval:  cfg.TaskCheckInterval,
		FIFOPipelines:      cfg.FIFOPipelines,
		MaxPipelineTimeout: cfg.MaxPipelineTimeout,
		ShutdownTimeout:    cfg.ShutdownTimeout,
		RetryBase:          cfg.RetryBase,
		ReconcileInterval:  cfg.ReconcileInterval,
		Secrets:            secretValues(cfg),
		SecretEnv:          cfg.Secrets,
		PrometheusURL:      cfg.PrometheusURL,
		TaskKey:            taskKey,
		ChartImages:        a.images,
		Logger:             log,
	})
	if err != nil {
		a.close()
		return nil, err
	}
	a.worker = w
	a.retention = newRetention(retentionParams{logger: log, store: a.store, registry: a.registry, settings: cfg.Retention})
	a.ingest = asynq.NewClientFromRedisClient(a.rdb)
	a.srv = &http.Server{
		Handler:           a.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	return a, nil
}

func (a *app) openRedis() error {
	if a.cfg.RedisURL == "" {
		// The in-process Redis listens on loopback, where every process of
		// the host can connect: a random password keeps it mlbot's alone.
		password := rand.Text() + rand.Text() // 2 × 130 bits
		mr := miniredis.NewMiniRedis()
		mr.RequireAuth(password)
		if err := mr.Start(); err != nil {
			return fmt.Errorf("in-process redis: %w", err)
		}
		a.mini = mr
		a.log.Warn("MLBOT_REDIS_URL is not set: using an in-process Redis. NOTHING SURVIVES A RESTART — queued work, runs and comment ids are lost, and other workers cannot join. Set MLBOT_REDIS_URL for real use.")
		a.rdb, a.prefix = store.DialAddr(mr.Addr(), password), store.DefaultPrefix
		return nil
	}
	// This is the one place MLBOT_REDIS_URL becomes a connection: the
	// store, the registry and asynq's client, servers and inspector all
	// share this client (a failover client with Sentinel, a cluster client
	// with Cluster).
	ep, err := store.ParseURL(a.cfg.RedisURL)
	if err != nil {
		return fmt.Errorf("MLBOT_REDIS_URL: %w", err)
	}
	a.rdb, a.prefix = ep.Client(), ep.Prefix()
	a.waitReplicas = ep.WaitReplicas
	return nil
}

// buildForges configures every host that has credentials or a webhook
// secret.
func buildForges(cfg *configs.Server) ([]jobs.ForgeSet, error) {
	var out []jobs.ForgeSet
	hc := &http.Client{Timeout: 30 * time.Second}
	if cfg.GitHubWebhookSecret != "" || cfg.GitHubToken != "" || cfg.GitHubAppID != 0 || cfg.InsecureNoWebhookSecret {
		opts := github.Options{BaseURL: cfg.GitHubAPIURL, Token: cfg.GitHubToken, AppID: cfg.GitHubAppID, UserAgent: "mlbot/" + version,
			HTTPClient: &http.Client{Timeout: hc.Timeout, Transport: bot.InstrumentTransport("github", nil)}}
		if cfg.GitHubAppPrivateKeyFile != "" {
			key, err := configs.ReadPrivateFile(cfg.GitHubAppPrivateKeyFile, "GitHub App private key file")
			if err != nil {
				return nil, fmt.Errorf("MLBOT_GITHUB_APP_PRIVATE_KEY_FILE: %w", err)
			}
			opts.PrivateKey = key
		}
		c, err := github.New(opts)
		if err != nil {
			return nil, fmt.Errorf("github: %w", err)
		}
		out = append(out, jobs.ForgeSet{Webhook: &github.Webhook{Secret: []byte(cfg.GitHubWebhookSecret)}, Forge: c})
	}
	if cfg.GitLabWebhookSecret != "" || cfg.GitLabToken != "" || cfg.InsecureNoWebhookSecret {
		c, err := gitlab.New(gitlab.Options{BaseURL: cfg.GitLabURL, Token: cfg.GitLabToken,
			HTTPClient: &http.Client{Timeout: hc.Timeout, Transport: bot.InstrumentTransport("gitlab", nil)}})
		if err != nil {
			return nil, fmt.Errorf("gitlab: %w", err)
		}
		out = append(out, jobs.ForgeSet{Webhook: &gitlab.Webhook{Secret: []byte(cfg.GitLabWebhookSecret)}, Forge: c})
	}
	if len(out) == 0 {
		return nil, errors.New("no code host configured: set MLBOT_GITHUB_WEBHOOK_SECRET and MLBOT_GITHUB_TOKEN (or the App), or the MLBOT_GITLAB_* equivalents")
	}
	return out, nil
}

// secretValues lists every value that must never reach a child process, a
// log or a comment.
func secretValues(cfg *configs.Server) []string {
	var out []string
	for _, s := range []string{cfg.GitHubToken, cfg.GitHubWebhookSecret, cfg.GitLabToken, cfg.GitLabWebhookSecret, cfg.TaskKey, cfg.APIToken, cfg.MetricsToken,
		cfg.GitHubOAuthClientSecret, cfg.GitLabOAuthClientSecret} {
		if s != "" {
			out = append(out, s)
		}
	}
	for _, v := range cfg.Secrets {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := a.rdb.Ping(ctx).Err(); err != nil {
			http.Error(w, "redis unreachable", http.StatusServiceUnavailable)
			return
		}
		// Ready means a webhook would be acknowledged: with Sentinel, the
		// primary must also have its replicas.
		if err := a.store.WaitReplicas(ctx, a.waitReplicas, store.ReplicationTimeout); err != nil {
			http.Error(w, "redis replicas missing", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	// The deployed-model gauges and the queue depths are read from Redis
	// per app, so that each app (tests run several) exports its own registry.
	own := prometheus.NewRegistry()
	own.MustRegister(a.worker.DeployedCollector(), a.worker.QueueCollector())
	// The series name every repository and its deployed models: with
	// MLBOT_METRICS_TOKEN only Prometheus, holding the token, reads them.
	mux.Handle("GET /metrics", web.RequireBearer(a.cfg.MetricsToken, "MLBOT_METRICS_TOKEN",
		promhttp.HandlerFor(prometheus.Gatherers{prometheus.DefaultGatherer, own}, promhttp.HandlerOpts{})))
	if !a.withHTTP {
		return mux
	}
	// Agents in pods reach any serve replica; their token admits them.
	mux.Handle("/api/v1/agent/", a.hub.Handler())
	ingress := jobs.NewIngress(a.ingest, a.worker.Signer())
	if n := a.waitReplicas; n > 0 {
		ingress.Durable = func(ctx context.Context) error { return a.store.WaitReplicas(ctx, n, store.ReplicationTimeout) }
	}
	for _, fs := range a.forges {
		mux.Handle("/webhooks/"+fs.Webhook.Forge(), bot.NewWebhookHandler(bot.HandlerOptions{
			Webhook: fs.Webhook, Enqueuer: ingress, MaxBodyBytes: a.cfg.MaxWebhookBytes, Logger: a.log,
		}))
	}
	// The pages and the API read the store and registry the workers use;
	// they need no asynq server. Without a token the API is off (404).
	// With MLBOT_UI_AUTH=oauth a repository's pages are for those the
	// host lets read it.
	web.New(web.Options{
		Runs:      a.store,
		Logs:      a.store,
		Deploys:   a.registry,
		Models:    a.registry,
		Sweeps:    a.store,
		DataDir:   a.cfg.DataDir,
		APIToken:  a.cfg.APIToken,
		Auth:      a.cfg.UIAuth,
		PublicURL: a.cfg.PublicURL,
		Logins:    a.logins,
		Hosts:     pageHosts(a.forges),
		Sessions:  a.store,
		Images:    a.images,
		Logger:    a.log,
	}).Register(mux)
	return mux
}

// Start listens and starts the workers; it returns once both run.
func (a *app) Start() error {
	if a.ln == nil {
		ln, err := net.Listen("tcp", a.cfg.Listen)
		if err != nil {
			return err
		}
		a.ln = ln
	}
	ln := a.ln
	a.sweepContainers()
	if err := a.worker.Start(); err != nil {
		ln.Close()
		return err
	}
	a.retention.start(&a.bg)
	go func() {
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("http server stopped", "err", err)
		}
	}()
	a.log.Info("mlbot started", "listen", ln.Addr().String(), "public_url", a.cfg.PublicURL, "config", a.cfg)
	return nil
}

// sweepContainers removes the containers and Jobs that dead workers left
// of runs no longer open, before any new run starts. A run whose session
// is open is kept: its retried task re-attaches to it.
func (a *app) sweepContainers() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	live := func(id string) bool {
		_, err := a.hub.State(ctx, id)
		return err == nil
	}
	for _, s := range a.containers {
		if err := s.Sweep(ctx, live); err != nil {
			a.log.Warn("sweeping the containers of finished runs", "err", err)
		}
	}
}

// Addr is the address the server listens on.
func (a *app) Addr() string { return a.ln.Addr().String() }

// Shutdown stops accepting webhooks, then lets running tasks finish (or
// requeues them after the shutdown timeout), then closes Redis.
func (a *app) Shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	a.srv.Shutdown(ctx)
	a.worker.Shutdown()
	a.retention.shutdown()
	a.bg.Wait()
	a.ingest.Close()
	a.close()
}

func (a *app) close() {
	if a.rdb != nil {
		a.rdb.Close()
	}
	if a.mini != nil {
		a.mini.Close()
	}
}

// newLogger builds the process logger from the configuration.
func newLogger(cfg *configs.Server, out *os.File) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(out, opts))
	}
	return slog.New(slog.NewTextHandler(out, opts))
}
