package main

// Memory of the mlbot binary, as an operator sees it (VmRSS of the
// process), with a real Redis (MLBOT_TEST_REDIS_URL, database 11) or, when
// none is given, the binary's own in-process Redis:
//
//	MLBOT_TEST_REDIS_URL=redis://127.0.0.1:6379 go test -run '^$' -bench RSS -benchtime 1x ./cmd/mlbot/
//
// idle-RSS-MB is measured after startup once the process has settled;
// peak-growth-MB is the highest VmRSS (sampled every 50 ms) while a pull
// request whose training prints 1 GiB of output runs, less the VmRSS just
// before its webhook was sent. Targets: idle ≤ 60 MB, growth ≤ 50 MB.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlbot/mlbot/internal/redistest"
)

// rssBigOutput prints 1 GiB of 100-character lines.
const rssBigOutput = `head -c 1073741824 /dev/zero | tr '\0' 'x' | fold -w 100`

const rssBasePipeline = `version: 1
pipeline:
  train: "true"
  evaluate: "echo '{\"accuracy\": 0.9}' > metrics.json"
  metrics: [metrics.json]
  timeout: 10m
`

func BenchmarkRSS(b *testing.B) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "mlbot")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}

	sb, err := newFakeHost("github", dir, "acme/rss")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(sb.Close)
	sb.grant("alice", "write") // the pull request's author may run pipelines
	cfg := defaultServerConfig()
	sb.configure(cfg)
	addr := rssFreeAddr(b)
	env := map[string]string{
		"MLBOT_LISTEN":                addr,
		"MLBOT_PUBLIC_URL":            "http://" + addr,
		"MLBOT_DATA_DIR":              filepath.Join(dir, "data"),
		"MLBOT_REPO_ALLOWLIST":        strings.Join(cfg.RepoAllowlist, ","),
		"MLBOT_GITHUB_API_URL":        cfg.GitHubAPIURL,
		"MLBOT_GITHUB_TOKEN":          cfg.GitHubToken,
		"MLBOT_GITHUB_WEBHOOK_SECRET": cfg.GitHubWebhookSecret,
		"MLBOT_LOG_LEVEL":             "warn",
	}
	if os.Getenv("MLBOT_TEST_REDIS_URL") != "" {
		env["MLBOT_REDIS_URL"] = redistest.URL(b, benchRedisDB)
	} else {
		b.Log("MLBOT_TEST_REDIS_URL is not set: mlbot runs its in-process Redis, whose memory counts in its RSS")
	}
	proc := rssStart(b, bin, env)
	base := "http://" + addr
	hook := base + "/webhooks/github"

	// Idle: ready, then settled (no change over a second).
	if err := rssWaitHTTP(base+"/readyz", 30*time.Second); err != nil {
		b.Fatalf("mlbot serve not ready: %v\n%s", err, proc.out.String())
	}
	idle := rssSettled(b, proc.pid())

	// A baseline on main, so the pull request's run is its own only.
	lb := &latencyBench{b: b, sb: sb, url: base, hook: hook, git: &gitClock{}, hc: &http.Client{Timeout: 30 * time.Second}}
	if err := benchWriteFile(sb, ".mlbot.yml", rssBasePipeline); err != nil {
		b.Fatal(err)
	}
	if lb.mainSHA, err = sb.commit("pipeline"); err != nil {
		b.Fatal(err)
	}
	if err := sb.pushBranch("main"); err != nil {
		b.Fatal(err)
	}
	lb.deliver(sb.push(hook, zeroSHA, lb.mainSHA))
	lb.awaitFinal(lb.mainSHA, false)
	if err := sb.checkout("loud", true); err != nil {
		b.Fatal(err)
	}
	loud := strings.Replace(rssBasePipeline, `train: "true"`, "train: \""+strings.ReplaceAll(rssBigOutput, `\`, `\\`)+"\"", 1)
	if err := benchWriteFile(sb, ".mlbot.yml", loud); err != nil {
		b.Fatal(err)
	}

	var peakGrowth, peak int64
	var runTime time.Duration
	for b.Loop() {
		b.StopTimer()
		sha, err := sb.commit("print 1 GiB while training")
		if err != nil {
			b.Fatal(err)
		}
		if err := sb.pushBranch("loud"); err != nil {
			b.Fatal(err)
		}
		action := "updated"
		if lb.pushes == 0 {
			action = "opened"
		}
		lb.pushes++
		req := sb.pr(hook, prEvent{Action: action, HeadRef: "loud", HeadSHA: sha, BaseSHA: lb.mainSHA, Author: "alice", Association: "MEMBER"})
		before := rssSettled(b, proc.pid())
		b.StartTimer()

		stop := make(chan struct{})
		var wg sync.WaitGroup
		var high int64
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(50 * time.Millisecond)
			defer t.Stop()
			for {
				if v, err := vmRSS(proc.pid()); err == nil && v > high {
					high = v
				}
				select {
				case <-stop:
					return
				case <-t.C:
				}
			}
		}()
		start := time.Now()
		lb.deliver(req)
		lb.awaitFinalWithin(sha, 10*time.Minute)
		b.StopTimer()
		close(stop)
		wg.Wait()
		runTime += time.Since(start)
		peak = max(peak, high)
		peakGrowth = max(peakGrowth, high-before)
		train, _, err := lb.runDurations(sha)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("1 GiB run: %s end to end (train %s); VmRSS before %.1f MB, peak %.1f MB",
			time.Since(start).Round(time.Millisecond), train.Round(time.Millisecond), float64(before)/(1<<20), float64(high)/(1<<20))
		b.StartTimer()
	}
	// After the loop: b.Loop's first call clears metrics reported earlier.
	b.ReportMetric(float64(idle)/(1<<20), "idle-RSS-MB")
	b.ReportMetric(float64(peakGrowth)/(1<<20), "peak-growth-MB")
	b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MB")
	if proc.exited() {
		b.Fatalf("mlbot exited during the run:\n%s", proc.out.String())
	}
}

// awaitFinalWithin waits for sha's final status, polling every 50 ms.
func (lb *latencyBench) awaitFinalWithin(sha string, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if ss := lb.sb.statuses(sha); len(ss) > 0 {
			if last := ss[len(ss)-1]; last.State != "pending" && last.State != "running" {
				if last.State != "success" {
					lb.b.Fatalf("status of %s is %s: %+v", sha[:7], last.State, last)
				}
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	lb.b.Fatalf("no final status on %s after %s", sha[:7], limit)
}

// rssSettled waits (up to 10 s) until the process's VmRSS stops moving by
// more than 256 kB over a second and returns it.
func rssSettled(b *testing.B, pid int) int64 {
	b.Helper()
	prev, err := vmRSS(pid)
	if err != nil {
		b.Fatal(err)
	}
	for range 10 {
		time.Sleep(time.Second)
		cur, err := vmRSS(pid)
		if err != nil {
			b.Fatal(err)
		}
		if d := cur - prev; d < 256<<10 && d > -(256<<10) {
			return cur
		}
		prev = cur
	}
	return prev
}

// vmRSS reads VmRSS of pid in bytes from /proc/PID/status.
func vmRSS(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

type rssProc struct {
	cmd  *exec.Cmd
	out  *rssBuffer
	done chan struct{}
}

func (p *rssProc) pid() int { return p.cmd.Process.Pid }

func (p *rssProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// rssStart starts `mlbot serve` with exactly env among MLBOT_* variables;
// it is stopped with SIGTERM (then killed) when the benchmark ends.
func rssStart(b *testing.B, bin string, env map[string]string) *rssProc {
	var e []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MLBOT_") {
			e = append(e, kv)
		}
	}
	for k, v := range env {
		e = append(e, k+"="+v)
	}
	p := &rssProc{out: &rssBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, "serve")
	p.cmd.Env = e
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	b.Cleanup(func() {
		p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

type rssBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *rssBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.buf.Len() > 1<<20 {
		return len(p), nil
	}
	return s.buf.Write(p)
}

func (s *rssBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func rssFreeAddr(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func rssWaitHTTP(url string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var last error
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s answered %d", url, resp.StatusCode)
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%v (last: %v)", ctx.Err(), last)
}
