package main

// End-to-end latency of mlbot serve against the fake host, with a real
// Redis (MLBOT_TEST_REDIS_URL, database 11) or an in-process one:
//
//	MLBOT_TEST_REDIS_URL=redis://127.0.0.1:6379 go test -run '^$' -bench 'WebhookTo' -benchtime 20x ./cmd/mlbot/
//
// Every iteration commits a new head to the pull request (outside the
// timer) and delivers its signed "synchronize" webhook; times are taken
// from the simulator's own clock when it handled the status/comment call,
// so the 1 ms polling does not blur them.

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlbot/mlbot/bot/forgesim"
	"github.com/mlbot/mlbot/internal/redistest"
)

// benchRedisDB is the Redis database of this package's benchmarks.
const benchRedisDB = 11

// latencyPipeline runs two trivial commands, so that what is measured is
// mlbot and not the training.
const latencyPipeline = `version: 1
pipeline:
  train: "true"
  evaluate: "echo '{\"accuracy\": 0.9}' > metrics.json"
  metrics: [metrics.json]
  timeout: 1m
metrics:
  accuracy: {goal: maximize}
`

// BenchmarkWebhookToPending is the time from sending a pull request
// webhook to the host receiving the pending mlbot/train-eval status.
// Target: ≤ 100 ms.
func BenchmarkWebhookToPending(b *testing.B) {
	lb := newLatencyBench(b, latencyPipeline)
	var lat []time.Duration
	for b.Loop() {
		it := lb.next(false)
		lat = append(lat, it.pending.Sub(it.sent))
	}
	reportLatency(b, lat)
}

// BenchmarkWebhookToReport is the time from sending a pull request webhook
// to the host holding both the final status and the comment for that head.
// overhead-ms is that time less the time the two commands ran (the run's
// train/evaluate durations) and the git clone (the simulator's git HTTP
// requests). Target: overhead ≤ 300 ms.
func BenchmarkWebhookToReport(b *testing.B) {
	lb := newLatencyBench(b, latencyPipeline)
	var lat, over, clone, cmds []time.Duration
	for b.Loop() {
		it := lb.next(true)
		e2e := it.reported.Sub(it.sent)
		lat = append(lat, e2e)
		clone = append(clone, it.clone)
		cmds = append(cmds, it.commands)
		over = append(over, e2e-it.commands-it.clone)
	}
	reportLatency(b, lat)
	b.ReportMetric(benchMS(benchMean(over)), "overhead-ms")
	b.ReportMetric(benchMS(benchPct(over, 0.99)), "overhead-p99-ms")
	b.ReportMetric(benchMS(benchMean(clone)), "clone-ms")
	b.ReportMetric(benchMS(benchMean(cmds)), "commands-ms")
}

func reportLatency(b *testing.B, lat []time.Duration) {
	b.ReportMetric(benchMS(benchMean(lat)), "ms/op")
	b.ReportMetric(benchMS(benchPct(lat, 0.50)), "p50-ms")
	b.ReportMetric(benchMS(benchPct(lat, 0.99)), "p99-ms")
}

// latencyBench is mlbot serve (in this process) pointed at a fake host whose
// repository has a baseline on main and an open pull request from "bench".
type latencyBench struct {
	b       *testing.B
	sb      *fakeHost
	url     string
	hook    string
	mainSHA string
	git     *gitClock
	hc      *http.Client
	pushes  int
	dataDir string
}

// latencyIteration is one head pushed and its timeline.
type latencyIteration struct {
	sha                     string
	sent, pending, reported time.Time
	clone, commands         time.Duration
}

