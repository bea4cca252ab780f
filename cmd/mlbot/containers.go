package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	k8s "k8s.io/client-go/kubernetes"

	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/runners"
	"github.com/mlbot/mlbot/runners/agentapi"
	"github.com/mlbot/mlbot/runners/docker"
	"github.com/mlbot/mlbot/runners/kubernetes"
)

// sweeper is a container runner that removes what dead workers left.
type sweeper interface {
	Sweep(ctx context.Context, live func(id string) bool) error
}

// addContainerRunners adds to set the container runners MLBOT_RUNNERS
// names, each driving its runs through hub, and returns them as sweepers
// for the start-up sweep. The docker runner's engine is checked here, so
// that a host without one is found at start.
func addContainerRunners(ctx context.Context, cfg *configs.Server, set runners.Set, hub agentapi.Hub, log *slog.Logger) ([]sweeper, error) {
	var out []sweeper
	if slices.Contains(cfg.Runners, "docker") {
		bin, err := agentBinary(cfg.AgentBinary)
		if err != nil {
			return nil, err
		}
		r, err := docker.New(docker.Options{Hub: hub, AgentBinary: bin, RunDir: dockerRunDir(cfg.DataDir),
			MaxArtifactBytes: cfg.MaxArtifactBytes, Logger: log,
			Defaults: runners.Resources{Memory: formatBytesOrEmpty(cfg.Docker.MaxMemory)}})
		if err != nil {
			return nil, fmt.Errorf("MLBOT_RUNNERS names docker: %w", err)
		}
		set["docker"] = r
		out = append(out, r)
		log.Info("the docker runner is on", "images", cfg.Docker.Images, "max_cpu", cfg.Docker.MaxCPU,
			"max_memory", cfg.Docker.MaxMemory, "max_gpus", cfg.Docker.MaxGPUs, "agent_binary", bin)
	}
	if slices.Contains(cfg.Runners, "kubernetes") {
		rc, err := kubernetes.ClientConfig(cfg.K8s.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("MLBOT_RUNNERS names kubernetes: %w", err)
		}
		cs, err := k8s.NewForConfig(rc)
		if err != nil {
			return nil, fmt.Errorf("MLBOT_RUNNERS names kubernetes: %w", err)
		}
		url := cfg.K8s.AgentURL
		if url == "" {
			url = cfg.PublicURL
		}
		r, err := kubernetes.New(cs, hub, kubernetes.Options{Namespace: cfg.K8s.Namespace, AgentImage: cfg.K8s.AgentImage,
			AgentURL: url, ServiceAccount: cfg.K8s.ServiceAccount, RuntimeClass: cfg.K8s.RuntimeClass,
			ImagePullSecrets: cfg.K8s.ImagePullSecrets, PendingTimeout: cfg.K8s.PendingTimeout,
			MaxArtifactBytes: cfg.MaxArtifactBytes, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("MLBOT_RUNNERS names kubernetes: %w", err)
		}
		set["kubernetes"] = r
		out = append(out, r)
		log.Info("the kubernetes runner is on", "namespace", cfg.K8s.Namespace, "images", cfg.K8s.Images,
			"agent_url", url, "pending_timeout", cfg.K8s.PendingTimeout)
	}
	return out, nil
}

// dockerRunDir is where the docker runner keeps its runs' sockets: a
// short path (a socket's must fit in 107 bytes) that every process using
// the same data directory derives alike, so that a restarted worker
// serves a running container's socket where the container sees it.
func dockerRunDir(dataDir string) string {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		abs = dataDir
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(os.TempDir(), "mlbot-run-"+hex.EncodeToString(sum[:6]))
}

func formatBytesOrEmpty(n int64) string {
	if n <= 0 {
		return ""
	}
	return configs.FormatBytes(n)
}
