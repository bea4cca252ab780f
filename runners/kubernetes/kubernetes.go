// Package kubernetes runs a job as a Kubernetes batch/v1 Job whose pod runs
// `mlbot agent` (runners/agentapi): the agent fetches the source and the
// job from mlbot, runs the steps and pushes back the log, metric files,
// artifacts and each step's end, while the runner watches the pod through
// the API server and drives the run through an agentapi.Hub.
//
// Per job the runner opens a Hub session (the run's token), creates the
// Job suspended, then a Secret holding the token and owned by the Job (so
// the garbage collector deletes it with the Job), then resumes the Job. The
// pod copies the mlbot binary from mlbot's own image (an init container)
// into an emptyDir and runs it in the job's image, as uid 1000 with a
// read-only root filesystem, no capabilities, no privilege escalation,
// RuntimeDefault seccomp and no service account token: it meets the
// "restricted" Pod Security profile. The runner reports what the cluster
// says: a pod no node fits (the scheduler's message, through Job.Notify,
// and a failure after Options.PendingTimeout), an image that does not
// pull, a container killed for exceeding its memory limit, an eviction
// (retried once on a new Job). A worker that restarts finds a running Job
// again by its labels and goes on watching it. The rights the runner needs
// are the Role in ops/kubernetes/role.yaml.
package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/mlbot/mlbot/runners"
	"github.com/mlbot/mlbot/runners/agentapi"
)

// Defaults of Options.
const (
	DefaultAgentBinary      = "/usr/local/bin/mlbot"
	DefaultPendingTimeout   = 10 * time.Minute
	DefaultTTLAfterFinished = time.Hour
	DefaultGrace            = 10 * time.Second
	DefaultPollInterval     = time.Second
	DefaultUID              = 1000
)

// Options configure a Runner: the operator's MLBOT_K8S_* settings.
type Options struct {
	// Namespace is where the Jobs run; required.
	Namespace string
	// AgentImage is mlbot's own image: its init container copies the
	// mlbot binary (AgentBinary) into the pod. Required.
	AgentImage string
	// AgentBinary is the path of mlbot in AgentImage; DefaultAgentBinary
	// when empty. The image must have cp.
	AgentBinary string
	// AgentURL is mlbot's base URL as the pods reach it (the agent API of
	// a `mlbot serve`, "http://mlbot.mlbot.svc:8080"); required.
	AgentURL string
	// ServiceAccount is the pods' service account; the namespace's
	// "default" when empty. Its token is never mounted.
	ServiceAccount string
	// RuntimeClass is the pods' runtimeClassName (gVisor, Kata, "nvidia"),
	// none when empty.
	RuntimeClass string
	// ImagePullSecrets name Secrets of the namespace for pulling the
	// job's image and AgentImage.
	ImagePullSecrets []string
	// CPU and Memory are the container's requests and limits when the job
	// asks for none ("2", "4Gi"); no limit when empty.
	CPU, Memory string
	// PendingTimeout bounds how long a pod may stay Pending (the
	// scheduler finds no node that fits, the image is still pulling)
	// before the run fails; DefaultPendingTimeout when zero.
	PendingTimeout time.Duration
	// TTLAfterFinished is the Job's ttlSecondsAfterFinished, for the Jobs
	// the runner could not delete itself; DefaultTTLAfterFinished when zero.
	TTLAfterFinished time.Duration
	// Grace is how long a step has after SIGTERM before SIGKILL, and the
	// pod's termination grace beyond it; DefaultGrace when zero.
	Grace time.Duration
	// MaxArtifactBytes bounds each artifact the agent uploads; zero means
	// the Hub's default.
	MaxArtifactBytes int64
	// PollInterval is how often the log is copied and the agent's reports
	// read; DefaultPollInterval when zero.
	PollInterval time.Duration
	// Logger receives the runner's own messages; slog.Default() when nil.
	Logger *slog.Logger
}

// Runner runs jobs as Kubernetes Jobs. It is safe for concurrent use.
type Runner struct {
	cs   kubernetes.Interface
	hub  agentapi.Hub
	opts Options
	log  *slog.Logger

	active runners.ActiveJobs // the jobs RunJob is running
}

var (
	_ runners.Runner    = (*Runner)(nil)
	_ runners.JobRunner = (*Runner)(nil)
)

// New returns a Runner creating Jobs through cs and driving the runs
// through hub.
func New(cs kubernetes.Interface, hub agentapi.Hub, opts Options) (*Runner, error) {
	if cs == nil || hub == nil {
		return nil, errors.New("kubernetes runner: a client and a hub are required")
	}
	var missing []string
	for name, v := range map[string]string{"namespace": opts.Namespace, "agent image": opts.AgentImage, "agent URL": opts.AgentURL} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("kubernetes runner: no %v", missing)
	}
	for name, q := range map[string]string{"CPU": opts.CPU, "memory": opts.Memory} {
		if q == "" {
			continue
		}
		if _, err := resource.ParseQuantity(q); err != nil {
			return nil, fmt.Errorf("kubernetes runner: %s %q: %w", name, q, err)
		}
	}
	if opts.AgentBinary == "" {
		opts.AgentBinary = DefaultAgentBinary
	}
	if opts.PendingTimeout <= 0 {
		opts.PendingTimeout = DefaultPendingTimeout
	}
	if opts.TTLAfterFinished <= 0 {
		opts.TTLAfterFinished = DefaultTTLAfterFinished
	}
	if opts.Grace <= 0 {
		opts.Grace = DefaultGrace
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Runner{cs: cs, hub: hub, opts: opts, log: log.With("runner", "kubernetes", "namespace", opts.Namespace)}, nil
}

// ErrWholeJobs is Run's error: the runner runs whole jobs, through RunJob.
var ErrWholeJobs = errors.New("kubernetes runner: runs whole jobs only (runners.RunJob)")

// Run refuses a lone command: a pod is made per job, not per step, and
// runners.RunJob hands the runner whole jobs.
func (r *Runner) Run(context.Context, runners.Spec) (runners.Result, error) {
	return runners.Result{}, ErrWholeJobs
}

// ClientConfig is the configuration of the cluster mlbot talks to: the
// kubeconfig file at path (its current context), or, when path is empty,
// the pod's own service account (mlbot running in the cluster).
func ClientConfig(path string) (*rest.Config, error) {
	if path == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("kubernetes: in-cluster config (set a kubeconfig outside a cluster): %w", err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: kubeconfig %s: %w", path, err)
	}
	return cfg, nil
}
