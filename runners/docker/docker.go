// Package docker runs a whole runners.Job in one Docker container that
// runs `mlbot agent`. The container is made from the job's image, which
// is used unchanged: a static mlbot binary is mounted into it read-only,
// and the agent reaches mlbot through a Unix socket in a per-run
// directory of the host, served by the agentapi.Hub, so that a container
// of an untrusted run needs no network at all. The agent fetches the job
// and its source, runs the steps and pushes their log, reports and files
// back; the runner watches the container, copies the log to the job's
// output as it arrives, adds what only the engine knows (an OOM kill, a
// stop on cancel or timeout) and collects the files.
//
// Every container runs as an unprivileged user with no capabilities,
// no-new-privileges, the engine's default seccomp profile, a read-only
// root filesystem with /workspace and /tmp as tmpfs, and limits on
// processes, memory, CPUs and /dev/shm. Containers are labelled with the
// run's id, so that a worker that restarts finds its container again
// (RunJob re-attaches) and Sweep removes those of runs no longer live.
package docker

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/client"

	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/runners"
	"github.com/mlbot/mlbot/runners/agentapi"
)

// Labels every container of the runner carries.
const (
	// LabelRun holds the job's id (runners.Job.ID).
	LabelRun = "mlbot.run"
	// LabelManaged is "true" on every container mlbot made.
	LabelManaged = "mlbot.managed"
)

// Paths inside the container.
const (
	// AgentPath is where the mlbot binary is mounted.
	AgentPath = "/mlbot/bin/mlbot"
	// SocketDir is where the run's directory, holding the agent socket, is mounted.
	SocketDir = "/mlbot/run"
	// socketName is the socket's name in the run's directory.
	socketName = "agent.sock"
)

// Defaults of Options.
const (
	// DefaultUser is the uid:gid steps run as.
	DefaultUser = "1000:1000"
	// DefaultPidsLimit bounds the processes and threads of a container.
	DefaultPidsLimit = 4096
	// DefaultKillGrace is how long a stopped step has between SIGTERM and SIGKILL.
	DefaultKillGrace = 10 * time.Second
	// DefaultPollInterval is how often the log is copied while a container runs.
	DefaultPollInterval = 150 * time.Millisecond
)

// sessionSlack is how long an agent session outlives the job's timeout,
// and sessionTTL how long the session of a job without one lasts, before
// the hub ends it by itself.
const (
	sessionSlack = time.Hour
	sessionTTL   = 24 * time.Hour
)

// maxSocketPath is the longest path a Unix socket may have on Linux
// (sun_path is 108 bytes, one of them the terminating NUL).
const maxSocketPath = 107

// Options configure a Runner.
type Options struct {
	// Hub is mlbot's side of the agent protocol (web/agentsrv). Required.
	Hub agentapi.Hub
	// Client talks to the Docker engine; nil makes one from the
	// environment (DOCKER_HOST, DOCKER_CERT_PATH, …) that negotiates the
	// API version with the engine (1.40 or later).
	Client *client.Client
	// AgentBinary is the host path of a static mlbot binary
	// (CGO_ENABLED=0), mounted read-only at AgentPath in every container.
	// Required. Like RunDir it is a path as the engine sees it: when mlbot
	// itself runs in a container, mount it at the same path there.
	AgentBinary string
	// RunDir is a host directory for the runs' sockets: each run gets a
	// subdirectory of it, mounted read-only at SocketDir in its container
	// and nothing else. Required, and short: a socket's path must fit in
	// 107 bytes (RunDir plus 28).
	RunDir string
	// User is the "uid:gid" the agent and the steps run as; empty means
	// DefaultUser. Root (uid 0) is refused.
	User string
	// Image is the image of the one-step jobs Run makes of a Spec, which
	// names none; RunJob uses the job's own image.
	Image string
	// Defaults are the resources of a job whose Resources leave CPU,
	// Memory or ShmSize empty; empty here too means no limit (and
	// Docker's 64 MiB /dev/shm).
	Defaults runners.Resources
	// PidsLimit bounds the processes and threads of a container; zero
	// means DefaultPidsLimit.
	PidsLimit int64
	// WorkspaceSize and TmpSize bound the tmpfs at /workspace and /tmp
	// (Kubernetes notation); empty means the kernel's default, half the
	// host's memory. Either counts towards the container's memory limit.
	WorkspaceSize, TmpSize string
	// KillGrace is how long a step has between SIGTERM and SIGKILL when it
	// is stopped; zero means DefaultKillGrace.
	KillGrace time.Duration
	// MaxArtifactBytes bounds each artifact the agent uploads; zero
	// leaves the bound to the hub.
	MaxArtifactBytes int64
	// PollInterval is how often the log is copied to the job's output
	// while the container runs; zero means DefaultPollInterval.
	PollInterval time.Duration
	// Logger receives the runner's own messages; nil means slog.Default().
	Logger *slog.Logger
}

