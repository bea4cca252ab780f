package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mlbot/mlbot/internal/testreq"
)

// helperEnv makes the test binary, copied into a workspace, act as a small
// tool inside the sandbox instead of running tests: the sandbox hides the
// Go build directory, and a fresh machine may have no python or nc.
const helperEnv = "MLBOT_SANDBOX_TEST_HELPER"

func TestMain(m *testing.M) {
	MaybeInit()
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helper(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// needSandbox skips (or, where MLBOT_TEST_REQUIRE names sandbox, fails) a
// test on a host where namespaces cannot be made.
func needSandbox(t testing.TB) {
	t.Helper()
	sandboxOnce.Do(func() { sandboxErr = Check(context.Background(), Options{}, t.TempDir()) })
	if sandboxErr != nil {
		testreq.Missing(t, "sandbox", "namespaces cannot be made here: %v", sandboxErr)
	}
}

var (
	sandboxOnce sync.Once
	sandboxErr  error
)

// helper runs one helper mode: "connect ADDR" dials TCP and says whether
// it got through; "alloc MiB" touches that much memory.
func helper(mode string, args []string) int {
	switch mode {
	case "connect":
		c, err := net.DialTimeout("tcp", args[0], 2*time.Second)
		if err != nil {
			fmt.Println("connect: refused:", err)
			return 3
		}
		c.Close()
		fmt.Println("connect: connected")
		return 0
	case "alloc":
		n, _ := strconv.Atoi(args[0])
		var keep [][]byte
		for i := 0; i < n; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = 1
			}
			keep = append(keep, b)
		}
		fmt.Println("alloc: done", len(keep))
		return 0
	}
	return 2
}

// fixture is a data directory like mlbot's, with a workspace in it and a
// secret beside it.
type fixture struct {
	data, ws string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	needSandbox(t)
	data := t.TempDir()
	os.Chmod(data, 0o755)
	ws := filepath.Join(data, "work", "run-1", "head")
	if err := os.MkdirAll(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "secret"), []byte("s3cret"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(data, "artifacts"), 0o755)
	os.WriteFile(filepath.Join(data, "artifacts", "blob"), []byte("blob"), 0o644)
	os.MkdirAll(filepath.Join(data, "work", "run-2"), 0o755)
	os.WriteFile(filepath.Join(data, "work", "run-2", "other"), []byte("other run"), 0o644)
	return fixture{data: data, ws: ws}
}

// run runs cmd in the fixture's workspace and returns its output.
func (f fixture) run(t *testing.T, ctx context.Context, cmd string, network bool, mod ...func(*Options, *Step)) (Result, string) {
	t.Helper()
	var out bytes.Buffer
	opts := Options{Hide: []string{f.data}, KillGrace: 500 * time.Millisecond}
	step := Step{Command: cmd, Workspace: f.ws, Dir: f.ws, Network: network, Output: &out,
		Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp"}}
	for _, m := range mod {
		m(&opts, &step)
	}
	res, err := Run(ctx, opts, step)
	if err != nil {
		t.Fatalf("Run(%q): %v\noutput:\n%s", cmd, err, out.String())
	}
	return res, out.String()
}

// copyTestBinary puts the running test binary into the workspace.
func (f fixture) copyTestBinary(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst := filepath.Join(f.ws, "helper")
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, src); err != nil {
		t.Fatal(err)
	}
	out.Close()
	return dst
}

func TestRunExitCodeAndOutput(t *testing.T) {
	f := newFixture(t)
	res, out := f.run(t, context.Background(), "echo hello; echo oops >&2; exit 7", false)
	if res.ExitCode != 7 || !strings.Contains(out, "hello") || !strings.Contains(out, "oops") {
		t.Fatalf("exit %d, output %q", res.ExitCode, out)
	}
}

