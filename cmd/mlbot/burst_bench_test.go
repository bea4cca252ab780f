package main

// A burst of pull requests across repositories, first come, first served
// against fair (per-repository turns), in one run, against a real Redis
// (MLBOT_TEST_REDIS_URL, database 11) or an in-process one:
//
//	MLBOT_TEST_REDIS_URL=redis://127.0.0.1:6379 go test -run '^$' -bench 'Burst' -benchtime 1x ./cmd/mlbot/
//
// Two mlbot processes (one serving HTTP, one more worker; one pipeline
// worker each, sharing Redis) receive 200 pull request webhooks at once,
// over HTTP, from 20 repositories: one repository opens 105 of them, the
// 19 others 5 each, and the burst lands first. Each training sleeps
// burstTraining. Times are the host simulator's own clock when it handled
// the status calls.
//
// The pending sub-benchmarks stop once every pull request has its pending
// status: the first second of the burst, on a host simulator that answers
// at once or after 100 ms (as github.com's API takes 100–300 ms), with 8
// event workers per process (mlbot's fixed number before
// MLBOT_EVENT_CONCURRENCY) or 32 (its default):
//
//	go test -run '^$' -bench 'Burst/pending' -benchtime 1x ./cmd/mlbot/

import (
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

	"github.com/mlbot/mlbot/internal/redistest"
)

// The burst's shape.
const (
	burstRepos    = 20
	burstPRs      = 200
	burstOfOne    = 105 // the bursting repository's pull requests
	burstTraining = "0.3"
)

func BenchmarkBurst(b *testing.B) {
	for _, mode := range []burstMode{
		{name: "fifo", fifo: true},
		{name: "fair"},
		// The first second of the burst only, on a host that answers at
		// once and on one that takes 100 ms per call, with the event
		// workers of earlier versions (8) and today's default.
		{name: "pending/host=0ms/events=8", pendingOnly: true, events: 8},
		{name: "pending/host=0ms/events=32", pendingOnly: true, events: 32},
		{name: "pending/host=100ms/events=8", pendingOnly: true, events: 8, hostLatency: 100 * time.Millisecond},
		{name: "pending/host=100ms/events=32", pendingOnly: true, events: 32, hostLatency: 100 * time.Millisecond},
	} {
		b.Run(mode.name, func(b *testing.B) {
			for range b.N {
				runBurst(b, mode)
			}
		})
	}
}

// burstMode is one way of running the burst.
type burstMode struct {
	name string
	// fifo queues pipelines first come, first served instead of fairly.
	fifo bool
	// pendingOnly stops once every pull request has its pending status
	// and reports only the webhook → pending figures.
	pendingOnly bool
	// events is each process's event concurrency (0: the default).
	events int
	// hostLatency delays every answer of the host simulator during the
	// burst.
	hostLatency time.Duration
}

// burstPR is one pull request of the burst and its timeline.
type burstPR struct {
	repo                       string
	number                     int
	head                       string
	sent                       time.Time
	pending, running, reported time.Time
}

