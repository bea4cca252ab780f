package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/mlbot/mlbot/internal/redistest"
	"github.com/mlbot/mlbot/jobs"
	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/jobs/store"
)

// The soak's shape; SOAK_DURATION, SOAK_RATE and SOAK_FAULT_RATE change
// the first three.
const (
	soakDefaultDuration  = 90 * time.Second
	soakDefaultRate      = 3.0  // webhooks per second
	soakDefaultFaultRate = 0.05 // of the host's API calls
	soakRepos            = 20
	// Commits made per repository: enough for the longest soak the
	// defaults allow, at the rate the generator picks each kind.
	soakPushes, soakPRs, soakHeads = 8, 8, 3
)

// BenchmarkChaosSoak is issue 12's chaos soak, a benchmark and not a CI
// test: a load generator sends a steady stream of signed webhooks built
// from real payloads (pushes to main, pull request openings and
// synchronizations across 20 repositories, comments with and without
// commands) to two `mlbot serve` and two `mlbot worker` processes (the
// built binary) sharing a Redis primary and replica behind three
// sentinels, while a fault injector in front of the GitHub simulator
// answers a share of the API calls with 500, 502, 503 or 429 (or applies
// a write and loses its answer), one worker is SIGKILLed in the middle of
// a run and started again, and the Redis primary is SIGKILLed so that the
// sentinels fail over. Webhooks answered 503 are redelivered, as a host's
// "Redeliver" does, and a share of accepted ones is redelivered too.
// Afterwards it waits for the processes to settle and checks what a user
// would see: every head whose webhook was accepted has exactly one final
// mlbot/train-eval status, every pull request exactly one mlbot comment,
// every /help comment exactly one reply, no run is left queued or
// running and no task failed for good. It reports the figures.
//
//	go test -run XXX -bench BenchmarkChaosSoak -benchtime 1x ./cmd/mlbot/
func BenchmarkChaosSoak(b *testing.B) {
	if testing.Short() {
		b.Skip("the chaos soak takes minutes")
	}
	duration := soakDuration(b, "SOAK_DURATION", soakDefaultDuration)
	rate := soakFloat(b, "SOAK_RATE", soakDefaultRate)
	faultRate := soakFloat(b, "SOAK_FAULT_RATE", soakDefaultFaultRate)
	b.ResetTimer()
	for range b.N {
		s := runChaosSoak(b, duration, rate, faultRate)
		b.ReportMetric(s.held, "accepted-events/s")
		b.ReportMetric(float64(s.lost), "lost")
		b.ReportMetric(float64(s.duplicates), "duplicates")
		b.ReportMetric(float64(s.faults), "faults")
	}
}

// soakSummary is what one soak measured.
type soakSummary struct {
	held              float64
	lost, duplicates  int
	faults            int
	accepted, refused int
}

// soakDelivery is one webhook: its body and headers, kept so that it can
// be delivered again byte for byte, and what each attempt was answered.
type soakDelivery struct {
	kind   string // push, opened, synchronize, help, chatter
	repo   *soakRepo
	pr     int
	sha    string
	header http.Header
	body   []byte

	mu       sync.Mutex
	codes    []int
	accepted bool
}

// soakPR is what the generator knows of one pull request.
type soakPR struct {
	opened   bool
	head     int // index of the current head in soakRepo.prs
	current  *soakDelivery
	helps    int // /help comments whose delivery was accepted
	pending  int // comments sent, not yet accepted
	chatters int
}

// soakGen is the load generator's state.
type soakGen struct {
	b      *testing.B
	host   *soakHost
	hooks  []string // the serve processes' webhook URLs
	client *http.Client

	mu         sync.Mutex
	deliveries []*soakDelivery
	pushed     map[*soakRepo]int
	prs        map[*soakRepo][]*soakPR
	wg         sync.WaitGroup

	dups map[int]int // how deliberate redeliveries were answered

	sent, accepted, refused, transport, redelivered, dupSent atomic.Int64
	stop                                                     atomic.Bool
}