func newLatencyBench(b *testing.B, mlbotYML string) *latencyBench {
	b.Helper()
	dir := b.TempDir()
	sb, err := newFakeHost("github", dir, "acme/bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(sb.Close)
	// The pull requests' author may run pipelines (write access).
	sb.grant("alice", "write")
	// Time git's HTTP traffic at the host. Set before the first request, so
	// the server goroutines only ever read the wrapped handler.
	gc := &gitClock{}
	sb.srv.Config.Handler = gc.wrap(sb.srv.Config.Handler)

	cfg := defaultServerConfig()
	cfg.RedisURL = redistest.URL(b, benchRedisDB)
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.ShutdownTimeout = 5 * time.Second
	sb.configure(cfg)
	a, url, err := startLocal(cfg, slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(a.Shutdown)
	lb := &latencyBench{b: b, sb: sb, url: url, hook: url + "/webhooks/github", git: gc,
		hc: &http.Client{Timeout: 30 * time.Second}, dataDir: cfg.DataDir}

	// The baseline on main, then the pull request opened once (untimed
	// warm-up: first connections, first clone of the repository).
	if err := benchWriteFile(sb, ".mlbot.yml", mlbotYML); err != nil {
		b.Fatal(err)
	}
	if lb.mainSHA, err = sb.commit("pipeline"); err != nil {
		b.Fatal(err)
	}
	if err := sb.pushBranch("main"); err != nil {
		b.Fatal(err)
	}
	lb.deliver(sb.push(lb.hook, zeroSHA, lb.mainSHA))
	lb.awaitFinal(lb.mainSHA, false)
	if err := sb.checkout("bench", true); err != nil {
		b.Fatal(err)
	}
	lb.next(false)
	return lb
}

// next pushes a new head (timer stopped), delivers its webhook (timer
// running) and waits for its report. The timer stops once the pending
// status was seen, or with untilReport once the report was; the returned
// timeline has the simulator's timestamps of both.
func (lb *latencyBench) next(untilReport bool) latencyIteration {
	b := lb.b
	b.StopTimer()
	sha, err := lb.sb.commit(fmt.Sprintf("iteration %d", lb.pushes))
	if err != nil {
		b.Fatal(err)
	}
	if err := lb.sb.pushBranch("bench"); err != nil {
		b.Fatal(err)
	}
	action := "updated"
	if lb.pushes == 0 {
		action = "opened"
	}
	lb.pushes++
	req := lb.sb.pr(lb.hook, prEvent{Action: action, HeadRef: "bench", HeadSHA: sha, BaseSHA: lb.mainSHA, Author: "alice", Association: "MEMBER"})
	lb.sb.host.recorder().Reset()
	lb.git.reset()
	b.StartTimer()

	it := latencyIteration{sha: sha, sent: time.Now()}
	lb.deliver(req)
	it.pending = lb.awaitPending(sha)
	if !untilReport {
		b.StopTimer()
	}
	it.reported = lb.awaitFinal(sha, true)
	b.StopTimer()
	it.clone = lb.git.span()
	train, eval, err := lb.runDurations(sha)
	if err != nil {
		b.Fatal(err)
	}
	it.commands = train + eval
	b.StartTimer()
	return it
}

func (lb *latencyBench) deliver(req *http.Request) {
	resp, err := lb.hc.Do(req)
	if err != nil {
		lb.b.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		lb.b.Fatalf("webhook answered %d: %s", resp.StatusCode, body)
	}
}

// statusCalls are the simulator's recorded status posts for sha.
func (lb *latencyBench) statusCalls(sha string) []forgesim.Call {
	var out []forgesim.Call
	for _, c := range lb.sb.host.recorder().Find(http.MethodPost, "/statuses/"+sha) {
		if c.Status/100 == 2 {
			out = append(out, c)
		}
	}
	return out
}

// awaitPending polls (1 ms) until the host holds a pending status for sha
// and returns when the simulator handled it.
func (lb *latencyBench) awaitPending(sha string) time.Time {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, c := range lb.statusCalls(sha) {
			if strings.Contains(string(c.Body), `"pending"`) {
				return c.At
			}
		}
		time.Sleep(time.Millisecond)
	}
	lb.b.Fatalf("no pending status on %s after 30s; statuses %+v", sha[:7], lb.sb.statuses(sha))
	return time.Time{}
}

// awaitFinal waits until sha has a final status (and, for a pull request,
// the comment names it) and returns when the later of the two calls was
// handled by the simulator.
func (lb *latencyBench) awaitFinal(sha string, withComment bool) time.Time {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		ss := lb.sb.statuses(sha)
		final := len(ss) > 0 && ss[len(ss)-1].State != "pending" && ss[len(ss)-1].State != "running"
		commented := !withComment
		if withComment {
			for _, c := range lb.sb.comments(1) {
				if strings.Contains(c.Body, sha[:7]) {
					commented = true
				}
			}
		}
		if final && commented {
			if st := ss[len(ss)-1].State; st != "success" {
				lb.b.Fatalf("status of %s is %s: %+v", sha[:7], st, ss[len(ss)-1])
			}
			var at time.Time
			for _, c := range lb.sb.host.recorder().Calls() {
				isStatus := strings.HasSuffix(c.Path, "/statuses/"+sha) && c.Method == http.MethodPost
				isComment := strings.Contains(c.Path, "/issues/") && (c.Method == http.MethodPost || c.Method == http.MethodPatch)
				if (isStatus || (withComment && isComment)) && c.Status/100 == 2 && c.At.After(at) {
					at = c.At
				}
			}
			return at
		}
		time.Sleep(time.Millisecond)
	}
	lb.b.Fatalf("no final status and comment on %s after 60s; statuses %+v", sha[:7], lb.sb.statuses(sha))
	return time.Time{}
}

// runDurations reads the train and evaluate durations of sha's run from
// the run page's JSON, found through the status's link.
func (lb *latencyBench) runDurations(sha string) (train, eval time.Duration, err error) {
	ss := lb.sb.statuses(sha)
	if len(ss) == 0 || ss[len(ss)-1].TargetURL == "" {
		return 0, 0, fmt.Errorf("no run link on %s", sha[:7])
	}
	resp, err := lb.hc.Get(ss[len(ss)-1].TargetURL + "?format=json")
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	var run struct {
		Train    time.Duration `json:"train_ns"`
		Evaluate time.Duration `json:"evaluate_ns"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&run); err != nil {
		return 0, 0, fmt.Errorf("run JSON: %w", err)
	}
	return run.Train, run.Evaluate, nil
}

// gitClock records when the host served git requests.
type gitClock struct {
	mu         sync.Mutex
	first, end time.Time
}

func (g *gitClock) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := forgesim.GitPath(r.URL.Path); !ok {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		next.ServeHTTP(w, r)
		end := time.Now()
		g.mu.Lock()
		if g.first.IsZero() || start.Before(g.first) {
			g.first = start
		}
		if end.After(g.end) {
			g.end = end
		}
		g.mu.Unlock()
	})
}

func (g *gitClock) reset() {
	g.mu.Lock()
	g.first, g.end = time.Time{}, time.Time{}
	g.mu.Unlock()
}

// span is the time from the first git request's arrival to the last one's
// answer since the reset: the clone as the host saw it.
func (g *gitClock) span() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.end.Sub(g.first)
}

func benchWriteFile(sb *fakeHost, name, body string) error {
	return os.WriteFile(filepath.Join(sb.work, name), []byte(body), 0o644)
}

func benchMean(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}

// pct is the q-quantile (nearest rank) of ds.
func benchPct(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func benchMS(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
