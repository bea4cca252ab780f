package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The init's inherited descriptors: the configuration to read and the
// result to write.
const (
	configFD = 3
	resultFD = 4
)

// alwaysHidden are hidden in every sandbox: scratch space shared with
// other programs, and runtime sockets (Redis, Docker, systemd).
var alwaysHidden = []string{"/tmp", "/var/tmp", "/dev/shm", "/run"}

// MaybeInit turns the process into a sandbox's init when it was started
// as one, and never returns then; otherwise it does nothing. Call it first
// thing in main, and in TestMain of tests that run sandboxed steps.
func MaybeInit() {
	if len(os.Args) == 0 || os.Args[0] != InitArg {
		return
	}
	os.Exit(runInit())
}

// runInit is the sandbox's PID 1: it builds the sandbox, runs the step,
// reports how it ended and returns the exit status for the process.
func runInit() int {
	result := os.NewFile(resultFD, "result")
	report := func(r initResult) {
		json.NewEncoder(result).Encode(r)
		result.Close()
	}
	var cfg initConfig
	if err := json.NewDecoder(os.NewFile(configFD, "config")).Decode(&cfg); err != nil {
		report(initResult{SetupError: "read configuration: " + err.Error()})
		return 125
	}
	// Mount and uid changes act on the calling thread; keep the work on one.
	runtime.LockOSThread()
	if err := setup(&cfg); err != nil {
		report(initResult{SetupError: err.Error()})
		return 125
	}
	code, err := runStep(&cfg)
	if err != nil {
		report(initResult{SetupError: err.Error()})
		return 125
	}
	report(initResult{ExitCode: code})
	return code
}

// setup builds the sandbox's view of the system: everything read-only,
// the hidden paths covered, the workspace writable, a private /tmp and a
// /proc of the new PID namespace.
func setup(cfg *initConfig) error {
	// Nothing done here may leak back to the host's mount table.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	// Detached copies of the workspace and the other writable trees, taken
	// before their parents are hidden, to be attached again on top.
	keep := append([]string{cfg.Workspace}, cfg.Writable...)
	trees := make([]int, len(keep))
	for i, p := range keep {
		fd, err := unix.OpenTree(unix.AT_FDCWD, p, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
		if err != nil {
			return fmt.Errorf("clone %s: %w", p, err)
		}
		defer unix.Close(fd)
		trees[i] = fd
	}
	if err := unix.MountSetattr(-1, "/", unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID}); err != nil {
		return fmt.Errorf("make the system read-only: %w", err)
	}
	tmpSize := cfg.Limits.TmpBytes
	if tmpSize <= 0 {
		tmpSize = 1 << 30
	}
	for _, p := range alwaysHidden {
		if err := mountTmpfs(p, fmt.Sprintf("mode=1777,size=%d", tmpSize), keep); err != nil {
			return err
		}
	}
	for _, p := range cfg.Hide {
		if err := hide(p, keep); err != nil {
			return err
		}
	}
	for i, p := range keep {
		if err := unix.MoveMount(trees[i], "", unix.AT_FDCWD, p, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
			return fmt.Errorf("attach %s: %w", p, err)
		}
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc for the sandbox: %w", err)
	}
	if err := unix.Sethostname([]byte("mlbot-sandbox")); err != nil {
		return fmt.Errorf("set hostname: %w", err)
	}
	if !cfg.Network {
		if err := loopbackUp(); err != nil {
			return err
		}
	}
	return nil
}

// mountTmpfs covers dir with an empty, writable tmpfs, if dir exists,
// and recreates in it the paths to those of keep that lie beneath dir.
func mountTmpfs(dir, data string, keep []string) error {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, data); err != nil {
		return fmt.Errorf("hide %s: %w", dir, err)
	}
	return mkdirsWithin(dir, keep)
}

// mkdirsWithin recreates the paths to those of keep beneath dir.
func mkdirsWithin(dir string, keep []string) error {
	for _, k := range keep {
		if within(dir, k) {
			if err := os.MkdirAll(k, 0o755); err != nil {
				return fmt.Errorf("hide %s: %w", dir, err)
			}
		}
	}
	return nil
}

// within reports whether p lies strictly beneath dir.
func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../")
}

