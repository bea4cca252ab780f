package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/mlbot/mlbot/internal/redistest"
	"github.com/mlbot/mlbot/jobs"
)

// cliRedisDB is this file's Redis database (see internal/redistest).
const cliRedisDB = 12

// cliRun runs one mlbot command in-process and returns its exit status and
// output.
func cliRun(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	code = run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

// cliClearEnv hides every MLBOT_* variable of the test's environment from
// in-process commands (an empty value counts as unset).
func cliClearEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "MLBOT_") {
			t.Setenv(name, "")
		}
	}
}

func TestCLIBasics(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     []string // substrings of stdout
		stderr     []string // substrings of stderr
		noStdout   bool
		exactOut   string
		stdoutOnly bool // nothing on stderr
	}{
		{name: "version", args: []string{"version"}, exactOut: "mlbot " + version + "\n", stdoutOnly: true},
		{name: "--help", args: []string{"--help"}, stdout: []string{"Usage:", "mlbot serve", "mlbot worker", "mlbot run", "mlbot validate", "mlbot demo", "mlbot agent", "mlbot version"}, stdoutOnly: true},
		{name: "-h", args: []string{"-h"}, stdout: []string{"Usage:"}, stdoutOnly: true},
		{name: "help", args: []string{"help"}, stdout: []string{"Usage:"}, stdoutOnly: true},
		{name: "no command", args: nil, code: 2, stderr: []string{"Usage:"}, noStdout: true},
		{name: "unknown command", args: []string{"deploy-everything"}, code: 2, stderr: []string{`unknown command "deploy-everything"`, "Usage:"}, noStdout: true},
		{name: "unknown flag", args: []string{"validate", "--bogus"}, code: 1, stderr: []string{"bogus"}, noStdout: true},
		{name: "agent without its environment", args: []string{"agent"}, code: 125, stderr: []string{"MLBOT_AGENT_URL", "MLBOT_AGENT_TOKEN"}, noStdout: true},
		{name: "agent --help", args: []string{"agent", "--help"}, stderr: []string{"usage: mlbot agent", "MLBOT_AGENT_WORKDIR"}, noStdout: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := cliRun(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errs)
			}
			if tc.exactOut != "" && out != tc.exactOut {
				t.Errorf("stdout %q, want %q", out, tc.exactOut)
			}
			for _, s := range tc.stdout {
				if !strings.Contains(out, s) {
					t.Errorf("stdout lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tc.stderr {
				if !strings.Contains(errs, s) {
					t.Errorf("stderr lacks %q:\n%s", s, errs)
				}
			}
			if tc.noStdout && out != "" {
				t.Errorf("unexpected stdout:\n%s", out)
			}
			if tc.stdoutOnly && errs != "" {
				t.Errorf("unexpected stderr:\n%s", errs)
			}
		})
	}
}

