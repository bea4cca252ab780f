package local_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlbot/mlbot/internal/testreq"
	"github.com/mlbot/mlbot/runners"
	"github.com/mlbot/mlbot/runners/local"
	"github.com/mlbot/mlbot/runners/sandbox"
)

func TestMain(m *testing.M) {
	sandbox.MaybeInit()
	os.Exit(m.Run())
}

// TestSandboxedRunner runs a step through the runner interface the
// pipeline uses: the step sees its workspace (not the data dir around it),
// gets a private home, no network unless asked, and its result carries the
// exit code, a timeout and the step's name in errors.
func TestSandboxedRunner(t *testing.T) {
	data := t.TempDir()
	if err := sandbox.Check(context.Background(), sandbox.Options{}, data); err != nil {
		testreq.Missing(t, "sandbox", "namespaces cannot be made here: %v", err)
	}
	ws := filepath.Join(data, "work", "r", "head")
	os.MkdirAll(ws, 0o755)
	os.WriteFile(filepath.Join(data, "token"), []byte("secret"), 0o644)
	r := local.NewSandboxed(sandbox.Options{Hide: []string{data}, KillGrace: 200 * time.Millisecond})
	var out syncBuffer
	res, err := r.Run(context.Background(), runners.Spec{Name: "train", Command: "cat " + filepath.Join(data, "token") + "; echo home=$HOME; echo x > out.txt; exit 3",
		Dir: ws, Env: []string{"PATH=/usr/bin:/bin", "HOME=/root"}, Output: &out})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 3 || strings.Contains(out.String(), "secret") || !strings.Contains(out.String(), "home=/tmp") {
		t.Fatalf("exit %d, output %q", res.ExitCode, out.String())
	}
	if b, _ := os.ReadFile(filepath.Join(ws, "out.txt")); string(b) != "x\n" {
		t.Fatalf("the step's file in the workspace: %q", b)
	}
	res, err = r.Run(context.Background(), runners.Spec{Name: "train", Command: "sleep 30", Dir: ws, Env: []string{"PATH=/usr/bin:/bin"}, Timeout: 200 * time.Millisecond})
	if err != nil || !res.TimedOut {
		t.Fatalf("timeout: %+v %v", res, err)
	}
	_, err = r.Run(context.Background(), runners.Spec{Name: "evaluate", Command: "true", Dir: "/", Env: nil})
	if err == nil || !strings.Contains(err.Error(), `step "evaluate"`) {
		t.Fatalf("a step outside a usable workspace: %v", err)
	}
}

// firstByte is an io.Writer that notes when the step's line "ready-2"
// came (the command line echoed before it says "ready-$((1+1))").
type firstByte struct {
	mu    sync.Mutex
	first time.Time
}

func (f *firstByte) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.first.IsZero() && strings.Contains(string(p), "ready-2") {
		f.first = time.Now()
	}
	return len(p), nil
}

// BenchmarkFirstLogLine measures the time from runners.RunJob to the
// first byte of the step's output with the local runner, plain and in
// its sandbox: the figure to set beside the docker runner's
// BenchmarkFirstLogLine (runners/docker).
func BenchmarkFirstLogLine(b *testing.B) {
	data := b.TempDir()
	ws := filepath.Join(data, "work")
	if err := os.MkdirAll(ws, 0o755); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		r    runners.Runner
	}{
		{"plain", local.New()},
		{"sandbox", local.NewSandboxed(sandbox.Options{Hide: []string{data}})},
	} {
		b.Run(tc.name, func(b *testing.B) {
			if tc.name == "sandbox" {
				if err := sandbox.Check(context.Background(), sandbox.Options{}, data); err != nil {
					b.Skipf("no sandbox: %v", err)
				}
			}
			var total time.Duration
			for b.Loop() {
				out := &firstByte{}
				start := time.Now()
				res := runners.RunJob(context.Background(), tc.r, runners.Job{ID: "bench", Dir: ws, Env: []string{"PATH=/usr/bin:/bin"},
					Steps: []runners.Step{{Name: "hello", Command: "echo ready-$((1+1))"}}, Output: out})
				if last, _ := res.Last(); res.InfraError != nil || !last.Succeeded() || out.first.IsZero() {
					b.Fatalf("%+v", res)
				}
				total += out.first.Sub(start)
			}
			b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/first-line")
		})
	}
}