func runChaosSoak(b *testing.B, duration time.Duration, rate, faultRate float64) soakSummary {
	dir := b.TempDir()

	start := time.Now()
	bin := cliBuild(b, dir)
	host := newSoakHost(b, dir, soakRepos, soakPushes, soakPRs, soakHeads, faultRate)
	sentinels := redistest.StartSentinels(b)
	redisURL := sentinels.URL(0, "")
	b.Logf("soak: %s at %.1f webhooks/s, %.0f %% of API calls faulted, %d repositories; setup (build, repositories, Redis with sentinels) %s",
		duration, rate, faultRate*100, soakRepos, time.Since(start).Round(time.Millisecond))

	env := map[string]string{
		"MLBOT_REDIS_URL":             redisURL,
		"MLBOT_GITHUB_API_URL":        host.srv.URL + "/",
		"MLBOT_GITHUB_TOKEN":          host.token,
		"MLBOT_GITHUB_WEBHOOK_SECRET": host.secret,
		"MLBOT_REPO_ALLOWLIST":        "github.com/acme/*",
		"MLBOT_DATA_DIR":              filepath.Join(dir, "data"),
		"MLBOT_TASK_KEY":              randomHex(32),
		"MLBOT_RETRY_BASE":            "500ms",
		"MLBOT_RECONCILE_INTERVAL":    "0", // a lost webhook must show, not be caught up
		"MLBOT_SHUTDOWN_TIMEOUT":      "5s",
		"MLBOT_LOG_LEVEL":             "info",
		// One install behind one address: every process links the same
		// run pages.
		"MLBOT_PUBLIC_URL": "https://mlbot.soak.example",
	}
	var procs []*cliProc
	for _, cmd := range []string{"serve", "serve", "worker", "worker"} {
		procs = append(procs, startMlbot(b, bin, cmd, env))
	}
	serves, workers := procs[:2], procs[2:]
	gen := &soakGen{b: b, host: host, client: &http.Client{Timeout: 30 * time.Second},
		pushed: map[*soakRepo]int{}, prs: map[*soakRepo][]*soakPR{}, dups: map[int]int{}}
	for _, p := range serves {
		gen.hooks = append(gen.hooks, p.base+"/webhooks/github")
	}
	for _, r := range host.repos {
		gen.prs[r] = make([]*soakPR, len(r.prs))
		for i := range r.prs {
			gen.prs[r][i] = &soakPR{}
		}
	}

	// Warm-up, not measured: every repository's main gets its baseline.
	warm := time.Now()
	var base []*soakDelivery
	for _, r := range host.repos {
		base = append(base, gen.push(r, zeroSHA, r.base))
	}
	gen.wg.Wait()
	for _, d := range base {
		if !soakWaitFinal(host, d.repo.name, d.sha, 2*time.Minute) {
			b.Fatalf("baseline of %s never finished: %+v", d.repo.name, host.sim.Statuses(d.repo.name, d.sha))
		}
	}
	b.Logf("warm-up: %d baselines in %s", len(base), time.Since(warm).Round(time.Millisecond))
	rdb, err := store.Dial(redisURL)
	if err != nil {
		b.Fatal(err)
	}
	defer rdb.Close()
	insp := asynq.NewInspectorFromRedisClient(rdb)

	// The load, with faults.
	host.chaos.setOn(true)
	loadStart := time.Now()
	var events sync.WaitGroup
	var killed, failedOver string
	var dead *cliProc // the killed worker, for its log
	var failoverWindow time.Duration
	events.Add(2)
	go func() { // a worker dies mid-run and comes back
		defer events.Done()
		time.Sleep(duration * 35 / 100)
		w := workers[0]
		deadline := time.Now().Add(10 * time.Second)
		busy := ""
		for busy == "" && time.Now().Before(deadline) {
			busy = soakBusyWith(insp, w.cmd.Process.Pid)
			time.Sleep(50 * time.Millisecond)
		}
		w.cmd.Process.Kill()
		<-w.done
		dead = w
		killed = fmt.Sprintf("SIGKILL of mlbot worker (pid %d) at %s while it ran %s", w.cmd.Process.Pid, time.Since(loadStart).Round(time.Second), busy)
		b.Log(killed)
		time.Sleep(2 * time.Second)
		workers[0] = startMlbot(b, bin, "worker", env)
	}()
	go func() { // the Redis primary dies; the sentinels promote its replica
		defer events.Done()
		time.Sleep(duration * 60 / 100)
		old := sentinels.Primary
		t0 := time.Now()
		sentinels.Kill(old)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		primary, err := sentinels.WaitPrimary(ctx, old, 0)
		if err != nil {
			b.Error(err)
			return
		}
		sentinels.Restart(old)
		if _, err := sentinels.WaitPrimary(ctx, old, 1); err != nil {
			b.Error(err)
			return
		}
		failoverWindow = time.Since(t0)
		failedOver = fmt.Sprintf("SIGKILL of the Redis primary %s at %s; %s promoted, the old one back as its replica %s later", old, t0.Sub(loadStart).Round(time.Second), primary, failoverWindow.Round(100*time.Millisecond))
		b.Log(failedOver)
	}()
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	for time.Since(loadStart) < duration {
		<-tick.C
		gen.step()
	}
	tick.Stop()
	loadTime := time.Since(loadStart)
	events.Wait()
	host.chaos.setOn(false)
	gen.stop.Store(true) // redeliveries of 503'd webhooks keep going until accepted
	gen.wg.Wait()
	refusedOnce := 0
	for _, d := range gen.deliveries {
		if slices.Contains(d.codes, http.StatusServiceUnavailable) {
			refusedOnce++
		}
	}
	b.Logf("load: %s; %d webhooks, %d of them answered 503 at least once and redelivered until accepted; %d requests sent, %d accepted (2xx), %d answered 503, %d transport errors; %d accepted ones redelivered on purpose, answered %v",
		loadTime.Round(time.Millisecond), len(gen.deliveries), refusedOnce, gen.sent.Load(), gen.accepted.Load(), gen.refused.Load(), gen.transport.Load(), gen.dupSent.Load(), gen.dupCodes())

	// Drain: everything accepted is processed, or the wait ends.
	drain := time.Now()
	settled := soakSettle(gen, insp, 5*time.Minute)
	b.Logf("drain: %s after the load (settled: %v)", time.Since(drain).Round(time.Millisecond), settled)

	sum := soakCheck(b, gen, rdb, insp)
	sum.held = float64(gen.accepted.Load()) / loadTime.Seconds()
	faults := host.chaos.injected()
	kinds := make([]string, 0, len(faults))
	for k, v := range faults {
		kinds = append(kinds, fmt.Sprintf("%s: %d", k, v))
		sum.faults += v
	}
	sort.Strings(kinds)
	sum.accepted, sum.refused = int(gen.accepted.Load()), int(gen.refused.Load())
	b.Logf("faults injected: %d host API faults (%s); %s; %s (webhooks 503 for %s)", sum.faults, strings.Join(kinds, ", "), killed, failedOver, failoverWindow.Round(100*time.Millisecond))
	b.Logf("RESULT: %.2f accepted webhooks/s held over %s; lost %d, duplicates %d", sum.held, loadTime.Round(time.Second), sum.lost, sum.duplicates)
	if logs := os.Getenv("SOAK_LOGS"); logs != "" {
		for i, p := range append(append([]*cliProc{}, serves...), append(workers, dead)...) {
			if p == nil {
				continue
			}
			os.WriteFile(filepath.Join(logs, fmt.Sprintf("mlbot-%d.log", i)), []byte(p.out.String()), 0o644)
		}
	}
	return sum
}