// cliReadmeVariables returns every MLBOT_* variable named in the first
// column of the README's configuration table.
func cliReadmeVariables(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Configuration")
	if !ok {
		t.Fatal("README.md has no Configuration section")
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	re := regexp.MustCompile(`MLBOT_[A-Z0-9_]+`)
	seen := map[string]bool{}
	var vars []string
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `MLBOT_") {
			continue
		}
		first := strings.SplitN(line, "|", 3)[1]
		for _, v := range re.FindAllString(first, -1) {
			if !seen[v] {
				seen[v] = true
				vars = append(vars, v)
			}
		}
	}
	if len(vars) < 15 {
		t.Fatalf("found only %d variables in the README's configuration table: %v", len(vars), vars)
	}
	return vars
}

func TestCLIServeHelpListsEveryVariable(t *testing.T) {
	vars := cliReadmeVariables(t)
	for _, cmd := range []string{"serve", "worker"} {
		t.Run(cmd, func(t *testing.T) {
			code, out, errs := cliRun(t, cmd, "--help")
			if code != 0 {
				t.Fatalf("mlbot %s --help: exit %d\n%s%s", cmd, code, out, errs)
			}
			help := out + errs
			for _, v := range vars {
				if !strings.Contains(help, v) {
					t.Errorf("mlbot %s --help does not mention %s (named in the README's configuration table)", cmd, v)
				}
			}
		})
	}
}

func TestValidateCommand(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	valid := filepath.Join("..", "..", "examples", "digits", ".mlbot.yml")
	tests := []struct {
		name string
		path string
		code int
		// want are regexps every one of which must match stderr (errors)
		// or stdout (success).
		want []string
	}{
		{name: "example", path: valid, code: 0, want: []string{`valid`, `train "go run softmax.go train`}},
		{name: "bad duration and missing metrics", code: 1,
			path: write("timeout.yml", "version: 1\npipeline:\n  train: x\n  timeout: soon\n"),
			want: []string{`timeout\.yml:2:1: .*metrics`, `timeout\.yml:4:12: .*duration`}},
		{name: "bad goal and unknown key", code: 1,
			path: write("goal.yml", "version: 1\npipeline:\n  train: x\n  evaluate: y\n  metrics: [m.json]\nmetrics:\n  acc: {goal: upward}\nbogus: 1\n"),
			want: []string{`goal\.yml:7:\d+: .*maximize or minimize`, `goal\.yml:8:1: .*bogus`}},
		{name: "broken YAML", code: 1,
			path: write("syntax.yml", "version: 1\npipeline: [\n"),
			want: []string{`syntax\.yml:\d+:\d+: `}},
		{name: "wrong version", code: 1,
			path: write("version.yml", "version: 7\npipeline:\n  train: x\n  metrics: [m.json]\n"),
			want: []string{`version\.yml:1:\d+: `}},
		{name: "missing file", code: 1, path: filepath.Join(dir, "nope.yml"), want: []string{`nope\.yml`}},
		{name: "malformed sweep space", code: 1,
			path: write("sweep.yml", "version: 1\npipeline:\n  train: x\n  metrics: [m.json]\nparams:\n  lr: 0.1\nmetrics:\n  acc: {goal: maximize}\nsweep:\n  space:\n    lr: uniform(1\n"),
			want: []string{`sweep\.yml:11:\d+: sweep\.space\.`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := cliRun(t, "validate", tc.path)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errs)
			}
			text := errs
			if tc.code == 0 {
				text = out
			}
			for _, re := range tc.want {
				if !regexp.MustCompile(re).MatchString(text) {
					t.Errorf("output does not match %q:\n%s", re, text)
				}
			}
			if tc.code != 0 && out != "" {
				t.Errorf("a failed validation printed to stdout:\n%s", out)
			}
		})
	}

	t.Run("default path", func(t *testing.T) {
		b, err := os.ReadFile(valid)
		if err != nil {
			t.Fatal(err)
		}
		wd := t.TempDir()
		if err := os.WriteFile(filepath.Join(wd, ".mlbot.yml"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Chdir(wd)
		if code, out, errs := cliRun(t, "validate"); code != 0 || !strings.HasPrefix(out, ".mlbot.yml: valid") {
			t.Errorf("mlbot validate in a directory with a valid .mlbot.yml: exit %d\n%s%s", code, out, errs)
		}
	})
}

func TestServeRefusesUnsafeConfig(t *testing.T) {
	const secretVar, allowVar = "MLBOT_GITHUB_WEBHOOK_SECRET", "MLBOT_REPO_ALLOWLIST"
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		want    []string
		notWant []string
	}{
		{name: "nothing set", want: []string{secretVar, allowVar, "--insecure-no-webhook-secret", "--allow-all-repos"}},
		{name: "no allowlist (flag secret)", args: []string{"--github-webhook-secret", "s3cret-value"},
			want: []string{allowVar, "--allow-all-repos"}, notWant: []string{secretVar, "s3cret-value"}},
		{name: "no allowlist (env secret)", env: map[string]string{secretVar: "s3cret-value"},
			want: []string{allowVar}, notWant: []string{"no webhook secret", "s3cret-value"}},
		{name: "no secret (env allowlist)", env: map[string]string{allowVar: "github.com/acme/*"},
			want: []string{secretVar, "--insecure-no-webhook-secret"}, notWant: []string{allowVar}},
		{name: "no secret (flag allowlist)", args: []string{"--repo-allowlist", "github.com/acme/*"},
			want: []string{secretVar}, notWant: []string{allowVar}},
		{name: "token without its secret", env: map[string]string{"MLBOT_GITHUB_TOKEN": "tok", "MLBOT_GITLAB_WEBHOOK_SECRET": "gl", allowVar: "github.com/acme/*"},
			want: []string{secretVar, "GitHub credentials"}, notWant: []string{allowVar}},
	}
	for _, cmd := range []string{"serve", "worker"} {
		for _, tc := range tests {
			t.Run(cmd+"/"+tc.name, func(t *testing.T) {
				cliClearEnv(t)
				for k, v := range tc.env {
					t.Setenv(k, v)
				}
				start := time.Now()
				code, out, errs := cliRun(t, append([]string{cmd}, tc.args...)...)
				if code != 1 {
					t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, out, errs)
				}
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("refusing took %s", d)
				}
				for _, s := range tc.want {
					if !strings.Contains(errs, s) {
						t.Errorf("stderr lacks %q:\n%s", s, errs)
					}
				}
				for _, s := range tc.notWant {
					if strings.Contains(errs, s) {
						t.Errorf("stderr contains %q:\n%s", s, errs)
					}
				}
			})
		}
	}
}