// runBurst sends the burst and reports its figures.
func runBurst(b *testing.B, mode burstMode) {
	fifo := mode.fifo
	b.StopTimer()
	dir := b.TempDir()
	sb, err := newFakeHost("github", dir, "acme/r00")
	if err != nil {
		b.Fatal(err)
	}
	defer sb.Close()
	repos := make([]string, burstRepos)
	for i := range repos {
		repos[i] = fmt.Sprintf("acme/r%02d", i)
		if i > 0 {
			if err := gitCmd(sb.root, "init", "--bare", "--quiet", "--initial-branch=main", filepath.Join(sb.root, repos[i]+".git")); err != nil {
				b.Fatal(err)
			}
		}
		sb.host.grant(repos[i], "alice", "write")
	}
	yml := strings.Replace(latencyPipeline, `train: "true"`, `train: "sleep `+burstTraining+`"`, 1)
	if err := benchWriteFile(sb, ".mlbot.yml", yml); err != nil {
		b.Fatal(err)
	}
	mainSHA, err := sb.commit("pipeline")
	if err != nil {
		b.Fatal(err)
	}
	heads := make([]string, burstOfOne)
	for i := range heads {
		if err := sb.checkout(fmt.Sprintf("pr-%03d", i), true); err != nil {
			b.Fatal(err)
		}
		if err := benchWriteFile(sb, "params", fmt.Sprint(i)); err != nil {
			b.Fatal(err)
		}
		if heads[i], err = sb.commit(fmt.Sprint("head ", i)); err != nil {
			b.Fatal(err)
		}
		if err := sb.checkout("main", false); err != nil {
			b.Fatal(err)
		}
	}
	for _, r := range repos {
		if err := gitCmd(sb.work, "push", "--quiet", "--force", "--all", filepath.Join(sb.root, r+".git")); err != nil {
			b.Fatal(err)
		}
	}

	// Two processes on one Redis, one pipeline worker each.
	key := "burst-bench-task-key-0123456789abcdef"
	log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg := defaultServerConfig()
	cfg.RedisURL = redistest.URL(b, benchRedisDB)
	cfg.DataDir = filepath.Join(dir, "serve")
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.Concurrency, cfg.FIFOPipelines, cfg.TaskKey = 1, fifo, key
	if mode.events > 0 {
		cfg.EventConcurrency = mode.events
	}
	sb.configure(cfg)
	serve, url, err := startLocal(cfg, log)
	if err != nil {
		b.Fatal(err)
	}
	defer serve.Shutdown()
	wcfg := defaultServerConfig()
	wcfg.RedisURL, wcfg.DataDir, wcfg.ShutdownTimeout = cfg.RedisURL, filepath.Join(dir, "worker"), 5*time.Second
	wcfg.Concurrency, wcfg.FIFOPipelines, wcfg.TaskKey = 1, fifo, key
	wcfg.EventConcurrency = cfg.EventConcurrency
	sb.configure(wcfg)
	wcfg.Listen, wcfg.PublicURL = "127.0.0.1:0", url
	if err := wcfg.Validate(); err != nil {
		b.Fatal(err)
	}
	worker, err := newApp(wcfg, log, false)
	if err != nil {
		b.Fatal(err)
	}
	if err := worker.Start(); err != nil {
		b.Fatal(err)
	}
	defer worker.Shutdown()
	hook := url + "/webhooks/github"
	hc := &http.Client{Timeout: 30 * time.Second}
	deliver := func(req *http.Request) {
		resp, err := hc.Do(req)
		if err != nil {
			b.Error(err)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			b.Errorf("webhook answered %d", resp.StatusCode)
		}
	}
	cloneURL := func(repo string) string { return sb.srv.URL + "/" + repo + ".git" }

	// Every repository's baseline, untimed.
	for _, r := range repos {
		deliver(sb.host.pushDelivery(hook, pushEvent{Repo: r, CloneURL: cloneURL(r), Before: zeroSHA, After: mainSHA,
			Branch: "main", Secret: sb.secret, Token: sb.secret}))
	}
	for _, r := range repos {
		awaitFinalIn(b, sb, r, mainSHA, 5*time.Minute)
	}

	// The burst: the bursting repository's pull requests first, then
	// five of each other's, sent by 16 senders at once.
	var prs []*burstPR
	for i := range burstOfOne {
		prs = append(prs, &burstPR{repo: repos[0], number: i + 1, head: heads[i]})
	}
	for i := range (burstPRs - burstOfOne) / (burstRepos - 1) {
		for _, r := range repos[1:] {
			prs = append(prs, &burstPR{repo: r, number: i + 1, head: heads[i]})
		}
	}
	reqs := make([]*http.Request, len(prs))
	for i, p := range prs {
		reqs[i] = sb.host.prDelivery(hook, prEvent{Action: "opened", Repo: p.repo, CloneURL: cloneURL(p.repo), Number: p.number,
			HeadRef: fmt.Sprintf("pr-%03d", p.number-1), HeadSHA: p.head, BaseSHA: mainSHA, Author: "alice", Association: "MEMBER",
			Secret: sb.secret, Token: sb.secret})
	}
	sb.host.recorder().Reset()
	sb.host.faults().SetLatency(mode.hostLatency)
	b.StartTimer()
	start := time.Now()
	work := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				prs[i].sent = time.Now()
				deliver(reqs[i])
			}
		}()
	}
	for i := range prs {
		work <- i
	}
	close(work)
	wg.Wait()
	if mode.pendingOnly {
		for deadline := time.Now().Add(2 * time.Minute); readBurst(sb, prs) >= 0 && !allPending(prs); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("not every pull request has its pending status")
			}
		}
		b.StopTimer()
		reportPending(b, prs)
		return
	}
	for deadline := time.Now().Add(15 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if readBurst(sb, prs) == len(prs) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d pull requests reported", readBurst(sb, prs), len(prs))
		}
	}
	b.StopTimer()
	reportBurst(b, fifo, start, prs)
}

