package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mlbot/mlbot/internal/redistest"
	"github.com/mlbot/mlbot/jobs/store"
	"github.com/mlbot/mlbot/runners"
	"github.com/mlbot/mlbot/runners/agentapi"
	"github.com/mlbot/mlbot/web/agentsrv"
)

// agentRedisDB is this package's own Redis database (see redistest).
const agentRedisDB = 14

// server is a real agentsrv Hub behind an httptest server, with a switch
// in front of it that tests use to break the connection.
type server struct {
	hub *agentsrv.Hub
	srv *httptest.Server
	// filter, when set, may answer a request itself (returning true).
	filter atomic.Pointer[func(w http.ResponseWriter, r *http.Request) bool]
}

func newServer(t *testing.T) *server {
	t.Helper()
	c := redis.NewClient(redistest.Options(t, agentRedisDB))
	t.Cleanup(func() { c.Close() })
	hub, err := agentsrv.New(store.New(c, "mlbot:"), t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s := &server{hub: hub}
	h := hub.Handler()
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f := s.filter.Load(); f != nil && (*f)(w, r) {
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// setFilter installs f in front of the hub; nil removes it.
func (s *server) setFilter(f func(w http.ResponseWriter, r *http.Request) bool) {
	if f == nil {
		s.filter.Store(nil)
		return
	}
	s.filter.Store(&f)
}

// hangUp drops the connection of a request without an answer, as a
// worker that went away does.
func hangUp(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

// open opens run id on checkout dir and returns the agent's Options.
func (s *server) open(t *testing.T, id string, job agentapi.Job, dir string) Options {
	t.Helper()
	sess, err := s.hub.Open(context.Background(), id, job, dir, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.hub.Close(context.Background(), id) })
	return Options{URL: s.srv.URL, Token: sess.Token, Workdir: filepath.Join(t.TempDir(), "workspace"), RetryFor: 30 * time.Second}
}

// log returns run id's whole log.
func (s *server) log(t *testing.T, id string) string {
	t.Helper()
	var buf bytes.Buffer
	if _, err := s.hub.ReadLog(context.Background(), id, 0, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func (s *server) state(t *testing.T, id string) agentapi.State {
	t.Helper()
	st, err := s.hub.State(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, body := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

var baseEnv = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "FOO=bar"}

// TestRunEndToEnd runs a two-step job that writes metrics and artifacts
// through a real agentsrv, collects what it uploaded into a fresh
// directory and compares it with what the steps wrote.
func TestRunEndToEnd(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	src := t.TempDir()
	writeTree(t, src, map[string]string{
		"train.sh":    "mkdir -p out/sub ckpt/1\nprintf 'weights' > model.pt\nhead -c 300000 /dev/urandom > out/sub/big.bin\necho w > ckpt/1/w.bin\necho trained\n",
		".git/config": "[http]\n\textraHeader = AUTHORIZATION: basic c2VjcmV0\n",
		"data/x.csv":  "a,b\n",
	})
	if err := os.Symlink("data/x.csv", filepath.Join(src, "current.csv")); err != nil {
		t.Fatal(err)
	}
	job := agentapi.Job{
		Steps: []runners.Step{
			{Name: "train", Command: "sh train.sh && env | sort > env.txt && test -L current.csv && test ! -e .git"},
			{Name: "evaluate", Command: `mkdir -p eval && echo '{"accuracy": 0.93}' > metrics.json && echo '{"f1": 0.5}' > eval/extra.json && echo evaluated >&2`},
		},
		Env:       baseEnv,
		Timeout:   agentapi.Duration(time.Minute),
		Metrics:   []string{"metrics.json", "eval/extra.json"},
		Artifacts: []string{"model.pt", "out", "ckpt/**/*.bin", "env.txt"},
	}
	opts := s.open(t, "e2e", job, src)
	t.Setenv(agentapi.EnvToken, opts.Token) // must not reach the steps
	if err := Run(ctx, opts); err != nil {
		t.Fatalf("Run: %v", err)
	}
	st := s.state(t, "e2e")
	if !st.Done || st.Error != "" || len(st.Steps) != 2 || st.Steps[0].Name != "train" || st.Steps[1].ExitCode != 0 {
		t.Fatalf("state = %+v, want two steps that succeeded and a clean end", st)
	}
	log := s.log(t, "e2e")
	for _, want := range []string{"$ sh train.sh", "trained\n", "evaluated\n", "$ mkdir -p eval"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if st.LogBytes != int64(len(log)) {
		t.Errorf("LogBytes %d, log %d bytes", st.LogBytes, len(log))
	}
	env, err := os.ReadFile(filepath.Join(opts.Workdir, "env.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(env), "FOO=bar\n") || strings.Contains(string(env), "MLBOT_") {
		t.Errorf("a step's environment:\n%s\nwant the job's env, nothing of the agent's", env)
	}

	dst := t.TempDir()
	if err := s.hub.Collect(ctx, "e2e", dst); err != nil {
		t.Fatal(err)
	}
	want := []string{"ckpt/1/w.bin", "env.txt", "eval/extra.json", "metrics.json", "model.pt", "out/sub/big.bin"}
	got := listFiles(t, dst)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("collected %q, want %q", got, want)
	}
	for _, p := range want {
		a, _ := os.ReadFile(filepath.Join(opts.Workdir, p))
		b, _ := os.ReadFile(filepath.Join(dst, p))
		if !bytes.Equal(a, b) || len(a) == 0 {
			t.Errorf("%s: collected %d bytes differ from the %d the step wrote", p, len(b), len(a))
		}
	}
}

func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRunStopsAtAFailingStep(t *testing.T) {
	s := newServer(t)
	job := agentapi.Job{
		Steps: []runners.Step{
			{Name: "train", Command: "echo '{\"a\": 1}' > metrics.json; exit 3"},
			{Name: "evaluate", Command: "touch evaluated"},
		},
		Env: baseEnv, Metrics: []string{"metrics.json"},
	}
	opts := s.open(t, "fail", job, t.TempDir())
	// A workdir that exists (a mount point) is kept and emptied.
	writeTree(t, opts.Workdir, map[string]string{"stale/file": "from before"})
	err := Run(context.Background(), opts)
	var se *StepError
	if !errors.As(err, &se) || se.Report.ExitCode != 3 || ExitCode(err) != 3 {
		t.Fatalf("Run = %v, want a StepError with exit status 3", err)
	}
	st := s.state(t, "fail")
	if !st.Done || st.Error != "" || len(st.Steps) != 1 || st.Steps[0].ExitCode != 3 {
		t.Errorf("state = %+v, want one step that failed with 3, and a clean end", st)
	}
	if _, err := os.Stat(filepath.Join(opts.Workdir, "evaluated")); err == nil {
		t.Error("the step after the failed one ran")
	}
	if _, err := os.Stat(filepath.Join(opts.Workdir, "stale")); err == nil {
		t.Error("the workdir was not emptied before the source was unpacked")
	}
	dst := t.TempDir()
	if err := s.hub.Collect(context.Background(), "fail", dst); err != nil || len(listFiles(t, dst)) != 0 {
		t.Errorf("a failed job uploaded files: %q, %v", listFiles(t, dst), err)
	}
}

// TestRunTimeoutKillsEverything gives a step that ignores SIGTERM, and
// leaves a background child that ignores it too, a one-second timeout.
func TestRunTimeoutKillsEverything(t *testing.T) {
	s := newServer(t)
	job := agentapi.Job{
		Steps: []runners.Step{
			{Name: "train", Command: `trap '' TERM; sh -c 'trap "" TERM; echo $$ > bg.pid; exec sleep 60' & echo started; sleep 60; echo survived`},
			{Name: "evaluate", Command: "true"},
		},
		Env: baseEnv, Timeout: agentapi.Duration(time.Second), Grace: agentapi.Duration(300 * time.Millisecond),
	}
	opts := s.open(t, "timeout", job, t.TempDir())
	start := time.Now()
	err := Run(context.Background(), opts)
	took := time.Since(start)
	var se *StepError
	if !errors.As(err, &se) || !se.Report.TimedOut || se.Report.ExitCode != 128+int(syscall.SIGKILL) || ExitCode(err) != ExitTimeout {
		t.Fatalf("Run = %v (%+v), want a timed-out step killed by SIGKILL", err, se)
	}
	if took > 10*time.Second {
		t.Errorf("Run took %v for a 1s timeout and 300ms grace", took)
	}
	b, err := os.ReadFile(filepath.Join(opts.Workdir, "bg.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 0 {
		t.Fatalf("bg.pid = %q", b)
	}
	if alive(pid, 3*time.Second) {
		t.Errorf("the background child %d outlived the step", pid)
	}
	st := s.state(t, "timeout")
	if len(st.Steps) != 1 || !st.Steps[0].TimedOut || !st.Done {
		t.Errorf("state = %+v, want one timed-out step and the end", st)
	}
	if log := s.log(t, "timeout"); !strings.Contains(log, "\nstarted\n") || strings.Contains(log, "\nsurvived") {
		t.Errorf("log = %q", log)
	}
}

// alive reports whether process pid still runs (not a zombie) after
// waiting up to wait for it to go.
func alive(pid int, wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	for {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return false
		}
		// The state follows the parenthesised command name.
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			return false
		}
		if time.Now().After(deadline) {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lines is a step printing n numbered lines, a little at a time.
func lines(n int) (command, output string) {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "line %d of the training\n", i)
	}
	return fmt.Sprintf(`i=1; while [ $i -le %d ]; do echo "line $i of the training"; i=$((i+1)); if [ $((i %% 200)) = 0 ]; then sleep 0.05; fi; done`, n), b.String()
}

// TestLogResumesAfterALostAnswer forwards a log chunk to the hub but drops
// the answer: the agent resends it, the hub answers 416 with the length
// it has, and the agent goes on from there without writing anything
// twice.
func TestLogResumesAfterALostAnswer(t *testing.T) {
	s := newServer(t)
	cmd, out := lines(2000)
	job := agentapi.Job{Steps: []runners.Step{{Name: "train", Command: cmd}}, Env: baseEnv}
	opts := s.open(t, "resume", job, t.TempDir())
	var patches, lost, refused atomic.Int32
	h := s.hub.Handler()
	s.setFilter(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != agentapi.PathLog {
			return false
		}
		if patches.Add(1) == 3 {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r) // appended; the answer is lost
			lost.Add(1)
			hangUp(w)
			return true
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code == http.StatusRequestedRangeNotSatisfiable {
			refused.Add(1)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
		return true
	})
	if err := Run(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if lost.Load() != 1 || refused.Load() != 1 {
		t.Fatalf("%d answers lost, %d chunks refused with 416; want 1 and 1 (%d PATCHes)", lost.Load(), refused.Load(), patches.Load())
	}
	if got := s.log(t, "resume"); got != "$ "+cmd+"\n"+out {
		t.Errorf("log differs from the output: %d bytes, want %d\n%s", len(got), len(out)+len(cmd)+3, firstDiff(got, "$ "+cmd+"\n"+out))
	}
}

// TestLogSurvivesAServerDown hangs up on every request for a few seconds
// while a step prints: the agent retries, the step waits on its pipe, and
// the log loses no byte.
func TestLogSurvivesAServerDown(t *testing.T) {
	s := newServer(t)
	cmd, out := lines(6000)
	job := agentapi.Job{Steps: []runners.Step{{Name: "train", Command: cmd}}, Env: baseEnv}
	opts := s.open(t, "down", job, t.TempDir())
	opts.push = pushOptions{BufBytes: 16 << 10, FlushBytes: 4 << 10}
	var hungUp atomic.Int32
	var once sync.Once
	down := make(chan struct{})
	s.setFilter(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != agentapi.PathLog {
			return false
		}
		once.Do(func() {
			go func() {
				time.Sleep(2 * time.Second)
				close(down)
			}()
		})
		select {
		case <-down:
			return false
		default:
			hungUp.Add(1)
			hangUp(w)
			return true
		}
	})
	if err := Run(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if hungUp.Load() < 3 {
		t.Fatalf("only %d requests were hung up on", hungUp.Load())
	}
	if got := s.log(t, "down"); got != "$ "+cmd+"\n"+out {
		t.Errorf("log differs from the output: %d bytes, want %d\n%s", len(got), len(out)+len(cmd)+3, firstDiff(got, "$ "+cmd+"\n"+out))
	}
}

func firstDiff(a, b string) string {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			lo := max(0, i-40)
			return fmt.Sprintf("first difference at %d: %q vs %q", i, a[lo:min(len(a), i+40)], b[lo:min(len(b), i+40)])
		}
	}
	return fmt.Sprintf("one is a prefix of the other (%d, %d bytes)", len(a), len(b))
}

// TestRunRefusesAnEscapingLink checks that a source archive the agent
// must refuse ends the agent with an error reported as its end, and no
// step run.
func TestRunRefusesAnEscapingLink(t *testing.T) {
	s := newServer(t)
	src := t.TempDir()
	writeTree(t, src, map[string]string{"train.py": "x"})
	if err := os.Symlink("/etc/passwd", filepath.Join(src, "passwd")); err != nil {
		t.Fatal(err)
	}
	job := agentapi.Job{Steps: []runners.Step{{Name: "train", Command: "touch ran"}}, Env: baseEnv}
	opts := s.open(t, "refuse", job, src)
	err := Run(context.Background(), opts)
	if err == nil || ExitCode(err) != ExitAgentFailed || !strings.Contains(err.Error(), "leaves the workdir") {
		t.Fatalf("Run = %v, want the agent's failure naming the link", err)
	}
	st := s.state(t, "refuse")
	if !st.Done || !strings.Contains(st.Error, "passwd") || len(st.Steps) != 0 {
		t.Errorf("state = %+v, want the end with the agent's error and no step", st)
	}
	if _, err := os.Stat(filepath.Join(opts.Workdir, "ran")); err == nil {
		t.Error("a step ran on a refused source")
	}
}

func TestOptionsFromEnv(t *testing.T) {
	env := map[string]string{agentapi.EnvURL: "unix:///run/mlbot.sock", agentapi.EnvToken: "t"}
	o, err := OptionsFromEnv(func(k string) string { return env[k] })
	if err != nil || o.URL != "unix:///run/mlbot.sock" || o.Token != "t" || o.Workdir != "" {
		t.Errorf("OptionsFromEnv = %+v, %v", o, err)
	}
	delete(env, agentapi.EnvToken)
	if _, err := OptionsFromEnv(func(k string) string { return env[k] }); err == nil {
		t.Error("OptionsFromEnv without a token: no error")
	}
}

// TestRunOverAUnixSocket runs a job against the hub's handler served on a
// unix socket, as the docker runner gives it to a container without a
// network.
func TestRunOverAUnixSocket(t *testing.T) {
	s := newServer(t)
	sock := filepath.Join(t.TempDir(), "mlbot.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: s.hub.Handler()}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	job := agentapi.Job{Steps: []runners.Step{{Name: "train", Command: `echo '{"a": 1}' > m.json; echo over the socket`}},
		Env: baseEnv, Metrics: []string{"m.json"}}
	opts := s.open(t, "socket", job, t.TempDir())
	opts.URL = "unix://" + sock
	if err := Run(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if log := s.log(t, "socket"); !strings.Contains(log, "\nover the socket\n") {
		t.Errorf("log = %q", log)
	}
	dst := t.TempDir()
	if err := s.hub.Collect(context.Background(), "socket", dst); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "m.json")); err != nil || string(b) != "{\"a\": 1}\n" {
		t.Errorf("collected m.json = %q, %v", b, err)
	}
}
