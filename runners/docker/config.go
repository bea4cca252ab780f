package docker

import (
	"fmt"
	"math"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/runners"
	"github.com/mlbot/mlbot/runners/agentapi"
)

// socketURL is agentapi.EnvURL as the agent in the container sees it.
const socketURL = "unix://" + SocketDir + "/" + socketName

// createOptions is the container of job: the job's image running the
// mounted agent as the runner's user, isolated and limited as the
// package comment says, with the agent's environment (token, socket,
// workdir) and the run's labels. runDir is the run's host directory of
// its socket.
func (r *Runner) createOptions(job runners.Job, token, runDir string) (client.ContainerCreateOptions, error) {
	res, err := hostResources(job.Resources, r.opts)
	if err != nil {
		return client.ContainerCreateOptions{}, err
	}
	uid, gid, _ := strings.Cut(r.opts.User, ":")
	ws := "rw,exec,nosuid,nodev,mode=0755,uid=" + uid + ",gid=" + gid
	tmp := "rw,exec,nosuid,nodev,mode=1777,uid=" + uid + ",gid=" + gid
	if r.opts.WorkspaceSize != "" {
		n, err := configs.ParseQuantity(r.opts.WorkspaceSize, 1)
		if err != nil {
			return client.ContainerCreateOptions{}, fmt.Errorf("workspace size: %w", err)
		}
		ws += fmt.Sprintf(",size=%d", n)
	}
	if r.opts.TmpSize != "" {
		n, err := configs.ParseQuantity(r.opts.TmpSize, 1)
		if err != nil {
			return client.ContainerCreateOptions{}, fmt.Errorf("tmp size: %w", err)
		}
		tmp += fmt.Sprintf(",size=%d", n)
	}
	network := container.NetworkMode("none")
	if job.Network {
		network = "bridge"
	}
	pids := r.opts.PidsLimit
	stop := int(math.Ceil(r.stopTimeout().Seconds()))
	init := true
	return client.ContainerCreateOptions{
		Name: containerName(job.ID),
		Config: &container.Config{
			Image:      job.Image,
			User:       r.opts.User,
			Entrypoint: []string{AgentPath},
			Cmd:        []string{"agent"},
			WorkingDir: agentapi.DefaultWorkdir,
			Env: []string{
				agentapi.EnvURL + "=" + socketURL,
				agentapi.EnvToken + "=" + token,
				agentapi.EnvWorkdir + "=" + agentapi.DefaultWorkdir,
				"HOME=/tmp",
			},
			Labels:      map[string]string{LabelRun: job.ID, LabelManaged: "true"},
			StopSignal:  "SIGTERM",
			StopTimeout: &stop,
		},
		HostConfig: &container.HostConfig{
			NetworkMode: network,
			Mounts: []mount.Mount{
				{Type: mount.TypeBind, Source: r.opts.AgentBinary, Target: AgentPath, ReadOnly: true},
				{Type: mount.TypeBind, Source: runDir, Target: SocketDir, ReadOnly: true},
			},
			Tmpfs:          map[string]string{agentapi.DefaultWorkdir: ws, "/tmp": tmp},
			ReadonlyRootfs: true,
			CapDrop:        []string{"ALL"},
			SecurityOpt:    []string{"no-new-privileges"},
			// docker-init reaps the processes steps leave behind and
			// passes the stop signal on to the agent.
			Init:      &init,
			ShmSize:   res.shm,
			Resources: containerResources(res, job.Resources.GPUs, pids),
		},
	}, nil
}

// limits are a job's resources in the engine's units.
type limits struct {
	memory, nanoCPUs, shm int64
}

// hostResources reads the quantities of want, falling back on the
// runner's defaults for those it leaves empty.
func hostResources(want runners.Resources, opts Options) (limits, error) {
	pick := func(a, b string) string {
		if a != "" {
			return a
		}
		return b
	}
	var l limits
	var err error
	if q := pick(want.Memory, opts.Defaults.Memory); q != "" {
		if l.memory, err = configs.ParseQuantity(q, 1); err != nil {
			return l, fmt.Errorf("memory: %w", err)
		}
	}
	if q := pick(want.CPU, opts.Defaults.CPU); q != "" {
		if l.nanoCPUs, err = configs.ParseQuantity(q, 1e9); err != nil {
			return l, fmt.Errorf("cpu: %w", err)
		}
	}
	if q := pick(want.ShmSize, opts.Defaults.ShmSize); q != "" {
		if l.shm, err = configs.ParseQuantity(q, 1); err != nil {
			return l, fmt.Errorf("shm size: %w", err)
		}
	}
	return l, nil
}

// containerResources are the cgroup limits of l, with no swap beyond the
// memory limit, and a request for gpus NVIDIA GPUs when gpus > 0.
func containerResources(l limits, gpus int, pids int64) container.Resources {
	res := container.Resources{Memory: l.memory, NanoCPUs: l.nanoCPUs, PidsLimit: &pids}
	if l.memory > 0 {
		res.MemorySwap = l.memory
	}
	if gpus > 0 {
		res.DeviceRequests = []container.DeviceRequest{{Driver: "nvidia", Count: gpus, Capabilities: [][]string{{"gpu"}}}}
	}
	return res
}