// Runner runs jobs in Docker containers. It is safe for concurrent use.
type Runner struct {
	opts   Options
	engine *client.Client
	log    *slog.Logger
	// timeoutSlack is how long after a job's timeout (and the kill grace)
	// the runner stops a container whose agent did not stop the step.
	timeoutSlack time.Duration

	active runners.ActiveJobs // the jobs RunJob is running
}

var (
	_ runners.Runner    = (*Runner)(nil)
	_ runners.JobRunner = (*Runner)(nil)
)

// New returns a Runner configured by opts. It checks opts but does not
// contact the engine.
func New(opts Options) (*Runner, error) {
	if opts.Hub == nil {
		return nil, errors.New("docker: Options.Hub is required")
	}
	return newRunner(opts)
}

// newRunner is New without the hub, which only RunJob needs.
func newRunner(opts Options) (*Runner, error) {
	if opts.AgentBinary == "" {
		return nil, errors.New("docker: Options.AgentBinary is required")
	}
	fi, err := os.Stat(opts.AgentBinary)
	if err != nil {
		return nil, fmt.Errorf("docker: agent binary: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("docker: agent binary %s is not a regular file", opts.AgentBinary)
	}
	if opts.RunDir == "" {
		return nil, errors.New("docker: Options.RunDir is required")
	}
	if opts.RunDir, err = filepath.Abs(opts.RunDir); err != nil {
		return nil, fmt.Errorf("docker: run directory: %w", err)
	}
	if n := len(socketPath(opts.RunDir, "x")); n > maxSocketPath {
		return nil, fmt.Errorf("docker: run directory %s is too long: its sockets' paths would have %d bytes, at most %d fit",
			opts.RunDir, n, maxSocketPath)
	}
	if err := os.MkdirAll(opts.RunDir, 0o700); err != nil {
		return nil, fmt.Errorf("docker: run directory: %w", err)
	}
	if opts.User == "" {
		opts.User = DefaultUser
	}
	if err := checkUser(opts.User); err != nil {
		return nil, fmt.Errorf("docker: %w", err)
	}
	if _, err := hostResources(runners.Resources{}, opts); err != nil {
		return nil, fmt.Errorf("docker: defaults: %w", err)
	}
	for name, q := range map[string]string{"workspace size": opts.WorkspaceSize, "tmp size": opts.TmpSize} {
		if q == "" {
			continue
		}
		if _, err := configs.ParseQuantity(q, 1); err != nil {
			return nil, fmt.Errorf("docker: %s: %w", name, err)
		}
	}
	if opts.PidsLimit <= 0 {
		opts.PidsLimit = DefaultPidsLimit
	}
	if opts.KillGrace <= 0 {
		opts.KillGrace = DefaultKillGrace
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	engine := opts.Client
	if engine == nil {
		if engine, err = client.New(client.FromEnv); err != nil {
			return nil, fmt.Errorf("docker: engine client: %w", err)
		}
	}
	return &Runner{opts: opts, engine: engine, log: log.With("runner", "docker"),
		timeoutSlack: 30 * time.Second}, nil
}

// checkUser accepts "uid:gid" with numeric ids other than root's (0).
func checkUser(u string) error {
	uid, gid, ok := strings.Cut(u, ":")
	un, err1 := strconv.ParseUint(uid, 10, 32)
	gn, err2 := strconv.ParseUint(gid, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return fmt.Errorf("user %q: want numeric uid:gid such as %s", u, DefaultUser)
	}
	if un == 0 || gn == 0 {
		return fmt.Errorf("user %q: steps never run as root or in its group", u)
	}
	return nil
}