func TestServeStartsWhenToldExplicitly(t *testing.T) {
	cliClearEnv(t)
	rurl := redistest.URL(t, cliRedisDB)
	addr := cliFreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		code          int
		stdout, stder string
	}
	done := make(chan result, 1)
	go func() {
		var out, errb bytes.Buffer
		code := run(ctx, []string{"serve", "--insecure-no-webhook-secret", "--allow-all-repos",
			"--listen", addr, "--redis-url", rurl, "--data-dir", t.TempDir(), "--log-level", "error",
			"--shutdown-timeout", "5s"}, &out, &errb)
		done <- result{code, out.String(), errb.String()}
	}()
	base := "http://" + addr
	if err := cliWaitHTTP(base+"/livez", 200, 20*time.Second, func() bool { return len(done) > 0 }); err != nil {
		cancel()
		r := <-done
		t.Fatalf("%v; serve exited %d: %s", err, r.code, r.stder)
	}
	for _, path := range []string{"/readyz", "/livez"} {
		if code, _ := cliGet(t, base+path); code != 200 {
			t.Errorf("GET %s: %d", path, code)
		}
	}
	// Both hosts' endpoints are up, unsigned.
	for _, forge := range []string{"github", "gitlab"} {
		resp, err := http.Post(base+"/webhooks/"+forge, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			t.Errorf("POST /webhooks/%s: 404", forge)
		}
	}
	cancel()
	select {
	case r := <-done:
		if r.code != 0 {
			t.Errorf("serve exited %d after cancellation\n%s%s", r.code, r.stdout, r.stder)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop within 20s of cancellation")
	}
	cliAssertClosed(t, addr)
}

// TestServeReadyzWithoutRedis starts the app in-process against a Redis that
// is not there: /livez still answers, /readyz and webhooks answer 503.
func TestServeReadyzWithoutRedis(t *testing.T) {
	dir := t.TempDir()
	sb, err := newFakeHost("github", dir, "acme/model")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sb.Close)
	cfg := defaultServerConfig()
	sb.configure(cfg)
	cfg.RedisURL = "redis://127.0.0.1:1/0"
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Listen = "127.0.0.1:0"
	cfg.ShutdownTimeout = 2 * time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := newApp(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), true)
	if err != nil {
		t.Fatalf("newApp with an unreachable Redis: %v (the process should start and report not ready)", err)
	}
	if err := a.Start(); err != nil {
		a.close()
		t.Fatalf("Start with an unreachable Redis: %v", err)
	}
	t.Cleanup(func() { cliShutdownApp(t, a) })
	base := "http://" + a.Addr()

	if code, _ := cliGet(t, base+"/livez"); code != 200 {
		t.Errorf("/livez: %d, want 200 (the process is alive)", code)
	}
	start := time.Now()
	code, body := cliGet(t, base+"/readyz")
	if code != http.StatusServiceUnavailable {
		t.Errorf("/readyz: %d %q, want 503", code, body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("/readyz took %s", d)
	}

	req := sb.push(base+"/webhooks/github", zeroSHA, strings.Repeat("a", 40))
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("webhook without Redis: %d %q, want 503 so that the host redelivers", resp.StatusCode, b)
	}
	if code, metrics := cliGet(t, base+"/metrics"); code != 200 || !regexp.MustCompile(`mlbot_webhook_requests_total\{[^}]*code="503"`).MatchString(metrics) {
		t.Errorf("/metrics (%d) does not count the 503 delivery", code)
	}
}