// step sends the next webhook: one of the kinds a repository's activity
// is made of, picked at random among those possible now, and now and
// then the redelivery of an accepted one.
func (g *soakGen) step() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.deliveries) > 0 && rand.IntN(20) == 0 {
		d := g.deliveries[rand.IntN(len(g.deliveries))]
		d.mu.Lock()
		ok := d.accepted
		d.mu.Unlock()
		if ok {
			g.dupSent.Add(1)
			g.wg.Add(1)
			go func() {
				defer g.wg.Done()
				c := g.deliver(d, true)
				g.mu.Lock()
				g.dups[c]++
				g.mu.Unlock()
			}()
			return
		}
	}
	for range 50 {
		r := g.host.repos[rand.IntN(len(g.host.repos))]
		n := rand.IntN(len(r.prs))
		pr := g.prs[r][n]
		switch k := rand.IntN(10); {
		case k < 2: // a push to main
			i := g.pushed[r]
			if i >= len(r.mainPushes) {
				continue
			}
			before := r.base
			if i > 0 {
				before = r.mainPushes[i-1]
			}
			g.pushed[r] = i + 1
			g.pushLocked(r, before, r.mainPushes[i])
			return
		case k < 5: // a pull request opened
			if pr.opened {
				continue
			}
			pr.opened = true
			pr.current = g.prLocked(r, n, "opened", 0)
			return
		case k < 7: // a new head pushed to an open pull request
			if !pr.opened || pr.head+1 >= len(r.prs[n]) || !g.seen(pr.current) {
				continue
			}
			pr.head++
			pr.current = g.prLocked(r, n, "updated", pr.head)
			return
		case k < 9: // a maintainer asks for /help
			if !pr.opened || !g.seen(pr.current) {
				continue
			}
			g.commentLocked(r, n, pr, "maria", "/help", "help")
			return
		default: // a comment that is no command
			if !pr.opened || !g.seen(pr.current) {
				continue
			}
			pr.chatters++
			g.commentLocked(r, n, pr, "alice", "Looks good to me; /usr/bin/python is fine here.", "chatter")
			return
		}
	}
}

