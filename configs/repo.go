package configs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// RepoConfigFile is the name of the configuration file mlbot reads from the
// root of each repository.
const RepoConfigFile = ".mlbot.yml"

// Defaults and limits of .mlbot.yml values.
const (
	defaultTimeout = time.Hour
	// maxTimeout keeps a typo such as "2000h" from holding a worker for months.
	maxTimeout    = 7 * 24 * time.Hour
	defaultRunner = "local"
	defaultQueue  = "default"
	// defaultVerifyFor and defaultVerifyEvery apply when a deploy's verify
	// block leaves them out: watch the query for five minutes, twice a minute.
	defaultVerifyFor   = 5 * time.Minute
	defaultVerifyEvery = 30 * time.Second
	// maxRepoConfigBytes refuses absurd files before YAML parsing; the file
	// comes from pull requests, which anyone may open.
	maxRepoConfigBytes = 1 << 20
)

// RepoConfig is a parsed and validated .mlbot.yml. Every default has been
// applied, so consumers never need to fill gaps themselves.
type RepoConfig struct {
	// Version is the schema version; only 1 exists.
	Version int
	// Pipeline says how to train and evaluate the model.
	Pipeline Pipeline
	// Metrics holds the gates for each metric, keyed by flattened metric
	// name ("a.b.c" for nested keys in a metrics file).
	Metrics map[string]MetricSpec
	// MetricOrder lists the keys of Metrics in file order, so reports show
	// metrics in the order the team chose rather than a map's random one.
	MetricOrder []string
	// Deploy holds the deployment environments keyed by name.
	Deploy map[string]Environment
	// DeployOrder lists the keys of Deploy in file order.
	DeployOrder []string
	// Permissions sets who may run each comment command.
	Permissions Permissions
	// Params are the parameters `params:` declares, in file order; every
	// step gets their values as environment variables (see ParamEnv).
	// (omitempty keeps the Digest of a file without them as it was.)
	Params []Param `json:",omitempty"`
	// Sweep is the `sweep:` block, nil without one.
	Sweep *Sweep `json:",omitempty"`
	// Secrets names the server-side secrets (see Server.Secrets) handed to
	// trusted runs as environment variables. Values never appear in the file.
	Secrets []string
}

// Pipeline describes one training and evaluation run.
type Pipeline struct {
	// Train is the shell command that trains the model; it is required.
	Train string
	// Evaluate is an optional shell command run after Train.
	Evaluate string
	// Metrics lists metric files (JSON or YAML) relative to the checkout;
	// there is at least one.
	Metrics []string
	// Artifacts lists files, relative to the checkout, that are digested and
	// recorded as the model version.
	Artifacts []string
	// Timeout bounds the whole run. It defaults to one hour and is at most
	// seven days; the server may lower it further.
	Timeout time.Duration
	// Paths lists globs of repository paths whose change needs a new run;
	// "*" matches within one path segment and "**" any number of segments.
	// Empty means every change needs a run.
	Paths []string
	// Runner is "local", "docker" or "kubernetes"; it defaults to "local".
	Runner string
	// Queue is the worker queue the run goes to (for example "gpu"); it
	// defaults to "default" and matches [a-z0-9_-]+.
	Queue string
	// Image is the container image for the docker and kubernetes runners.
	Image string
	// Network is "none" to run even trusted steps without network; ""
	// (or "default") keeps the host's network for trusted runs. Untrusted
	// runs never have network.
	Network string
	// Resources is what the docker and kubernetes runners ask for the run;
	// the operator bounds it (Server.RunnerLimits).
	Resources Resources
	// Examples is the per-example results file the evaluate step writes
	// (JSON Lines, relative to the checkout), or "" for none; see
	// examples.go. Left out of Digest's encoding when empty, so that
	// configurations without it keep their digest.
	Examples string `json:",omitempty"`
}