// hide covers p so that the step sees none of it. The paths down to those
// of keep that lie beneath p are recreated in the cover, and the cover is
// then made read-only.
func hide(p string, keep []string) error {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("hide %s: %w", p, err)
	}
	if !fi.IsDir() {
		// A file (a config holding tokens): an empty one in its place.
		if err := unix.Mount("/dev/null", p, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("hide %s: %w", p, err)
		}
		return nil
	}
	if err := unix.Mount("tmpfs", p, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,size=1m"); err != nil {
		return fmt.Errorf("hide %s: %w", p, err)
	}
	if err := mkdirsWithin(p, keep); err != nil {
		return err
	}
	if err := unix.MountSetattr(-1, p, 0, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
		return fmt.Errorf("seal %s: %w", p, err)
	}
	return nil
}

// loopbackUp brings up lo in a fresh network namespace, so that a step
// can still talk to itself (a local parameter server, a test server).
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	return nil
}

// runStep starts the step's shell in a nested user and mount namespace as
// StepUID (no capabilities anywhere; every mount above it locked), forwards
// SIGTERM to every process of the sandbox, reaps orphans, and returns the
// shell's exit status once the shell has ended.
func runStep(cfg *initConfig) (int, error) {
	if err := setLimits(cfg); err != nil {
		return 0, err
	}
	// Where the step runs as the init's own host uid (mlbot without root),
	// it must not be able to ptrace the init, which holds capabilities
	// over the sandbox's namespaces.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return 0, fmt.Errorf("make the init non-dumpable: %w", err)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	cmd := exec.Command("/bin/sh", "-c", cfg.Command)
	cmd.Dir = cfg.Dir
	cmd.Env = cfg.Env
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:                 syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: StepUID, HostID: cfg.StepParentUID, Size: 1}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: StepUID, HostID: cfg.StepParentUID, Size: 1}},
		GidMappingsEnableSetgroups: false,
		Credential:                 &syscall.Credential{Uid: StepUID, Gid: StepUID, NoSetGroups: true},
		Pdeathsig:                  syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start the step: %w", err)
	}
	pid := cmd.Process.Pid
	exited := make(chan int, 1)
	go func() {
		// As PID 1 the init inherits every orphan of the sandbox: reap
		// them all, and note the shell's own end.
		for {
			var ws unix.WaitStatus
			got, err := unix.Wait4(-1, &ws, 0, nil)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				exited <- 125
				return
			}
			if got == pid {
				if ws.Signaled() {
					exited <- 128 + int(ws.Signal())
				} else {
					exited <- ws.ExitStatus()
				}
				return
			}
		}
	}()
	for {
		select {
		case code := <-exited:
			return code, nil
		case <-term:
			// Every process of the namespace but the init itself.
			unix.Kill(-1, unix.SIGTERM)
		}
	}
}

// setLimits applies the rlimits the step inherits.
func setLimits(cfg *initConfig) error {
	l := cfg.Limits
	procs, files := l.Processes, l.OpenFiles
	if procs <= 0 {
		procs = 4096
	}
	if files <= 0 {
		files = 65536
	}
	set := []struct {
		res int
		val int64
	}{{unix.RLIMIT_NPROC, procs}, {unix.RLIMIT_NOFILE, files}, {unix.RLIMIT_CORE, 0}}
	if l.CPUSeconds > 0 {
		set = append(set, struct {
			res int
			val int64
		}{unix.RLIMIT_CPU, l.CPUSeconds})
	}
	if cfg.MemoryRlimit && l.MemoryBytes > 0 {
		set = append(set, struct {
			res int
			val int64
		}{unix.RLIMIT_AS, l.MemoryBytes})
	}
	for _, s := range set {
		// syscall's Setrlimit, not unix's: it also tells os/exec not to
		// restore the RLIMIT_NOFILE the Go runtime started with.
		// A limit can only be lowered from inside a user namespace.
		var cur syscall.Rlimit
		if err := syscall.Getrlimit(s.res, &cur); err != nil {
			return fmt.Errorf("read resource limit %d: %w", s.res, err)
		}
		v := min(uint64(s.val), cur.Max)
		lim := syscall.Rlimit{Cur: v, Max: v}
		if err := syscall.Setrlimit(s.res, &lim); err != nil {
			return fmt.Errorf("set resource limit %d to %d: %w", s.res, s.val, err)
		}
	}
	return nil
}