// dupCodes returns how the deliberate redeliveries were answered.
func (g *soakGen) dupCodes() map[int]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return maps.Clone(g.dups)
}

// seen reports whether the host shows a status on d's head: its webhook
// was accepted and routed, so the pull request is known to mlbot.
func (g *soakGen) seen(d *soakDelivery) bool {
	d.mu.Lock()
	ok := d.accepted
	d.mu.Unlock()
	return ok && len(g.host.sim.Statuses(d.repo.name, d.sha)) > 0
}

func (g *soakGen) push(r *soakRepo, before, after string) *soakDelivery {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pushLocked(r, before, after)
}

func (g *soakGen) pushLocked(r *soakRepo, before, after string) *soakDelivery {
	req := g.host.gh.pushDelivery("http://soak/", pushEvent{Repo: r.name, CloneURL: g.host.cloneURL(r.name), Before: before, After: after,
		Branch: "main", Secret: g.host.secret})
	return g.send(req, &soakDelivery{kind: "push", repo: r, sha: after})
}

func (g *soakGen) prLocked(r *soakRepo, n int, action string, head int) *soakDelivery {
	e := prEvent{Action: action, Repo: r.name, CloneURL: g.host.cloneURL(r.name), Number: n + 1, HeadRef: "feature-" + strconv.Itoa(n+1),
		HeadSHA: r.prs[n][head], BaseSHA: r.base, Author: "alice", Association: "MEMBER", Secret: g.host.secret}
	kind := "opened"
	if head > 0 {
		e.OldRev, kind = r.prs[n][head-1], "synchronize"
	}
	return g.send(g.host.gh.prDelivery("http://soak/", e), &soakDelivery{kind: kind, repo: r, pr: n + 1, sha: e.HeadSHA})
}

func (g *soakGen) commentLocked(r *soakRepo, n int, pr *soakPR, author, body, kind string) {
	id := g.host.sim.AddComment(r.name, n+1, author, body).ID
	req := g.host.gh.comment("http://soak/", commentEvent{Repo: r.name, CloneURL: g.host.cloneURL(r.name), Number: n + 1, ID: id,
		Body: body, Author: author, Association: "MEMBER", Secret: g.host.secret})
	d := g.send(req, &soakDelivery{kind: kind, repo: r, pr: n + 1})
	if kind == "help" {
		pr.pending++
		g.wg.Add(1)
		go func() { // counted once accepted
			defer g.wg.Done()
			for !g.isAccepted(d) {
				if g.stopped(d) {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
			g.mu.Lock()
			pr.pending--
			pr.helps++
			g.mu.Unlock()
		}()
	}
}

func (g *soakGen) isAccepted(d *soakDelivery) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.accepted
}

// stopped reports whether d was given up: never accepted though the
// generator stopped a minute ago.
func (g *soakGen) stopped(d *soakDelivery) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return g.stop.Load() && len(d.codes) > 60
}

// send delivers req's webhook in the background, again every second
// while it is refused (503), as a host's redelivery would.
func (g *soakGen) send(req *http.Request, d *soakDelivery) *soakDelivery {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		g.b.Fatal(err)
	}
	d.header, d.body = req.Header.Clone(), body
	g.deliveries = append(g.deliveries, d)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		for attempt := 0; ; attempt++ {
			if attempt > 0 {
				g.redelivered.Add(1)
			}
			if c := g.deliver(d, false); c >= 200 && c < 300 {
				return
			}
			if g.stopped(d) {
				return
			}
			time.Sleep(time.Second)
		}
	}()
	return d
}

