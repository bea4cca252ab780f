package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mlbot/mlbot/internal/redistest"
	"github.com/mlbot/mlbot/jobs/store"
	"github.com/mlbot/mlbot/runners"
	"github.com/mlbot/mlbot/web/agentsrv"
)

// dockerRedisDB is this package's own Redis database (see redistest).
const dockerRedisDB = 7

// fixture is a Runner driving a real agentsrv Hub (on Redis and a data
// directory of its own) and the real engine.
type fixture struct {
	tb     testing.TB
	hub    *agentsrv.Hub
	r      *Runner
	opts   Options
	runDir string
}

// newFixture returns a fixture whose runner has opts, completed with the
// test's engine, binary, hub and run directory.
func newFixture(t testing.TB, opts Options) *fixture {
	t.Helper()
	c := redis.NewClient(redistest.Options(t, dockerRedisDB))
	t.Cleanup(func() { c.Close() })
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	hub, err := agentsrv.New(store.New(c, "mlbot:"), t.TempDir(), logger)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(testEnv.dir, "run-")
	if err != nil {
		t.Fatal(err)
	}
	opts.Hub, opts.Client, opts.AgentBinary, opts.RunDir, opts.Logger = hub, testEnv.cli, testEnv.binary, dir, logger
	if opts.KillGrace == 0 {
		opts.KillGrace = time.Second
	}
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{tb: t, hub: hub, r: r, opts: opts, runDir: dir}
}

// checkout makes a directory holding files (name → content).
func checkout(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// output is a job's output that tests read while the runner writes it.
type output struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	first time.Time // when the first byte arrived
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.first.IsZero() && len(p) > 0 {
		o.first = time.Now()
	}
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// waitFor waits until the output holds s, or fails t after timeout.
func (o *output) waitFor(t testing.TB, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(o.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("the output did not show %q within %v:\n%s", s, timeout, o.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// job returns a job of the test's image running steps (name, command
// pairs) in dir. Whatever container of the job a failing test leaves is
// removed when the test ends.
func (f *fixture) job(id, dir string, out *output, steps ...string) runners.Job {
	f.tb.Cleanup(func() {
		if err := f.r.removeRun(context.Background(), id); err != nil {
			f.tb.Errorf("removing the containers of run %s: %v", id, err)
		}
	})
	j := runners.Job{ID: id, Dir: dir, Image: testEnv.image, Output: out, Env: []string{"PATH=/bin", "HOME=/tmp"}}
	for i := 0; i+1 < len(steps); i += 2 {
		j.Steps = append(j.Steps, runners.Step{Name: steps[i], Command: steps[i+1]})
	}
	return j
}

// noContainer fails t if a container of run id is left, as
// `docker ps -a --filter label=mlbot.run=<id>` would show it.
func (f *fixture) noContainer(t testing.TB, id string) {
	t.Helper()
	list, err := f.r.list(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list {
		t.Errorf("container %s of run %s is left (%s)", shortID(c.ID), id, c.State)
	}
	if _, err := os.Stat(runDir(f.runDir, id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the run directory of %s is left: %v", id, err)
	}
}

// steps renders a result for a failure message.
func steps(res runners.JobResult) string {
	return fmt.Sprintf("steps %+v, infra error %v", res.Steps, res.InfraError)
}