// awaitFinalIn waits for a final mlbot/train-eval status of sha in repo.
func awaitFinalIn(b *testing.B, sb *fakeHost, repo, sha string, limit time.Duration) {
	b.Helper()
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		ss := sb.host.statuses(repo, sha)
		if len(ss) > 0 && ss[len(ss)-1].State != "pending" && ss[len(ss)-1].State != "running" {
			if ss[len(ss)-1].State != "success" {
				b.Fatalf("%s %s: %+v", repo, sha[:7], ss[len(ss)-1])
			}
			return
		}
	}
	b.Fatalf("no final status on %s %s", repo, sha[:7])
}

// readBurst fills in each pull request's pending, running and final
// status times from the simulator's record, and returns how many have
// reported.
func readBurst(sb *fakeHost, prs []*burstPR) int {
	type key struct{ repo, sha string }
	byHead := map[key]*burstPR{}
	for _, p := range prs {
		byHead[key{p.repo, p.head}] = p
	}
	for _, c := range sb.host.recorder().Calls() {
		if c.Method != http.MethodPost || c.Status/100 != 2 {
			continue
		}
		rest, ok := strings.CutPrefix(c.Path, "/repos/")
		if !ok {
			continue
		}
		repoPath, sha, ok := strings.Cut(rest, "/statuses/")
		if !ok {
			continue
		}
		p := byHead[key{repoPath, sha}]
		if p == nil {
			continue
		}
		body := string(c.Body)
		switch {
		case strings.Contains(body, `"pending"`) && strings.Contains(body, "running"):
			if p.running.IsZero() {
				p.running = c.At
			}
		case strings.Contains(body, `"pending"`):
			if p.pending.IsZero() {
				p.pending = c.At
			}
		case strings.Contains(body, `"success"`), strings.Contains(body, `"failure"`), strings.Contains(body, `"error"`):
			p.reported = c.At
		}
	}
	n := 0
	for _, p := range prs {
		if !p.reported.IsZero() {
			n++
		}
	}
	return n
}

// allPending reports whether every pull request has its pending status.
func allPending(prs []*burstPR) bool {
	for _, p := range prs {
		if p.pending.IsZero() {
			return false
		}
	}
	return true
}