func cliShutdownApp(t *testing.T, a *app) {
	done := make(chan struct{})
	go func() { a.Shutdown(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Error("app.Shutdown did not return within 30s")
	}
}

// ---- the real binary ----

// cliBuild builds mlbot into dir.
func cliBuild(t testing.TB, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "mlbot")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "-ldflags", "-X main.version=cli-test", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestServeProcess exercises the built binary: startup, health, metrics,
// and what SIGTERM does with and without a running pipeline.
func TestServeProcess(t *testing.T) {
	start := time.Now()
	bin := cliBuild(t, t.TempDir())
	t.Logf("built mlbot in %s", time.Since(start).Round(time.Millisecond))
	t.Run("version", func(t *testing.T) {
		out, err := exec.Command(bin, "version").Output()
		if err != nil || string(out) != "mlbot cli-test\n" {
			t.Errorf("mlbot version: %q, %v", out, err)
		}
	})
	t.Run("exit codes", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			code int
		}{{[]string{"version"}, 0}, {[]string{"--help"}, 0}, {nil, 2}, {[]string{"nope"}, 2},
			{[]string{"validate", filepath.Join("..", "..", "examples", "digits", ".mlbot.yml")}, 0},
			{[]string{"validate", "/nonexistent/.mlbot.yml"}, 1}} {
			cmd := exec.Command(bin, tc.args...)
			cmd.Env = cliChildEnv(nil)
			err := cmd.Run()
			var ee *exec.ExitError
			code := 0
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code {
				t.Errorf("mlbot %v: exit %d, want %d", tc.args, code, tc.code)
			}
		}
	})
	t.Run("graceful shutdown", func(t *testing.T) { cliTestGracefulShutdown(t, bin) })
	t.Run("SIGTERM requeues a running pipeline", func(t *testing.T) { cliTestShutdownRequeues(t, bin, false) })
	// A step that traps SIGTERM (to save a checkpoint, or by accident) gets
	// the runner's kill grace and then SIGKILL; mlbot must not exit and
	// orphan it before then.
	t.Run("SIGTERM kills a train step that ignores SIGTERM", func(t *testing.T) { cliTestShutdownRequeues(t, bin, true) })
}

// cliFixture is a fake host with a small repository whose pipeline is
// given, and the environment that points an mlbot process at both.
type cliFixture struct {
	sb       *fakeHost
	dir      string
	redisURL string
	env      map[string]string
}

func newCLIFixture(t *testing.T, mlbotYML string) *cliFixture {
	t.Helper()
	dir := t.TempDir()
	sb, err := newFakeHost("github", dir, "acme/model")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sb.Close)
	cfg := defaultServerConfig()
	sb.configure(cfg)
	f := &cliFixture{sb: sb, dir: dir, redisURL: redistest.URL(t, cliRedisDB)}
	f.env = map[string]string{
		"MLBOT_REDIS_URL":             f.redisURL,
		"MLBOT_GITHUB_API_URL":        cfg.GitHubAPIURL,
		"MLBOT_GITHUB_TOKEN":          cfg.GitHubToken,
		"MLBOT_GITHUB_WEBHOOK_SECRET": cfg.GitHubWebhookSecret,
		"MLBOT_REPO_ALLOWLIST":        strings.Join(cfg.RepoAllowlist, ","),
		"MLBOT_DATA_DIR":              filepath.Join(dir, "data"),
		"MLBOT_LOG_LEVEL":             "info",
	}
	if err := os.WriteFile(filepath.Join(sb.work, ".mlbot.yml"), []byte(mlbotYML), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := cliRun(t, "validate", filepath.Join(sb.work, ".mlbot.yml")); code != 0 {
		t.Fatalf("the fixture's .mlbot.yml is invalid: %s%s", out, errs)
	}
	return f
}

