package docker

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/mlbot/mlbot/runners"
)

// configRunner is a Runner for the tests of the container's
// configuration, which need no engine.
func configRunner(t *testing.T, opts Options) *Runner {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mlbot")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	opts.AgentBinary, opts.RunDir = bin, t.TempDir()
	r, err := newRunner(opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCreateOptions(t *testing.T) {
	r := configRunner(t, Options{Defaults: runners.Resources{Memory: "2Gi", CPU: "1"}, User: "1234:5678",
		WorkspaceSize: "1Gi", KillGrace: 20 * time.Second})
	tests := []struct {
		name  string
		job   runners.Job
		check func(t *testing.T, hc *container.HostConfig, c *container.Config)
	}{
		{"untrusted job, defaults", runners.Job{ID: "run/1", Image: "python:3.12"}, func(t *testing.T, hc *container.HostConfig, c *container.Config) {
			if hc.NetworkMode != "none" {
				t.Errorf("NetworkMode = %q, want none", hc.NetworkMode)
			}
			if hc.Memory != 2<<30 || hc.MemorySwap != 2<<30 || hc.NanoCPUs != 1e9 || hc.ShmSize != 0 {
				t.Errorf("Memory %d, MemorySwap %d, NanoCPUs %d, ShmSize %d; want the defaults, no swap", hc.Memory, hc.MemorySwap, hc.NanoCPUs, hc.ShmSize)
			}
			if len(hc.DeviceRequests) != 0 {
				t.Errorf("DeviceRequests = %+v, want none", hc.DeviceRequests)
			}
		}},
		{"trusted job with GPUs", runners.Job{ID: "r2", Image: "cuda", Network: true,
			Resources: runners.Resources{GPUs: 2, Memory: "16Gi", CPU: "3500m", ShmSize: "8Gi"}}, func(t *testing.T, hc *container.HostConfig, c *container.Config) {
			if hc.NetworkMode != "bridge" {
				t.Errorf("NetworkMode = %q, want bridge", hc.NetworkMode)
			}
			want := []container.DeviceRequest{{Driver: "nvidia", Count: 2, Capabilities: [][]string{{"gpu"}}}}
			if !reflect.DeepEqual(hc.DeviceRequests, want) {
				t.Errorf("DeviceRequests = %+v, want %+v", hc.DeviceRequests, want)
			}
			if hc.Memory != 16<<30 || hc.NanoCPUs != 35e8 || hc.ShmSize != 8<<30 {
				t.Errorf("Memory %d, NanoCPUs %d, ShmSize %d; want the job's", hc.Memory, hc.NanoCPUs, hc.ShmSize)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, err := r.createOptions(tt.job, "tok", "/run/mlbot/abc")
			if err != nil {
				t.Fatal(err)
			}
			hc, c := opts.HostConfig, opts.Config
			if c.User != "1234:5678" || c.Image != tt.job.Image || !reflect.DeepEqual(c.Entrypoint, []string{AgentPath}) ||
				!reflect.DeepEqual(c.Cmd, []string{"agent"}) || c.WorkingDir != "/workspace" {
				t.Errorf("User %q, Image %q, Entrypoint %q, Cmd %q, WorkingDir %q", c.User, c.Image, c.Entrypoint, c.Cmd, c.WorkingDir)
			}
			wantEnv := []string{"MLBOT_AGENT_URL=unix:///mlbot/run/agent.sock", "MLBOT_AGENT_TOKEN=tok", "MLBOT_AGENT_WORKDIR=/workspace", "HOME=/tmp"}
			if !reflect.DeepEqual(c.Env, wantEnv) {
				t.Errorf("Env = %q, want %q", c.Env, wantEnv)
			}
			if want := map[string]string{LabelRun: tt.job.ID, LabelManaged: "true"}; !reflect.DeepEqual(c.Labels, want) {
				t.Errorf("Labels = %v, want %v", c.Labels, want)
			}
			if c.StopTimeout == nil || *c.StopTimeout != 25 {
				t.Errorf("StopTimeout = %v, want the kill grace and 5s", c.StopTimeout)
			}
			if !hc.ReadonlyRootfs || !reflect.DeepEqual(hc.CapDrop, []string{"ALL"}) || len(hc.CapAdd) != 0 || hc.Privileged ||
				!reflect.DeepEqual(hc.SecurityOpt, []string{"no-new-privileges"}) {
				t.Errorf("ReadonlyRootfs %v, CapDrop %q, CapAdd %q, Privileged %v, SecurityOpt %q", hc.ReadonlyRootfs, hc.CapDrop, hc.CapAdd, hc.Privileged, hc.SecurityOpt)
			}
			if hc.PidsLimit == nil || *hc.PidsLimit != DefaultPidsLimit || hc.Init == nil || !*hc.Init {
				t.Errorf("PidsLimit %v, Init %v; want %d and true", hc.PidsLimit, hc.Init, DefaultPidsLimit)
			}
			if len(hc.Mounts) != 2 || hc.Mounts[0].Source != r.opts.AgentBinary || hc.Mounts[0].Target != AgentPath || !hc.Mounts[0].ReadOnly ||
				hc.Mounts[1].Source != "/run/mlbot/abc" || hc.Mounts[1].Target != SocketDir || !hc.Mounts[1].ReadOnly || len(hc.Binds) != 0 {
				t.Errorf("Mounts = %+v, Binds %q; want the binary and the run directory, read-only, and nothing else", hc.Mounts, hc.Binds)
			}
			if ws := hc.Tmpfs["/workspace"]; !strings.Contains(ws, "uid=1234,gid=5678") || !strings.Contains(ws, fmt.Sprintf("size=%d", 1<<30)) {
				t.Errorf("/workspace tmpfs %q, want owned by the user and 1Gi", ws)
			}
			if _, ok := hc.Tmpfs["/tmp"]; !ok || len(hc.Tmpfs) != 2 {
				t.Errorf("Tmpfs = %v, want /workspace and /tmp", hc.Tmpfs)
			}
			tt.check(t, hc, c)
		})
	}
}

func TestNewRefuses(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "mlbot")
	if err := os.WriteFile(bin, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"root", Options{User: "0:1000"}, "never run as root"},
		{"root's group", Options{User: "1000:0"}, "never run as root"},
		{"user name", Options{User: "nobody"}, "numeric uid:gid"},
		{"no binary", Options{AgentBinary: filepath.Join(dir, "absent")}, "agent binary"},
		{"binary is a directory", Options{AgentBinary: dir}, "not a regular file"},
		{"run directory too long", Options{RunDir: filepath.Join(dir, strings.Repeat("d", 90))}, "too long"},
		{"bad default memory", Options{Defaults: runners.Resources{Memory: "4GB"}}, "memory"},
		{"bad workspace size", Options{WorkspaceSize: "big"}, "workspace size"},
		{"no hub", Options{}, "Hub is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.opts.AgentBinary == "" {
				tt.opts.AgentBinary = bin
			}
			if tt.opts.RunDir == "" {
				tt.opts.RunDir = dir
			}
			newFn := newRunner // checks everything but the hub, which only RunJob needs
			if tt.name == "no hub" {
				newFn = New
			}
			_, err := newFn(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error about %q", err, tt.want)
			}
		})
	}
}

func TestContainerName(t *testing.T) {
	a, b := containerName("acme/model#12@abc"), containerName("acme/model#12@abd")
	if a == b || !strings.HasPrefix(a, "mlbot-acme-model-12-abc-") {
		t.Errorf("names %q and %q: want distinct, readable names", a, b)
	}
	if long := containerName(strings.Repeat("x", 300)); len(long) > 64 {
		t.Errorf("name of a long id has %d bytes", len(long))
	}
	if n := len(socketPath("/run/mlbot", strings.Repeat("x", 300))); n != len("/run/mlbot")+28 {
		t.Errorf("socket path has %d bytes, want the run directory's plus 28", n)
	}
}