// deliver posts d to the next serve process and records the answer.
func (g *soakGen) deliver(d *soakDelivery, duplicate bool) int {
	i := int(g.sent.Add(1)) % len(g.hooks)
	req, err := http.NewRequest(http.MethodPost, g.hooks[i], bytes.NewReader(d.body))
	if err != nil {
		panic(err)
	}
	req.Header = d.header.Clone()
	code := 0
	if resp, err := g.client.Do(req); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		code = resp.StatusCode
	}
	switch {
	case duplicate:
	case code >= 200 && code < 300:
		g.accepted.Add(1)
	case code == http.StatusServiceUnavailable:
		g.refused.Add(1)
	case code == 0:
		g.transport.Add(1)
	default:
		g.b.Errorf("%s webhook of %s answered %d", d.kind, d.repo.name, code)
	}
	d.mu.Lock()
	d.codes = append(d.codes, code)
	if code >= 200 && code < 300 {
		d.accepted = true
	}
	d.mu.Unlock()
	return code
}

// soakBusyWith names a task the asynq server of process pid is running,
// or "" when it runs none.
func soakBusyWith(insp *asynq.Inspector, pid int) string {
	servers, err := insp.Servers()
	if err != nil {
		return ""
	}
	for _, s := range servers {
		if s.PID != pid {
			continue
		}
		for _, w := range s.ActiveWorkers {
			if w.TaskType == jobs.TypePipeline {
				return w.TaskType + " " + w.TaskID
			}
		}
	}
	return ""
}

