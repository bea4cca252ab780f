package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/runners"
	"github.com/mlbot/mlbot/runners/local"
	"github.com/mlbot/mlbot/runners/sandbox"
)

// errNoSandbox is wrapped by buildRunner's error when the host cannot make
// the sandbox.
var errNoSandbox = errors.New("the namespace sandbox that every step runs in cannot be made on this host")

// buildRunner makes the runner of this process's steps: the local runner
// in a namespace sandbox, checked once here so that a host that cannot
// make one is found at start, not on the first pull request. It returns
// the memory limit of one step too (0 when unknown).
func buildRunner(ctx context.Context, cfg *configs.Server, log *slog.Logger) (runners.Runner, int64, error) {
	if cfg.UnsafeNoSandbox {
		log.Warn("MLBOT_UNSAFE_NO_SANDBOX is set: pipeline and deploy steps run as plain processes of mlbot's own user, with mlbot's network, files and processes within their reach. NEVER USE THIS WITH CODE YOU DO NOT TRUST, approved or not.")
		return local.New(), 0, nil
	}
	opts := sandboxOptions(cfg)
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, 0, err
	}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return nil, 0, fmt.Errorf("MLBOT_DATA_DIR: %w", err)
	}
	if err := sandbox.Check(ctx, opts, dataDir); err != nil {
		return nil, 0, fmt.Errorf("%w: %w\n"+
			"mlbot needs unprivileged user namespaces (sysctl user.max_user_namespaces > 0; kernel.unprivileged_userns_clone=1 on Debian's older kernels), "+
			"and in a container a seccomp profile that allows them (docker run --security-opt seccomp=unconfined, or the docker runner). "+
			"Only if every repository's code is trusted: MLBOT_UNSAFE_NO_SANDBOX=true runs steps without it", errNoSandbox, err)
	}
	log.Info("steps run in a namespace sandbox", "outside_uid", opts.OutsideUID, "memory_bytes", opts.Limits.MemoryBytes,
		"cpu_seconds", opts.Limits.CPUSeconds, "processes", opts.Limits.Processes, "hidden", opts.Hide)
	return local.NewSandboxed(opts), opts.Limits.MemoryBytes, nil
}

// sandboxOptions hides from every step mlbot's data directory and the
// files that hold its credentials (and, when mlbot is not root, the home
// directory of the user that steps then share with it).
func sandboxOptions(cfg *configs.Server) sandbox.Options {
	var hide []string
	for _, p := range []string{cfg.DataDir, cfg.ConfigFile, cfg.GitHubAppPrivateKeyFile} {
		if p == "" {
			continue
		}
		if abs, err := filepath.Abs(p); err == nil {
			hide = append(hide, abs)
		}
	}
	if os.Geteuid() != 0 {
		if home, err := os.UserHomeDir(); err == nil && home != "/" {
			hide = append(hide, home)
		}
	}
	mem := cfg.SandboxMemory
	if mem == 0 {
		mem = machineMemory() / 4 * 3
	}
	return sandbox.Options{
		Hide:       hide,
		OutsideUID: cfg.SandboxUID,
		Limits: sandbox.Limits{
			MemoryBytes: mem,
			CPUSeconds:  int64(cfg.SandboxCPU.Seconds()),
			Processes:   int64(cfg.SandboxProcesses),
		},
	}
}

// machineMemory is MemTotal from /proc/meminfo in bytes, or 0.
func machineMemory() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
