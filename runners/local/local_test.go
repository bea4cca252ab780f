package local_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mlbot/mlbot/runners"
	"github.com/mlbot/mlbot/runners/local"
)

// syncBuffer is a bytes.Buffer the test may read while the runner writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRunExit(t *testing.T) {
	tests := []struct {
		name     string
		command  string
		wantCode int
		wantOut  string
	}{
		{"success", "echo hello", 0, "hello\n"},
		{"non-zero exit is a result", "echo out; echo err >&2; exit 3", 3, "out\nerr\n"},
		{"killed by signal reads as 128+n", "kill -KILL $$", 137, ""},
		{"command not found", "no-such-command-mlbot 2>/dev/null", 127, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out syncBuffer
			res, err := local.New().Run(context.Background(), runners.Spec{Command: tt.command, Dir: t.TempDir(), Output: &out})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if res.ExitCode != tt.wantCode || res.TimedOut || res.Canceled {
				t.Errorf("Result = %+v, want exit %d", res, tt.wantCode)
			}
			if out.String() != tt.wantOut {
				t.Errorf("output = %q, want %q", out.String(), tt.wantOut)
			}
		})
	}
}

func TestRunDirAndExactEnv(t *testing.T) {
	t.Setenv("MLBOT_LEAK_CHECK", "must-not-leak")
	dir := t.TempDir()
	var out syncBuffer
	res, err := local.New().Run(context.Background(), runners.Spec{
		Command: `pwd; echo "A=$A"; echo "leak=$MLBOT_LEAK_CHECK"; echo "home=$HOME"`,
		Dir:     dir,
		Env:     []string{"A=1", "PATH=/usr/bin:/bin"},
		Output:  &out,
	})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Run = %+v, %v; output %s", res, err, out.String())
	}
	real, _ := filepath.EvalSymlinks(dir)
	want := real + "\nA=1\nleak=\nhome=\n"
	if got := out.String(); got != want {
		t.Errorf("output = %q, want %q", got, want)
	}
}

func TestRunStartError(t *testing.T) {
	_, err := local.New().Run(context.Background(), runners.Spec{Command: "true", Dir: filepath.Join(t.TempDir(), "missing")})
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want one wrapping os.ErrNotExist", err)
	}
}

// gone reports whether pid has exited. A zombie counts as gone: it has
// stopped running, and in a container whose init does not reap, it stays.
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// The state follows the command name, which is in parentheses.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && (s[i+2] == 'Z' || s[i+2] == 'X')
}

// waitGone polls briefly: SIGKILL is delivered asynchronously.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if gone(pid) {
			return
		}
	}
	syscall.Kill(pid, syscall.SIGKILL)
	t.Fatalf("grandchild %d still running after Run returned", pid)
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("grandchild pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func TestRunStopKillsProcessGroup(t *testing.T) {
	tests := []struct {
		name    string
		command string
		timeout time.Duration
		cancel  time.Duration // cancel ctx after this long; 0: never
		want    runners.Result
	}{
		{
			name:    "timeout",
			command: `sleep 100 & echo $! > pid; wait`,
			timeout: 300 * time.Millisecond,
			want:    runners.Result{ExitCode: 128 + 15, TimedOut: true},
		},
		{
			name:    "cancel",
			command: `sleep 100 & echo $! > pid; wait`,
			cancel:  300 * time.Millisecond,
			want:    runners.Result{ExitCode: 128 + 15, Canceled: true},
		},
		{
			// The ignored SIGTERM is inherited by the grandchild, so only
			// the SIGKILL after the grace period stops either.
			name:    "SIGTERM ignored needs SIGKILL",
			command: `trap '' TERM; sleep 100 & echo $! > pid; while :; do sleep 0.05; done`,
			timeout: 300 * time.Millisecond,
			want:    runners.Result{ExitCode: 128 + 9, TimedOut: true},
		},
		{
			// The shell dies of SIGTERM at once; its child ignores it and
			// holds the output pipe until the group's SIGKILL.
			name:    "grandchild ignoring SIGTERM holds output",
			command: `(trap '' TERM; sleep 100) & echo $! > pid; wait`,
			cancel:  300 * time.Millisecond,
			want:    runners.Result{ExitCode: 128 + 15, Canceled: true},
		},
		{
			// A step that exits normally leaves no background job behind.
			name:    "background job of a finished step",
			command: `sleep 100 > /dev/null 2>&1 & echo $! > pid`,
			want:    runners.Result{ExitCode: 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel > 0 {
				time.AfterFunc(tt.cancel, cancel)
			}
			r := &local.Runner{KillGrace: 500 * time.Millisecond}
			start := time.Now()
			res, err := r.Run(ctx, runners.Spec{Command: tt.command, Dir: dir, Timeout: tt.timeout, Output: &syncBuffer{}})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if elapsed := time.Since(start); elapsed > 10*time.Second {
				t.Errorf("Run took %v", elapsed)
			}
			res.Duration = 0
			if res != tt.want {
				t.Errorf("Result = %+v, want %+v", res, tt.want)
			}
			waitGone(t, readPID(t, filepath.Join(dir, "pid")))
		})
	}
}

// TestRunEscapedGrandchildCannotHang: a process that leaves the group
// (setsid) cannot be signalled with it, but WaitDelay still lets Run
// return although it holds the output pipe.
func TestRunEscapedGrandchildCannotHang(t *testing.T) {
	dir := t.TempDir()
	r := &local.Runner{KillGrace: 300 * time.Millisecond}
	done := make(chan struct{})
	var res runners.Result
	var err error
	go func() {
		defer close(done)
		res, err = r.Run(context.Background(), runners.Spec{Command: `setsid sleep 100 & echo $! > pid; echo started`, Dir: dir, Output: &syncBuffer{}})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return while an escaped grandchild held the output pipe")
	}
	pid := readPID(t, filepath.Join(dir, "pid"))
	syscall.Kill(pid, syscall.SIGKILL)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Run = %+v, %v", res, err)
	}
}

func TestRunAlreadyCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	res, err := local.New().Run(ctx, runners.Spec{Command: "touch ran", Dir: dir})
	if err != nil || !res.Canceled {
		t.Fatalf("Run = %+v, %v; want Canceled", res, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); err == nil {
		t.Error("command ran despite a cancelled context")
	}
}

// TestRunWithLogSink is the way jobs use a runner: output through a
// LogSink, with a secret from the environment masked.
func TestRunWithLogSink(t *testing.T) {
	sink, err := runners.NewLogSink(filepath.Join(t.TempDir(), "log"), []string{"tok-123456"})
	if err != nil {
		t.Fatal(err)
	}
	env := runners.ChildEnv([]string{"PATH=/usr/bin:/bin", "MLBOT_GITHUB_TOKEN=tok-123456"}, []string{"tok-123456"}, "API_KEY=tok-123456")
	res, err := local.New().Run(context.Background(), runners.Spec{
		Command: `echo "ci=$CI bot=$MLBOT_GITHUB_TOKEN key=$API_KEY"`, Dir: t.TempDir(), Env: env, Output: sink,
	})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := sink.Tail(1), "ci=true bot= key=***\n"; got != want {
		t.Errorf("log = %q, want %q", got, want)
	}
}