// pushMain commits the working copy to main and pushes it to the host.
func (f *cliFixture) pushMain(t *testing.T) string {
	t.Helper()
	sha, err := f.sb.commit("model")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.sb.pushBranch("main"); err != nil {
		t.Fatal(err)
	}
	return sha
}

// cliProc is a running mlbot process.
type cliProc struct {
	cmd    *exec.Cmd
	addr   string
	base   string
	out    *cliSyncBuffer
	done   chan struct{}
	waitMu sync.Mutex
	err    error
}

type cliSyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *cliSyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *cliSyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// cliChildEnv is the test's environment without MLBOT_* variables, plus env.
func cliChildEnv(env map[string]string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MLBOT_") {
			out = append(out, kv)
		}
	}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// startMlbot starts `mlbot <command>` with env on a free port and waits for
// /livez.
func startMlbot(t testing.TB, bin, command string, env map[string]string) *cliProc {
	t.Helper()
	addr := cliFreeAddr(t)
	e := map[string]string{"MLBOT_LISTEN": addr, "MLBOT_PUBLIC_URL": "http://" + addr}
	for k, v := range env {
		e[k] = v
	}
	p := &cliProc{addr: addr, base: "http://" + addr, out: &cliSyncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, command)
	p.cmd.Env = cliChildEnv(e)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		p.waitMu.Lock()
		p.err = err
		p.waitMu.Unlock()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("mlbot %s output:\n%s", command, p.out.String())
		}
	})
	if err := cliWaitHTTP(p.base+"/livez", 200, 30*time.Second, p.exited); err != nil {
		t.Fatalf("mlbot %s: %v\n%s", command, err, p.out.String())
	}
	return p
}

func (p *cliProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// terminate sends SIGTERM and returns the exit code and how long the
// process took to exit, failing the test if it takes longer than limit.
func (p *cliProc) terminate(t *testing.T, limit time.Duration) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(limit):
		t.Fatalf("mlbot did not exit within %s of SIGTERM", limit)
	}
	took := time.Since(start)
	p.waitMu.Lock()
	err := p.err
	p.waitMu.Unlock()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, took
	case errors.As(err, &ee):
		return ee.ExitCode(), took
	}
	t.Fatalf("wait: %v", err)
	return -1, took
}

const cliQuickPipeline = `version: 1
pipeline:
  train: echo training
  evaluate: echo '{"accuracy":0.95}' > metrics.json
  metrics: [metrics.json]
  timeout: 1m
metrics:
  accuracy: {goal: maximize, min: 0.5}
`

func cliTestGracefulShutdown(t *testing.T, bin string) {
	f := newCLIFixture(t, cliQuickPipeline)
	env := map[string]string{"MLBOT_SHUTDOWN_TIMEOUT": "5s"}
	for k, v := range f.env {
		env[k] = v
	}
	p := startMlbot(t, bin, "serve", env)
	for _, path := range []string{"/livez", "/readyz"} {
		if code, body := cliGet(t, p.base+path); code != 200 {
			t.Errorf("GET %s: %d %q", path, code, body)
		}
	}

	sha := f.pushMain(t)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(f.sb.push(p.base+"/webhooks/github", zeroSHA, sha))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook: %d %s", resp.StatusCode, b)
	}
	if st := cliAwaitFinal(t, f.sb, sha, 60*time.Second); st.State != "success" {
		t.Errorf("push to main ended %q (%q), want success", st.State, st.Description)
	}
	code, metrics := cliGet(t, p.base+"/metrics")
	if code != 200 || !regexp.MustCompile(`(?m)^mlbot_webhook_requests_total\{[^}]*code="202"[^}]*\} 1$`).MatchString(metrics) {
		t.Errorf("/metrics (%d) lacks mlbot_webhook_requests_total{code=\"202\"} 1:\n%s", code, cliGrep(metrics, "mlbot_webhook_requests_total"))
	}

	exit, took := p.terminate(t, 15*time.Second)
	if exit != 0 {
		t.Errorf("mlbot serve exited %d after SIGTERM, want 0", exit)
	}
	if took > 5*time.Second {
		t.Errorf("idle mlbot serve took %s to exit, more than its shutdown timeout of 5s", took)
	}
	t.Logf("idle mlbot serve exited %d %s after SIGTERM", exit, took.Round(time.Millisecond))
	if !strings.Contains(p.out.String(), "shutting down") {
		t.Errorf("no shutdown log line:\n%s", p.out.String())
	}
	cliAssertClosed(t, p.addr)
}

