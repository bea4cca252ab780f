package configs

import (
	"fmt"
	"path"
	"strings"
	"time"
)

// RunnerLimits is what the operator lets a run ask of a container runner
// (MLBOT_DOCKER_* or MLBOT_K8S_*).
type RunnerLimits struct {
	// Images are the globs (path.Match, "*" within a path segment) of the
	// images a run may use; none means the runner runs nothing.
	Images []string
	// MaxCPU is the most CPU a run may ask for, a quantity ("8", "500m");
	// empty means no bound.
	MaxCPU string
	// MaxMemory is the most memory a run may ask for, in bytes, and the
	// limit of a run that asks for none; 0 means no bound.
	MaxMemory int64
	// MaxGPUs is the most GPUs a run may ask for.
	MaxGPUs int
}

// Kubernetes is where the kubernetes runner puts a run's Job, and its bounds.
type Kubernetes struct {
	RunnerLimits
	// Namespace holds the runs' Jobs, Pods and Secrets.
	Namespace string
	// ServiceAccount is the pods' service account ("" is the namespace's
	// default); its token is never mounted.
	ServiceAccount string
	// RuntimeClass is the pods' runtime class name, if any.
	RuntimeClass string
	// ImagePullSecrets name the secrets pods pull images with.
	ImagePullSecrets []string
	// PendingTimeout is how long a pod may stay unscheduled before the run fails.
	PendingTimeout time.Duration
	// AgentImage is mlbot's own image, whose binary an init container
	// copies into the pod.
	AgentImage string
	// AgentURL is mlbot's URL as pods reach it ("" is PublicURL).
	AgentURL string
	// Kubeconfig is a kubeconfig file; empty means the in-cluster config.
	Kubeconfig string
}

// Limits returns the operator's bounds for runner ("docker" or
// "kubernetes"), and false for a runner that has none (local, which the
// sandbox settings bound).
func (s *Server) Limits(runner string) (RunnerLimits, string, bool) {
	switch runner {
	case "docker":
		return s.Docker, "MLBOT_DOCKER_", true
	case "kubernetes":
		return s.K8s.RunnerLimits, "MLBOT_K8S_", true
	}
	return RunnerLimits{}, "", false
}

// Check says why pipeline p may not run on a runner bounded by l (whose
// settings start with prefix, "MLBOT_DOCKER_"), quoting the limit, or nil
// when it may. A run asking for no memory gets MaxMemory: see Apply.
func (l RunnerLimits) Check(p Pipeline, prefix string) error {
	var problems []string
	if p.Image == "" {
		problems = append(problems, fmt.Sprintf("pipeline.image is required with runner %s", p.Runner))
	} else if !l.imageAllowed(p.Image) {
		allowed := "none"
		if len(l.Images) > 0 {
			allowed = strings.Join(l.Images, ", ")
		}
		problems = append(problems, fmt.Sprintf("pipeline.image %q is not an image this mlbot runs (%sIMAGES: %s)", p.Image, prefix, allowed))
	}
	if l.MaxCPU != "" && p.Resources.CPUMilli > 0 {
		if max, err := ParseCPU(l.MaxCPU); err == nil && p.Resources.CPUMilli > max {
			problems = append(problems, fmt.Sprintf("pipeline.resources.cpu %s is more than the limit of %s per run (%sMAX_CPU)", FormatCPU(p.Resources.CPUMilli), l.MaxCPU, prefix))
		}
	}
	if l.MaxMemory > 0 && p.Resources.MemoryBytes > l.MaxMemory {
		problems = append(problems, fmt.Sprintf("pipeline.resources.memory %s is more than the limit of %s per run (%sMAX_MEMORY)", FormatBytes(p.Resources.MemoryBytes), FormatBytes(l.MaxMemory), prefix))
	}
	if p.Resources.GPUs > l.MaxGPUs {
		problems = append(problems, fmt.Sprintf("pipeline.resources.gpus %d is more than the limit of %d per run (%sMAX_GPUS)", p.Resources.GPUs, l.MaxGPUs, prefix))
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%s", strings.Join(problems, "; "))
}

// Apply returns r with the operator's defaults filled in: a run that asks
// for no memory is limited to MaxMemory.
func (l RunnerLimits) Apply(r Resources) Resources {
	if r.MemoryBytes == 0 {
		r.MemoryBytes = l.MaxMemory
	}
	return r
}

func (l RunnerLimits) imageAllowed(image string) bool {
	for _, g := range l.Images {
		if ok, _ := path.Match(g, image); ok {
			return true
		}
	}
	return false
}