// reportPending prints and reports the burst's webhook → pending figures.
func reportPending(b *testing.B, prs []*burstPR) {
	var pending []time.Duration
	first, last := prs[0].sent, prs[0].pending
	for _, p := range prs {
		pending = append(pending, p.pending.Sub(p.sent))
		first, last = minTime(first, p.sent), maxTime(last, p.pending)
	}
	fmt.Fprintf(os.Stdout, "burst pending: p50 %.0f ms, p99 %.0f ms, max %.0f ms; first webhook sent → last pending status %.0f ms\n",
		benchMS(benchPct(pending, 0.5)), benchMS(benchPct(pending, 0.99)), benchMS(slices.Max(pending)), benchMS(last.Sub(first)))
	b.ReportMetric(benchMS(benchPct(pending, 0.5)), "pending-p50-ms")
	b.ReportMetric(benchMS(benchPct(pending, 0.99)), "pending-p99-ms")
	b.ReportMetric(benchMS(slices.Max(pending)), "pending-max-ms")
	b.ReportMetric(benchMS(last.Sub(first)), "burst-to-last-pending-ms")
	b.ReportMetric(0, "ns/op")
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// reportBurst prints the burst's figures and reports them as metrics.
func reportBurst(b *testing.B, fifo bool, start time.Time, prs []*burstPR) {
	var pending, runs []time.Duration
	first := map[string]time.Time{}
	for _, p := range prs {
		pending = append(pending, p.pending.Sub(p.sent))
		if !p.running.IsZero() {
			runs = append(runs, p.reported.Sub(p.running))
		}
		if f, ok := first[p.repo]; !ok || p.reported.Before(f) {
			first[p.repo] = p.reported
		}
	}
	training := benchPct(runs, 0.5)
	// For each other repository: its first report after the burst
	// began, and the burst's runs that started while the repository's
	// first run waited (from its pending status to its first running
	// one): the delay the burst caused it, in runs.
	queued, started := map[string]time.Time{}, map[string]time.Time{}
	for _, p := range prs {
		if q, ok := queued[p.repo]; !ok || p.pending.Before(q) {
			queued[p.repo] = p.pending
		}
		if s, ok := started[p.repo]; !p.running.IsZero() && (!ok || p.running.Before(s)) {
			started[p.repo] = p.running
		}
	}
	var firsts []time.Duration
	maxAhead := 0
	for repo, f := range first {
		if repo == prs[0].repo {
			continue
		}
		firsts = append(firsts, f.Sub(start))
		ahead := 0
		for _, p := range prs {
			if p.repo == prs[0].repo && p.running.After(queued[repo]) && p.running.Before(started[repo]) {
				ahead++
			}
		}
		maxAhead = max(maxAhead, ahead)
	}
	mode := "fair"
	if fifo {
		mode = "fifo"
	}
	// The burst's share of another repository's wait: its runs started
	// meanwhile, over the two workers, in trainings.
	burstDelay := float64(maxAhead) / 2
	fmt.Fprintf(os.Stdout, "burst %s: pending p50 %.0f ms, p99 %.0f ms, max %.0f ms; run (running → report) p50 %.0f ms; "+
		"other repositories' first report p50 %.1f s, max %.1f s; burst runs started while another's first waited: max %d (%.1f trainings on 2 workers)\n",
		mode, benchMS(benchPct(pending, 0.5)), benchMS(benchPct(pending, 0.99)), benchMS(slices.Max(pending)), benchMS(training),
		benchPct(firsts, 0.5).Seconds(), slices.Max(firsts).Seconds(), maxAhead, burstDelay)
	b.ReportMetric(benchMS(benchPct(pending, 0.5)), "pending-p50-ms")
	b.ReportMetric(benchMS(benchPct(pending, 0.99)), "pending-p99-ms")
	b.ReportMetric(benchMS(slices.Max(pending)), "pending-max-ms")
	b.ReportMetric(benchMS(training), "run-p50-ms")
	b.ReportMetric(benchPct(firsts, 0.5).Seconds(), "first-report-p50-s")
	b.ReportMetric(slices.Max(firsts).Seconds(), "first-report-max-s")
	b.ReportMetric(burstDelay, "burst-delay-trainings")
	b.ReportMetric(0, "ns/op")
}