// Resources is `pipeline.resources`: what a run asks of its container or
// pod. Zero values ask for the runner's defaults.
type Resources struct {
	// CPU in millicores (`cpu: 2` is 2000, `cpu: 500m` is 500).
	CPUMilli int64
	// MemoryBytes is the memory limit (`memory: 8Gi`).
	MemoryBytes int64
	// GPUs is the number of GPUs (`gpus: 1`).
	GPUs int
	// ShmBytes is the size of /dev/shm (`shm_size: 1Gi`), which PyTorch's
	// data loaders fill.
	ShmBytes int64
	// NodeSelector places a Kubernetes pod on nodes with these labels.
	NodeSelector map[string]string
	// Tolerations are Kubernetes tolerations, each "key=value:effect",
	// "key:effect" or "key".
	Tolerations []string
}

// MetricSpec holds the gates a metric must pass. A nil bound is not checked.
type MetricSpec struct {
	// Goal is "maximize", "minimize" or "" when the direction does not matter.
	Goal string
	// Min and Max are absolute bounds on the head value.
	Min, Max *float64
	// MaxDrop is how much the head value may be worse than the base value,
	// in the metric's own units, "worse" being given by Goal; it is never
	// negative and is only set together with a Goal.
	MaxDrop *float64
	// Significance and NonInferiority are the gates that use per-example
	// results (examples.go); left out of Digest's encoding when unset.
	Significance, NonInferiority *float64 `json:",omitempty"`
}

// Environment is one deployment target.
type Environment struct {
	// Name is the environment's key in the file, such as "production".
	Name string
	// Command is the shell command that deploys; it is required.
	Command string
	// OnMerge deploys after every merge to the default branch whose gates pass.
	OnMerge bool
	// FromPR lets maintainers "/deploy <env>" a pull request's model.
	FromPR bool
	// URL is shown as the deployment's environment URL.
	URL string
	// Verify, when set, is checked after the deploy to decide whether it held.
	Verify *Verify
}

// Verify is a Prometheus check run after a deploy: the query's result must
// stay within [Min, Max] for For, sampled every Every.
type Verify struct {
	// Query is a PromQL expression returning one number.
	Query string
	// Min and Max bound the query result; at least one is set.
	Min, Max *float64
	// For is how long the result must hold; it defaults to five minutes.
	For time.Duration
	// Every is the sampling interval; it defaults to thirty seconds.
	Every time.Duration
}

// Permissions sets the lowest role that may run each comment command. Roles
// are "read", "triage", "write", "maintain" and "admin", GitHub's names;
// GitLab's access levels map onto them.
type Permissions struct {
	// Deploy and Rollback default to "maintain": they change what users see.
	Deploy, Rollback string
	// Retrain, Cancel, OkToTest and Sweep default to "write".
	Retrain, Cancel, OkToTest, Sweep string
}

// Digest returns the hex SHA-256 of the config's canonical form. It changes
// when anything that affects a run changes, but not when only whitespace,
// comments or YAML style do, so it can be part of a pipeline's dedupe key.
// It returns "" for a nil config, or for one holding a non-finite number,
// which ParseRepoConfig never produces.
func (c *RepoConfig) Digest() string {
	if c == nil {
		return ""
	}
	// json.Marshal sorts map keys, which makes the encoding canonical.
	b, err := json.Marshal(c)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// NeedsRun reports whether a change touching the changed paths (relative to
// the repository root, as git reports them) needs a new run: always when
// Paths is empty, otherwise when any changed path matches any glob. An empty
// changed list means nothing changed; a caller that does not know what
// changed should run rather than call NeedsRun.
func (p Pipeline) NeedsRun(changed []string) bool {
	if len(p.Paths) == 0 {
		return true
	}
	for _, name := range changed {
		name = cleanRelPath(name)
		for _, pattern := range p.Paths {
			if matchGlob(cleanRelPath(pattern), name) {
				return true
			}
		}
	}
	return false
}