// soakWaitFinal waits until sha's mlbot/train-eval status on the host is
// final.
func soakWaitFinal(h *soakHost, repo, sha string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if soakFinals(h, repo, sha) > 0 {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// soakFinals counts the final (neither pending nor running)
// mlbot/train-eval statuses on sha.
func soakFinals(h *soakHost, repo, sha string) int {
	n := 0
	for _, st := range h.sim.Statuses(repo, sha) {
		if st.Context == "mlbot/train-eval" && st.State != "pending" && st.State != "running" {
			n++
		}
	}
	return n
}

// soakStatusHistory reads sha's mlbot/train-eval statuses: how many are
// final, how many of those differ (state, description or link), and how
// often a "running" status was followed by a "queued" one.
func soakStatusHistory(h *soakHost, repo, sha string) (finals, distinct, setBack int) {
	seen := map[string]bool{}
	running := false
	for _, st := range h.sim.Statuses(repo, sha) {
		if st.Context != "mlbot/train-eval" {
			continue
		}
		switch {
		case strings.HasPrefix(st.Description, "running"):
			running = true
		case strings.HasPrefix(st.Description, "queued") && running:
			setBack++
			running = false
		case st.State != "pending" && st.State != "running":
			finals++
			k := st.State + "|" + st.Description + "|" + st.TargetURL
			if !seen[k] {
				seen[k] = true
				distinct++
			}
		}
	}
	return finals, distinct, setBack
}

// soakSettle waits until every head whose webhook was accepted shows a
// final status and no task is queued, running or waiting for a retry.
func soakSettle(g *soakGen, insp *asynq.Inspector, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		busy := 0
		queues, err := insp.Queues()
		if err != nil {
			busy++
		}
		for _, q := range queues {
			if info, err := insp.GetQueueInfo(q); err == nil {
				busy += info.Pending + info.Active + info.Scheduled + info.Retry
			} else {
				busy++
			}
		}
		if busy == 0 {
			for _, dl := range g.deliveries {
				if dl.sha != "" && g.isAccepted(dl) && soakFinals(g.host, dl.repo.name, dl.sha) == 0 {
					busy++
				}
			}
		}
		if busy == 0 {
			return true
		}
		time.Sleep(500 * time.Millisecond)
	}
	return false
}

// soakCheck checks what a user would see and counts what was lost and
// what was done twice.
func soakCheck(b *testing.B, g *soakGen, rdb *store.Client, insp *asynq.Inspector) soakSummary {
	var s soakSummary
	h := g.host
	heads, reposts, setBacks := 0, 0, 0
	for _, d := range g.deliveries {
		if d.sha == "" {
			continue
		}
		if !g.isAccepted(d) {
			b.Errorf("%s webhook of %s@%s was never accepted: %v", d.kind, d.repo.name, d.sha[:7], d.codes)
			continue
		}
		heads++
		finals, distinct, setBack := soakStatusHistory(h, d.repo.name, d.sha)
		reposts += finals - distinct
		setBacks += setBack
		last := ""
		for _, st := range h.sim.Statuses(d.repo.name, d.sha) {
			if st.Context == "mlbot/train-eval" {
				last = st.State
			}
		}
		switch {
		case finals == 0 || last == "pending" || last == "running":
			s.lost++
			b.Errorf("LOST: %s of %s@%s (PR %d) does not end on a final status: %+v", d.kind, d.repo.name, d.sha[:7], d.pr, h.sim.Statuses(d.repo.name, d.sha))
		case distinct > 1:
			s.duplicates++
			b.Errorf("DUPLICATE: %s of %s@%s (PR %d) has %d different final statuses: %+v", d.kind, d.repo.name, d.sha[:7], d.pr, distinct, h.sim.Statuses(d.repo.name, d.sha))
		}
	}

	prs, helps := 0, 0
	for _, r := range h.repos {
		for i, pr := range g.prs[r] {
			if !pr.opened {
				continue
			}
			prs++
			helps += pr.helps
			var ours, replies, other int
			for _, c := range h.sim.Comments(r.name, i+1) {
				switch {
				case strings.HasPrefix(c.Body, report.Marker):
					ours++
				case strings.HasPrefix(c.Body, jobs.ReplyMarker):
					replies++
				case c.User != "maria" && c.User != "alice":
					other++
				}
			}
			switch {
			case ours == 0:
				s.lost++
				b.Errorf("LOST: %s#%d has no mlbot comment", r.name, i+1)
			case ours > 1:
				s.duplicates++
				b.Errorf("DUPLICATE: %s#%d has %d mlbot comments", r.name, i+1, ours)
			}
			switch {
			case replies < pr.helps:
				s.lost += pr.helps - replies
				b.Errorf("LOST: %s#%d has %d replies to %d accepted /help comments", r.name, i+1, replies, pr.helps)
			case replies > pr.helps+pr.pending:
				s.duplicates += replies - pr.helps - pr.pending
				b.Errorf("DUPLICATE: %s#%d has %d replies to %d /help comments", r.name, i+1, replies, pr.helps)
			}
			if other > 0 {
				b.Errorf("%s#%d has %d comments by no one expected", r.name, i+1, other)
			}
		}
	}
	ctx := context.Background()
	st := store.New(rdb, store.DefaultPrefix)
	repos, err := st.RunRepos(ctx)
	if err != nil {
		b.Fatal(err)
	}
	runs, stuck := 0, 0
	for _, repo := range repos {
		all, err := st.RecentRuns(ctx, repo, 0)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range all {
			runs++
			if r.State != store.RunFinished {
				stuck++
				b.Errorf("STUCK: run %s of %s@%s is %s", r.ID, repo, r.SHA[:7], r.State)
			}
		}
	}
	queues, _ := insp.Queues()
	archived := 0
	for _, q := range queues {
		tasks, _ := insp.ListArchivedTasks(q)
		for _, t := range tasks {
			archived++
			b.Errorf("ARCHIVED: %s %s: %s", q, t.Type, t.LastErr)
		}
	}
	b.Logf("checked: %d heads (one final status each), %d pull requests (one mlbot comment each), %d /help comments (one reply each); %d runs, %d not finished; %d tasks failed for good; %d identical final statuses set again (a status write whose answer was lost, retried); %d times a running head was set back to queued",
		heads, prs, helps, runs, stuck, archived, reposts, setBacks)
	s.lost += archived
	return s
}

func soakDuration(b *testing.B, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		b.Fatalf("%s=%q: want a positive duration", name, v)
	}
	return d
}

func soakFloat(b *testing.B, name string, def float64) float64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 {
		b.Fatalf("%s=%q: want a non-negative number", name, v)
	}
	return f
}