// TestSandboxSeesOnlyItsWorkspace attacks the data directory the way a
// training would: by absolute path, through ../, and by listing.
func TestSandboxSeesOnlyItsWorkspace(t *testing.T) {
	f := newFixture(t)
	script := fmt.Sprintf(`
cat %[1]s/secret && echo LEAK-secret
cat ../../../secret && echo LEAK-relative
cat %[1]s/artifacts/blob && echo LEAK-artifact
cat %[1]s/work/run-2/other && echo LEAK-other-run
echo data: $(ls -A %[1]s)
echo work: $(ls -A %[1]s/work)
echo pwned > %[1]s/artifacts/blob 2>/dev/null && echo LEAK-write-artifact
echo hi > /etc/mlbot-sandbox-test 2>/dev/null && echo LEAK-write-etc
echo mine > model.bin && echo wrote-workspace
echo tmp: $(ls -A /tmp)
touch /tmp/x && echo wrote-tmp
echo uid: $(id -u)
echo hostname: $(cat /proc/sys/kernel/hostname)
`, f.data)
	res, out := f.run(t, context.Background(), script, false)
	if strings.Contains(out, "LEAK") || strings.Contains(out, "s3cret") || strings.Contains(out, "other run") {
		t.Fatalf("the sandbox reached the data directory:\n%s", out)
	}
	// /tmp is private: empty, but for the path down to the workspace when
	// the test's data directory lies in the host's /tmp.
	wantTmp := "tmp: \n"
	if rel, err := filepath.Rel("/tmp", f.data); err == nil && !strings.HasPrefix(rel, "..") {
		wantTmp = "tmp: " + strings.Split(rel, "/")[0] + "\n"
	}
	for _, want := range []string{"data: work\n", "work: run-1\n", "wrote-workspace", wantTmp, "wrote-tmp", "uid: 1000", "hostname: mlbot-sandbox"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if res.ExitCode != 0 {
		t.Errorf("exit %d", res.ExitCode)
	}
	if b, _ := os.ReadFile(filepath.Join(f.data, "artifacts", "blob")); string(b) != "blob" {
		t.Fatalf("artifact changed: %q", b)
	}
	fi, err := os.Stat(filepath.Join(f.ws, "model.bin"))
	if err != nil {
		t.Fatal(err)
	}
	owner := int(fi.Sys().(*syscall.Stat_t).Uid)
	if os.Geteuid() == 0 && owner != DefaultOutsideUID {
		t.Errorf("file written in the sandbox belongs to uid %d on the host, want %d", owner, DefaultOutsideUID)
	}
	if owner == 0 {
		t.Errorf("the step ran as root on the host")
	}
}

// TestSandboxCannotSeeHostProcesses looks for this test's own process and
// its environment, as a training hunting for tokens would.
func TestSandboxCannotSeeHostProcesses(t *testing.T) {
	t.Setenv("MLBOT_FAKE_TOKEN", "tok-visible-from-the-host")
	f := newFixture(t)
	script := fmt.Sprintf(`
cat /proc/%d/environ 2>/dev/null | tr '\0' '\n' | grep MLBOT_FAKE_TOKEN && echo LEAK-environ
echo pids: $(ls /proc | grep -E '^[0-9]+$' | wc -l)
`, os.Getpid())
	_, out := f.run(t, context.Background(), script, false)
	if strings.Contains(out, "LEAK") || strings.Contains(out, "tok-visible") {
		t.Fatalf("the sandbox saw the host's processes:\n%s", out)
	}
	// init, sh, ls (and grep/wc in the pipeline): a handful, not the host's.
	var n int
	fmt.Sscanf(out[strings.Index(out, "pids: ")+6:], "%d", &n)
	if n == 0 || n > 8 {
		t.Fatalf("the sandbox sees %d processes:\n%s", n, out)
	}
}

// TestSandboxLeavesNothingBehind starts the ways a training escapes a
// process group: setsid, a double fork, and a process ignoring SIGTERM.
func TestSandboxLeavesNothingBehind(t *testing.T) {
	f := newFixture(t)
	marker := strconv.FormatInt(time.Now().UnixNano()%1000000, 10)
	script := fmt.Sprintf(`
setsid sleep 1001.%[1]s &
( ( sleep 1002.%[1]s & ) & )
sh -c "trap '' TERM; sleep 1003.%[1]s" &
nohup sleep 1004.%[1]s >/dev/null 2>&1 &
sleep 0.2
echo started
`, marker)
	res, out := f.run(t, context.Background(), script, false)
	if res.ExitCode != 0 || !strings.Contains(out, "started") {
		t.Fatalf("exit %d: %s", res.ExitCode, out)
	}
	if left := processesWith(marker); len(left) > 0 {
		t.Fatalf("processes outlived the step: %v", left)
	}
}

// TestSandboxStopsOnCancelAndTimeout ends steps that ignore SIGTERM.
func TestSandboxStopsOnCancelAndTimeout(t *testing.T) {
	f := newFixture(t)
	marker := strconv.FormatInt(time.Now().UnixNano()%1000000, 10)
	start := time.Now()
	res, _ := f.run(t, context.Background(), "trap '' TERM; sleep 2001."+marker+"; echo survived", false,
		func(_ *Options, s *Step) { s.Timeout = 300 * time.Millisecond })
	if !res.TimedOut || time.Since(start) > 10*time.Second {
		t.Fatalf("timeout: %+v after %s", res, time.Since(start))
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	res, out := f.run(t, ctx, "setsid sleep 2002."+marker+" & trap '' TERM; sleep 2003."+marker+"; echo survived", false)
	if !res.Canceled || strings.Contains(out, "survived") {
		t.Fatalf("cancel: %+v %q", res, out)
	}
	if left := processesWith(marker); len(left) > 0 {
		t.Fatalf("processes outlived the stop: %v", left)
	}
}

// TestUntrustedStepCannotReachLoopback dials a listener on the host's
// 127.0.0.1, where Redis listens, from inside the sandbox.
func TestUntrustedStepCannotReachLoopback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	f := newFixture(t)
	bin := f.copyTestBinary(t)
	cmd := fmt.Sprintf("%s=connect %s %s", helperEnv, bin, ln.Addr())
	res, out := f.run(t, context.Background(), cmd, false)
	if res.ExitCode == 0 || strings.Contains(out, "connected") {
		t.Fatalf("an untrusted step reached %s:\n%s", ln.Addr(), out)
	}
	res, out = f.run(t, context.Background(), cmd, true)
	if res.ExitCode != 0 || !strings.Contains(out, "connected") {
		t.Fatalf("a step with the host's network could not reach %s:\n%s", ln.Addr(), out)
	}
}

// TestOutOfMemoryIsReported runs a step past its memory limit.
func TestOutOfMemoryIsReported(t *testing.T) {
	if cg, err := newMemoryCgroup(64 << 20); err != nil {
		t.Skipf("no memory cgroup can be made here (%v): memory is bounded by RLIMIT_AS, and an OOM cannot be told apart", err)
	} else {
		cg.remove()
	}
	f := newFixture(t)
	bin := f.copyTestBinary(t)
	res, out := f.run(t, context.Background(), fmt.Sprintf("%s=alloc %s 512", helperEnv, bin), false,
		func(o *Options, _ *Step) { o.Limits.MemoryBytes = 64 << 20 })
	if !res.OOMKilled || res.ExitCode == 0 {
		t.Fatalf("want an OOM kill, got %+v:\n%s", res, out)
	}
	res, _ = f.run(t, context.Background(), fmt.Sprintf("%s=alloc %s 8", helperEnv, bin), false,
		func(o *Options, _ *Step) { o.Limits.MemoryBytes = 256 << 20 })
	if res.OOMKilled || res.ExitCode != 0 {
		t.Fatalf("a step within its limit: %+v", res)
	}
}

// processesWith lists host processes whose command line contains s.
func processesWith(s string) []string {
	var found []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(b, []byte(s)) {
			found = append(found, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return found
}

// BenchmarkSandboxTrue is the sandbox's cost per step: start to exit of
// `true`, beside the same command without a sandbox.
func BenchmarkSandboxTrue(b *testing.B) {
	needSandbox(b)
	data := b.TempDir()
	ws := filepath.Join(data, "work", "w")
	os.MkdirAll(ws, 0o755)
	env := []string{"PATH=/usr/bin:/bin"}
	b.Run("plain", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			p, err := os.StartProcess("/bin/sh", []string{"sh", "-c", "true"}, &os.ProcAttr{Dir: ws, Env: env})
			if err != nil {
				b.Fatal(err)
			}
			p.Wait()
		}
	})
	b.Run("sandbox", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			res, err := Run(context.Background(), Options{Hide: []string{data}}, Step{Command: "true", Workspace: ws, Dir: ws, Env: env})
			if err != nil || res.ExitCode != 0 {
				b.Fatal(err, res)
			}
		}
	})
}

// TestWritablePaths shows an operator's deploy target (here beside the
// data directory, beneath a hidden /tmp) writable in the sandbox while its
// neighbours stay hidden.
func TestWritablePaths(t *testing.T) {
	f := newFixture(t)
	target := filepath.Join(t.TempDir(), "models")
	os.MkdirAll(target, 0o777)
	os.Chmod(target, 0o777)
	os.WriteFile(filepath.Join(filepath.Dir(target), "neighbour"), []byte("n"), 0o644)
	res, out := f.run(t, context.Background(), fmt.Sprintf("echo v1 > %s/production && echo wrote; cat %s/neighbour && echo LEAK; true", target, filepath.Dir(target)), true,
		func(_ *Options, s *Step) { s.Writable = []string{target} })
	if res.ExitCode != 0 || !strings.Contains(out, "wrote") || strings.Contains(out, "LEAK") {
		t.Fatalf("exit %d:\n%s", res.ExitCode, out)
	}
	if b, _ := os.ReadFile(filepath.Join(target, "production")); string(b) != "v1\n" {
		t.Fatalf("target holds %q", b)
	}
}