func cliTestShutdownRequeues(t *testing.T, bin string, ignoreTERM bool) {
	// The pid file lives outside the data dir and is a fixed path, since
	// the child's environment carries no MLBOT_* variables. The first
	// attempt records its pid and sleeps; a later one finds the file and
	// finishes at once.
	pidFile := filepath.Join(t.TempDir(), "pid")
	trap := ""
	if ignoreTERM {
		trap = `trap "" TERM; `
	}
	yml := fmt.Sprintf(`version: 1
pipeline:
  train: 'if [ -e %[1]s ]; then echo second attempt; else %[2]secho $$ > %[1]s.tmp && mv %[1]s.tmp %[1]s && exec sleep 30; fi'
  evaluate: echo '{"accuracy":0.95}' > metrics.json
  metrics: [metrics.json]
  timeout: 5m
`, pidFile, trap)
	f := newCLIFixture(t, yml)
	// The two attempts share state through the pid file, which a
	// sandboxed step cannot write: this test of asynq's requeue runs steps
	// unsandboxed. (The sandbox's own stop is TestSandboxStopsOnCancelAndTimeout.)
	env := map[string]string{"MLBOT_SHUTDOWN_TIMEOUT": "1s", "MLBOT_UNSAFE_NO_SANDBOX": "true"}
	for k, v := range f.env {
		env[k] = v
	}
	p := startMlbot(t, bin, "serve", env)
	sha := f.pushMain(t)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(f.sb.push(p.base+"/webhooks/github", zeroSHA, sha))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook: %d", resp.StatusCode)
	}

	var pid int
	deadline := time.Now().Add(60 * time.Second)
	for pid == 0 {
		if b, err := os.ReadFile(pidFile); err == nil {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pipeline never started its train step\n%s", p.out.String())
		}
		if p.exited() {
			t.Fatalf("mlbot exited before the train step started\n%s", p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) }) // in case the test fails
	if !cliAlive(pid) {
		t.Fatalf("train step (pid %d) is not running", pid)
	}
	time.Sleep(200 * time.Millisecond) // let the sleep be well under way

	// 1s shutdown timeout, plus the runner's kill grace (2s), plus slack.
	exit, took := p.terminate(t, 15*time.Second)
	t.Logf("busy mlbot serve exited %d %s after SIGTERM", exit, took.Round(time.Millisecond))
	if exit != 0 {
		t.Errorf("mlbot serve exited %d after SIGTERM, want 0", exit)
	}
	if took > 5*time.Second {
		t.Errorf("mlbot serve took %s to exit with MLBOT_SHUTDOWN_TIMEOUT=1s", took)
	}
	cliAssertClosed(t, p.addr)
	gone := time.Now().Add(5 * time.Second)
	for cliAlive(pid) && time.Now().Before(gone) {
		time.Sleep(20 * time.Millisecond)
	}
	if cliAlive(pid) {
		t.Errorf("the train step's process %d outlived mlbot serve", pid)
	}

	// The pipeline task is back in its queue, not lost and not stuck active.
	insp := asynq.NewInspector(cliRedisOpt(t, f.redisURL))
	t.Cleanup(func() { insp.Close() })
	pending, err := insp.ListPendingTasks("default")
	if err != nil {
		t.Fatalf("inspect queue default: %v", err)
	}
	active, _ := insp.ListActiveTasks("default")
	var requeued bool
	for _, ti := range pending {
		if ti.Type == jobs.TypePipeline {
			requeued = true
		}
	}
	if !requeued {
		t.Errorf("no pipeline task pending in queue default after shutdown (pending %d, active %d)", len(pending), len(active))
	}
	if st := f.sb.statuses(sha); len(st) > 0 && st[len(st)-1].State != "pending" {
		t.Errorf("the interrupted run reported %q (%q); it should stay pending until retried", st[len(st)-1].State, st[len(st)-1].Description)
	}

	// Another process on the same Redis finishes the run.
	w := startMlbot(t, bin, "worker", env)
	if st := cliAwaitFinal(t, f.sb, sha, 60*time.Second); st.State != "success" {
		t.Errorf("requeued run ended %q (%q), want success\n%s", st.State, st.Description, w.out.String())
	}
	if exit, _ := w.terminate(t, 40*time.Second); exit != 0 {
		t.Errorf("mlbot worker exited %d after SIGTERM", exit)
	}
}

