// Package sandbox runs one pipeline step in a Linux namespace sandbox:
// its own user, PID, mount, IPC, UTS and (for untrusted code) network
// namespaces, as a uid that is not mlbot's, seeing its workspace
// read-write, the rest of the system read-only, a private /tmp, and
// nothing of mlbot's data directory, processes or sockets.
//
// A sandbox is two processes deep. The parent (mlbot) starts its own
// binary again as the sandbox's init ("mlbot-sandbox-init", PID 1 of the
// new PID namespace, root only inside the new user namespace); the init
// builds the mount table, then starts the step in a second, nested user
// and mount namespace as an unprivileged uid, so that nothing the step
// runs can undo a mount and look beneath it. When the step's shell exits,
// the init exits and the kernel kills every process left in the PID
// namespace: a step cannot leave anything behind (setsid and double forks
// included). Resources are bounded with rlimits, and with a memory cgroup
// where mlbot may create one (which also tells an out-of-memory kill
// apart from an ordinary failure).
//
// Every program that runs sandboxed steps must call MaybeInit first thing
// in main (and in TestMain of tests that run steps): it turns the process
// into the sandbox's init when it was started as one.
package sandbox

import (
	"errors"
	"io"
	"time"
)

// InitArg is argv[0] of a process started as a sandbox's init.
const InitArg = "mlbot-sandbox-init"

// StepUID is the uid (and gid) the step has inside its namespaces.
const StepUID = 1000

// DefaultOutsideUID is the host uid a step runs as when mlbot runs as
// root and the operator chose none: not root, not mlbot, and outside the
// ranges distributions hand to people and services.
const DefaultOutsideUID = 200000

// ErrUnsupported is returned where namespaces cannot be made at all (a
// platform other than Linux).
var ErrUnsupported = errors.New("sandbox: namespaces are not supported on this platform")

// Options is how an installation's sandboxes are made; it is the same for
// every step.
type Options struct {
	// Hide lists directories (and files) the step must not see, besides
	// those the sandbox always hides (/tmp, /var/tmp, /dev/shm, /run): the
	// data directory first of all. Each is covered by an empty read-only
	// tmpfs (a file by an empty file); the step's workspace, when it lies
	// beneath one, is mounted back on top.
	Hide []string
	// OutsideUID is the host uid steps run as when mlbot runs as root;
	// zero means DefaultOutsideUID. Without root only mlbot's own uid can
	// be mapped, and steps run as that uid on the host (the namespaces
	// still hide mlbot's files and processes from them).
	OutsideUID int
	// Limits bounds each step's resources; zero fields take defaults.
	Limits Limits
	// KillGrace is the wait between SIGTERM and SIGKILL when a step is
	// stopped; zero means two seconds.
	KillGrace time.Duration
}

// Limits bounds one step.
type Limits struct {
	// MemoryBytes caps the step's memory: a memory cgroup's limit where
	// one can be made (an OOM kill is then reported as such), and the
	// address space of each process (RLIMIT_AS) otherwise. Zero: no limit.
	MemoryBytes int64
	// CPUSeconds caps each process's CPU time (RLIMIT_CPU). Zero: no limit.
	CPUSeconds int64
	// Processes caps the number of processes and threads (RLIMIT_NPROC,
	// counted inside the sandbox's user namespace). Zero means 4096.
	Processes int64
	// OpenFiles caps each process's open files (RLIMIT_NOFILE). Zero
	// means 65536.
	OpenFiles int64
	// TmpBytes is the size of the private /tmp. Zero means 1 GiB.
	TmpBytes int64
}

// Step is one command to run in a fresh sandbox.
type Step struct {
	// Command is a shell command line, run with /bin/sh -c.
	Command string
	// Workspace is the directory the step sees read-write; Dir must lie
	// within it. It is made the step's (chowned to the outside uid) when
	// mlbot runs as root.
	Workspace string
	// Dir is the working directory.
	Dir string
	// Writable lists more host directories the step sees read-write, at
	// their own paths (an operator's deploy target, say). They are not
	// chowned.
	Writable []string
	// Env is the step's entire environment.
	Env []string
	// Network keeps the host's network; without it the step gets a
	// network namespace of its own with only a loopback interface.
	Network bool
	// Output receives stdout and stderr.
	Output io.Writer
	// Timeout bounds the step; zero means only the context does.
	Timeout time.Duration
}

// Result is how a sandboxed step ended.
type Result struct {
	// ExitCode is the shell's exit status, or 128+signal when a signal
	// ended it.
	ExitCode int
	Duration time.Duration
	// TimedOut is true when Step.Timeout expired and the sandbox was ended.
	TimedOut bool
	// Canceled is true when the context ended and the sandbox was ended.
	Canceled bool
	// OOMKilled is true when the kernel killed a process of the step for
	// exceeding its memory limit.
	OOMKilled bool
}

// initConfig is what the parent tells the init, as JSON on a pipe.
type initConfig struct {
	Command   string   `json:"command"`
	Workspace string   `json:"workspace"`
	Writable  []string `json:"writable,omitempty"`
	Dir       string   `json:"dir"`
	Env       []string `json:"env"`
	Hide      []string `json:"hide"`
	Network   bool     `json:"network"`
	Limits    Limits   `json:"limits"`
	// MemoryRlimit applies Limits.MemoryBytes as RLIMIT_AS (no cgroup).
	MemoryRlimit bool `json:"memory_rlimit"`
	// StepParentUID is what StepUID maps to in the init's namespace.
	StepParentUID int `json:"step_parent_uid"`
}

// initResult is what the init tells the parent before it exits.
type initResult struct {
	// SetupError is set when the sandbox could not be made; the step did
	// not run.
	SetupError string `json:"setup_error,omitempty"`
	ExitCode   int    `json:"exit_code"`
}
