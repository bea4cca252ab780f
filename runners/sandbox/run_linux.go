package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mlbot/mlbot/runners/internal/stop"
)

// Run runs step in a new sandbox made as opts says, and returns how it
// ended. A non-zero exit is a Result; an error means the sandbox could not
// be made or watched (the step did not run, or its end is unknown).
//
// When the step's timeout expires or ctx ends, every process of the
// sandbox gets SIGTERM, and the sandbox is killed KillGrace later. However
// the step ends, nothing it started outlives Run.
func Run(ctx context.Context, opts Options, step Step) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{ExitCode: -1, Canceled: true}, nil
	}
	if err := checkStep(step); err != nil {
		return Result{ExitCode: -1}, err
	}
	grace := opts.KillGrace
	if grace <= 0 {
		grace = 2 * time.Second
	}
	out := step.Output
	if out == nil {
		out = io.Discard
	}
	outside := os.Geteuid()
	if outside == 0 {
		outside = opts.OutsideUID
		if outside <= 0 {
			outside = DefaultOutsideUID
		}
		if err := chownTree(step.Workspace, outside); err != nil {
			return Result{ExitCode: -1}, fmt.Errorf("sandbox: give the workspace to uid %d: %w", outside, err)
		}
	}

	cgroup, cgErr := newMemoryCgroup(opts.Limits.MemoryBytes)
	cfg := initConfig{Command: step.Command, Workspace: step.Workspace, Writable: step.Writable, Dir: step.Dir, Env: step.Env,
		Hide: opts.Hide, Network: step.Network, Limits: opts.Limits, MemoryRlimit: cgroup == nil,
		StepParentUID: stepParentUID()}
	if cgroup != nil {
		defer cgroup.remove()
	}
	_ = cgErr // without a cgroup, RLIMIT_AS bounds memory instead

	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return Result{ExitCode: -1}, err
	}
	defer cfgR.Close()
	defer cfgW.Close()
	resR, resW, err := os.Pipe()
	if err != nil {
		return Result{ExitCode: -1}, err
	}
	defer resR.Close()
	defer resW.Close()

	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{InitArg}
	cmd.Env = []string{} // the init needs nothing; the step gets step.Env
	cmd.Stdout, cmd.Stderr = out, out
	cmd.ExtraFiles = []*os.File{cfgR, resW}
	cmd.SysProcAttr = initAttr(outside, step.Network)
	// Everything in the sandbox dies with the init, so its output pipe
	// closes at once; this only guards against the unexpected.
	cmd.WaitDelay = grace

	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Result{ExitCode: -1}, fmt.Errorf("sandbox: start: %w", err)
	}
	cfgR.Close()
	resW.Close()
	if cgroup != nil {
		if err := cgroup.add(cmd.Process.Pid); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return Result{ExitCode: -1}, fmt.Errorf("sandbox: %w", err)
		}
	}
	// The init waits for its configuration: only now, inside the cgroup,
	// does it start the step.
	if err := json.NewEncoder(cfgW).Encode(cfg); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return Result{ExitCode: -1}, fmt.Errorf("sandbox: configure: %w", err)
	}
	cfgW.Close()

	exited := make(chan struct{})
	stopped := stop.Watch(ctx, step.Timeout, grace, exited,
		func() { cmd.Process.Signal(syscall.SIGTERM) },
		func() { cmd.Process.Kill() })

	var res initResult
	decodeErr := json.NewDecoder(resR).Decode(&res)
	waitErr := cmd.Wait()
	close(exited)
	r := Result{Duration: time.Since(start)}
	switch <-stopped {
	case stop.TimedOut:
		r.TimedOut = true
	case stop.Canceled:
		r.Canceled = true
	}
	if cgroup != nil {
		r.OOMKilled = cgroup.oomKilled()
	}
	switch {
	case decodeErr == nil && res.SetupError != "":
		return Result{ExitCode: -1}, fmt.Errorf("sandbox: %s", res.SetupError)
	case decodeErr == nil:
		r.ExitCode = res.ExitCode
	case r.TimedOut || r.Canceled:
		// Killed before it could say how the step ended.
		r.ExitCode = 128 + int(syscall.SIGKILL)
	default:
		var ee *exec.ExitError
		if errors.As(waitErr, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				// The init itself was killed (the OOM killer, an operator).
				r.ExitCode = 128 + int(ws.Signal())
				return r, nil
			}
		}
		return Result{ExitCode: -1}, fmt.Errorf("sandbox: the init ended without a result (%v, %v)", decodeErr, waitErr)
	}
	return r, nil
}

// initAttr is how the init is cloned: new user, mount, PID, IPC and UTS
// namespaces (and network, unless the step keeps the host's), root inside
// and outside uid on the host.
func initAttr(outside int, network bool) *syscall.SysProcAttr {
	flags := syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID |
		syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS
	if !network {
		flags |= syscall.CLONE_NEWNET
	}
	// Without root only mlbot's own uid can be mapped: it is root inside,
	// and the step, nested one level down, runs as it too. As root, the
	// init is the host's root with capabilities over its namespaces only
	// (so that it can read what it must mount), and the step's uid is the
	// outside uid.
	uids := []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}}
	gids := []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
	if os.Geteuid() == 0 {
		uids = append(uids, syscall.SysProcIDMap{ContainerID: StepUID, HostID: outside, Size: 1})
		gids = append(gids, syscall.SysProcIDMap{ContainerID: StepUID, HostID: outside, Size: 1})
	}
	return &syscall.SysProcAttr{
		Cloneflags:                 uintptr(flags),
		UidMappings:                uids,
		GidMappings:                gids,
		GidMappingsEnableSetgroups: false,
		Pdeathsig:                  syscall.SIGKILL,
	}
}

// stepParentUID is the uid, in the init's user namespace, that the step's
// uid maps to: StepUID itself where the init could map it to the outside
// uid (as root), the init's root (mlbot's own uid) otherwise.
func stepParentUID() int {
	if os.Geteuid() == 0 {
		return StepUID
	}
	return 0
}

// checkStep rejects a step the init could not run as asked.
func checkStep(step Step) error {
	if !filepath.IsAbs(step.Workspace) || filepath.Clean(step.Workspace) != step.Workspace {
		return fmt.Errorf("sandbox: workspace %q is not a clean absolute path", step.Workspace)
	}
	if rel, err := filepath.Rel(step.Workspace, step.Dir); err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("sandbox: directory %q is not inside the workspace %q", step.Dir, step.Workspace)
	}
	if fi, err := os.Stat(step.Workspace); err != nil || !fi.IsDir() {
		return fmt.Errorf("sandbox: workspace %q is not a directory", step.Workspace)
	}
	for _, w := range step.Writable {
		if !filepath.IsAbs(w) || filepath.Clean(w) != w {
			return fmt.Errorf("sandbox: writable path %q is not a clean absolute path", w)
		}
		if fi, err := os.Stat(w); err != nil || !fi.IsDir() {
			return fmt.Errorf("sandbox: writable path %q is not a directory", w)
		}
	}
	return nil
}

// chownTree gives dir and everything in it to uid (symlinks themselves,
// never their targets).
func chownTree(dir string, uid int) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	})
}