// ---- helpers ----

// cliRedisOpt turns a redis:// URL into asynq's connection options.
func cliRedisOpt(t *testing.T, url string) asynq.RedisConnOpt {
	t.Helper()
	opt, err := asynq.ParseRedisURI(url)
	if err != nil {
		t.Fatal(err)
	}
	return opt
}

// cliFreeAddr returns a loopback address with a port free a moment ago.
func cliFreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func cliGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// cliWaitHTTP polls url until it answers code, stop reports true, or
// timeout passes.
func cliWaitHTTP(url string, code int, timeout time.Duration, stop func() bool) error {
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if stop != nil && stop() {
			return fmt.Errorf("process exited before %s answered", url)
		}
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == code {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer %d within %s (last: %s)", url, code, timeout, last)
}

// cliAssertClosed checks that nothing listens on addr any more.
func cliAssertClosed(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after shutdown", addr)
	}
}

// cliAwaitFinal waits for sha's last mlbot/train-eval status to leave
// pending.
func cliAwaitFinal(t *testing.T, sb *fakeHost, sha string, timeout time.Duration) hostStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if ss := sb.statuses(sha); len(ss) > 0 {
			if last := ss[len(ss)-1]; last.State != "pending" && last.State != "running" {
				return last
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no final status on %s within %s (statuses: %+v)", sha[:7], timeout, sb.statuses(sha))
	return hostStatus{}
}

// cliAlive reports whether pid is a live process (zombies count as dead:
// the init of a container may never reap them).
func cliAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}

func cliGrep(text, word string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestMetricsToken asks GET /metrics, which names every repository with a
// deployed model, the way someone who reaches the port would: with
// MLBOT_METRICS_TOKEN set, no token, a wrong one, a prefix of it and
// another scheme get 401 and no series; Prometheus with the token gets
// them.
func TestMetricsToken(t *testing.T) {
	const token = "metrics-token-0123456789abcdef"
	dir := t.TempDir()
	sb, err := newFakeHost("github", dir, "acme/model")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sb.Close)
	cfg := defaultServerConfig()
	sb.configure(cfg)
	cfg.RedisURL = redistest.URL(t, e2eRedisDB)
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Listen = "127.0.0.1:0"
	cfg.ShutdownTimeout = 2 * time.Second
	cfg.MetricsToken = token
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := newApp(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), true)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		a.close()
		t.Fatal(err)
	}
	t.Cleanup(func() { cliShutdownApp(t, a) })
	get := func(auth string) (int, string) {
		code, _, body := getWithAuth(t, "http://"+a.Addr()+"/metrics", auth)
		return code, body
	}
	for _, auth := range []string{"", "Bearer wrong-token-0123456789abcdef", "Bearer " + token[:len(token)-1], "Basic " + token} {
		if code, body := get(auth); code != http.StatusUnauthorized || strings.Contains(body, "mlbot_") || strings.Contains(body, "go_goroutines") {
			t.Errorf("GET /metrics with %q = %d:\n%.300s", auth, code, body)
		}
	}
	if code, body := get("Bearer " + token); code != http.StatusOK || !strings.Contains(body, "mlbot_workers") {
		t.Errorf("GET /metrics with the token = %d:\n%.300s", code, body)
	}
}
