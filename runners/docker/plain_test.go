package docker

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/mlbot/mlbot/runners"
)

// plainRunner is a Runner without a hub, for the tests that run a plain
// shell command in a container made as RunJob makes it.
func plainRunner(t *testing.T, opts Options) *Runner {
	t.Helper()
	needEngine(t)
	dir, err := os.MkdirTemp(testEnv.dir, "run-")
	if err != nil {
		t.Fatal(err)
	}
	opts.Client, opts.AgentBinary, opts.RunDir = testEnv.cli, testEnv.binary, dir
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	r, err := newRunner(opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// plainExit is how a plain container ended.
type plainExit struct {
	output string
	code   int
	oom    bool
}

// runPlain runs script with /bin/sh in the container RunJob would make for
// job (in place of the agent), waits for it and removes it.
func runPlain(t *testing.T, r *Runner, job runners.Job, script string) plainExit {
	t.Helper()
	ctx := context.Background()
	if job.ID == "" {
		job.ID = "plain-" + strings.ReplaceAll(t.Name(), "/", "-")
	}
	if job.Image == "" {
		job.Image = testEnv.image
	}
	dir := runDir(r.opts.RunDir, job.ID)
	if err := os.MkdirAll(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	opts, err := r.createOptions(job, "token", dir)
	if err != nil {
		t.Fatal(err)
	}
	opts.Config.Entrypoint, opts.Config.Cmd = []string{"/bin/sh", "-c", script}, nil
	c, err := r.engine.ContainerCreate(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.remove(context.Background(), c.ID) })
	if _, err := r.engine.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	w := r.engine.ContainerWait(wctx, c.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case <-w.Result:
	case err := <-w.Error:
		t.Fatal(err)
	}
	info, err := r.engine.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := r.engine.ContainerLogs(ctx, c.ID, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, rc); err != nil {
		t.Fatal(err)
	}
	return plainExit{output: out.String(), code: info.Container.State.ExitCode, oom: info.Container.State.OOMKilled}
}

// values reads the "key=value" lines of out.
func values(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// probe prints what the isolation tests check, one key=value a line.
const probe = `
echo uid=$(id -u)
echo gid=$(id -g)
echo capeff=$(grep CapEff /proc/self/status | cut -f2)
echo capbnd=$(grep CapBnd /proc/self/status | cut -f2)
echo nonewprivs=$(grep NoNewPrivs /proc/self/status | cut -f2)
echo seccomp=$(grep '^Seccomp:' /proc/self/status | cut -f2)
touch /rootfs-file 2>/dev/null && echo rootfs=writable || echo rootfs=read-only
touch /workspace/f 2>/dev/null && echo workspace=writable || echo workspace=read-only
touch /tmp/f 2>/dev/null && echo tmp=writable || echo tmp=read-only
touch /mlbot/run/f 2>/dev/null && echo rundir=writable || echo rundir=read-only
touch /mlbot/bin/mlbot 2>/dev/null && echo binary=writable || echo binary=read-only
echo cwd=$(pwd)
echo interfaces=$(ls /sys/class/net | tr '\n' ' ')
echo pids=$(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max)
echo memory=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)
echo shm=$(df -k /dev/shm | tail -1 | awk '{print $2}')
echo quota=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max)
echo agent=$MLBOT_AGENT_URL
echo home=$HOME
`

// TestContainerIsolation runs a probe in the container of an untrusted
// job and of a trusted one and checks each confinement the package
// comment promises.
func TestContainerIsolation(t *testing.T) {
	r := plainRunner(t, Options{PidsLimit: 123})
	tests := []struct {
		name string
		job  runners.Job
		want map[string]string
	}{
		{"untrusted", runners.Job{Resources: runners.Resources{Memory: "96Mi", CPU: "500m", ShmSize: "16Mi"}}, map[string]string{
			"interfaces": "lo", "memory": "100663296", "shm": "16384", "quota": "50000"}},
		{"trusted", runners.Job{Network: true}, map[string]string{"interfaces": "eth0 lo"}},
	}
	common := map[string]string{
		"uid": "1000", "gid": "1000", "capeff": "0000000000000000", "capbnd": "0000000000000000",
		"nonewprivs": "1", "seccomp": "2", "rootfs": "read-only", "workspace": "writable", "tmp": "writable",
		"rundir": "read-only", "binary": "read-only", "cwd": "/workspace", "pids": "123",
		"agent": "unix:///mlbot/run/agent.sock", "home": "/tmp",
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := runPlain(t, r, tt.job, probe)
			got := values(x.output)
			for k, want := range common {
				if _, ok := tt.want[k]; !ok {
					tt.want[k] = want
				}
			}
			for k, want := range tt.want {
				if got[k] != want {
					t.Errorf("%s = %q, want %q", k, got[k], want)
				}
			}
			if t.Failed() {
				t.Logf("probe output:\n%s", x.output)
			}
		})
	}
}

// networkProbe tries to reach Redis on the host's loopback and the
// bridge's gateway, and the outside, one key=value a line.
const networkProbe = `
for addr in 127.0.0.1:6379 172.17.0.1:6379 1.1.1.1:53; do
  if echo PING | nc -w 2 ${addr%:*} ${addr#*:} >/dev/null 2>&1; then echo "$addr=reached"; else echo "$addr=unreachable"; fi
done
wget -q -T 3 -O /dev/null http://1.1.1.1/ 2>/dev/null && echo wget=reached || echo wget=unreachable
echo routes=$(grep -c . /proc/net/route)
`

// TestContainerNoNetwork checks that an untrusted job's container reaches
// neither the host's services (Redis on the host's loopback, the bridge's
// gateway) nor the outside, while a trusted one has a route out.
func TestContainerNoNetwork(t *testing.T) {
	r := plainRunner(t, Options{})
	x := runPlain(t, r, runners.Job{}, networkProbe)
	got := values(x.output)
	for _, k := range []string{"127.0.0.1:6379", "172.17.0.1:6379", "1.1.1.1:53", "wget"} {
		if got[k] != "unreachable" {
			t.Errorf("untrusted: %s = %q, want unreachable\n%s", k, got[k], x.output)
		}
	}
	// /proc/net/route has a header line and one line a route: none but
	// the header without a network.
	if got["routes"] != "1" {
		t.Errorf("untrusted: %s lines in /proc/net/route, want only the header", got["routes"])
	}
	x = runPlain(t, r, runners.Job{ID: "plain-trusted-net", Network: true}, `echo routes=$(grep -c . /proc/net/route)`)
	if got := values(x.output)["routes"]; got == "1" || got == "" {
		t.Errorf("trusted: %q lines in /proc/net/route, want a default route", got)
	}
}

// TestContainerOOM checks that a container over its memory limit is
// reported by the engine as OOM-killed, the fact RunJob turns into the
// step's OOMKilled.
func TestContainerOOM(t *testing.T) {
	r := plainRunner(t, Options{})
	x := runPlain(t, r, runners.Job{Resources: runners.Resources{Memory: "32Mi"}},
		`dd if=/dev/zero of=/dev/null bs=64M count=1; echo dd=$?`)
	if !x.oom || values(x.output)["dd"] != "137" {
		t.Fatalf("oom = %v, output %q; want OOMKilled and dd killed with 137", x.oom, x.output)
	}
}
