package jobs

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/bot/github"
	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/internal/promtest"
	"github.com/mlbot/mlbot/runners"
)

// sample is one series of a gathered family: a gauge's or counter's value,
// or a histogram's count and sum.
type sample struct {
	value, count, sum float64
}

// gather returns the series of family name in g whose labels include
// want; false when there is none.
func gather(t *testing.T, g prometheus.Gatherer, name string, want map[string]string) (sample, bool) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue metrics
				}
			}
			switch {
			case m.GetGauge() != nil:
				return sample{value: m.GetGauge().GetValue()}, true
			case m.GetCounter() != nil:
				return sample{value: m.GetCounter().GetValue()}, true
			case m.GetHistogram() != nil:
				h := m.GetHistogram()
				return sample{count: float64(h.GetSampleCount()), sum: h.GetSampleSum()}, true
			}
		}
	}
	return sample{}, false
}

// defaultSample is gather on the default registry, zero when absent.
func defaultSample(t *testing.T, name string, labels map[string]string) sample {
	t.Helper()
	s, _ := gather(t, prometheus.DefaultGatherer, name, labels)
	return s
}

// gitRepo makes a repository of one commit on main holding files and
// returns its directory and the commit.
func gitRepo(t *testing.T, files map[string]string) (string, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	git("init", "--quiet", "--initial-branch=main")
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git("add", "-A")
	git("commit", "--quiet", "-m", "first")
	git("config", "uploadpack.allowFilter", "true")
	return dir, git("rev-parse", "HEAD")
}

// TestPipelineStageDurations runs a pipeline of a real git repository
// (clone, then train and evaluate on a runner that reports 1.5 s per step)
// and its report, and reads the stage histogram back from the registry
// /metrics serves.
func TestPipelineStageDurations(t *testing.T) {
	ctx := context.Background()
	const stepTook = 1500 * time.Millisecond
	dir, sha := gitRepo(t, map[string]string{
		".mlbot.yml":   "version: 1\npipeline:\n  train: python train.py\n  evaluate: python eval.py\n  metrics: [metrics.json]\nmetrics:\n  accuracy: {goal: maximize}\n",
		"metrics.json": `{"accuracy": 0.93}`,
	})
	f := &fakeForge{}
	w := newRouteWorker(t, f, nil)
	w.exec.Runners = runners.Set{runners.Local: &fakeRunner{result: runners.Result{Duration: stepTook}}}

	stages := []string{stageClone, stageTrain, stageEvaluate, stageReport}
	before := map[string]sample{}
	for _, s := range stages {
		before[s] = defaultSample(t, "mlbot_pipeline_stage_duration_seconds", map[string]string{"stage": s})
	}
	repo := bot.Repo{Forge: "github", FullName: "acme/model", CloneURL: dir, DefaultBranch: "main"}
	p := PipelinePayload{Kind: KindBaseline, Repo: repo, SHA: sha, Branch: "main", Trusted: true}
	var err error
	if p.RunID, err = w.runID(ctx, repo, KindBaseline, sha, 0, "main"); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(p)
	if err := w.handlePipeline(ctx, asynq.NewTask(TypePipeline, b)); err != nil {
		t.Fatalf("pipeline: %v", err)
	}
	run, err := w.store.GetRun(ctx, p.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if run.Outcome != "passed" {
		t.Fatalf("run outcome %q (%s), want passed", run.Outcome, run.Detail)
	}
	rb, _ := json.Marshal(ReportPayload{RunID: p.RunID})
	if err := w.handleReport(ctx, asynq.NewTask(TypeReport, rb)); err != nil {
		t.Fatalf("report: %v", err)
	}

	for _, s := range stages {
		got := defaultSample(t, "mlbot_pipeline_stage_duration_seconds", map[string]string{"stage": s})
		n, sum := got.count-before[s].count, got.sum-before[s].sum
		if n != 1 {
			t.Errorf("stage %s observed %v times, want once", s, n)
			continue
		}
		switch s {
		case stageTrain, stageEvaluate:
			// The runner's own account of the step, not mlbot's overhead.
			if math.Abs(sum-stepTook.Seconds()) > 1e-9 {
				t.Errorf("stage %s took %vs, want the runner's %vs", s, sum, stepTook.Seconds())
			}
		default:
			if sum <= 0 || sum > 60 {
				t.Errorf("stage %s took %vs, want a real, short duration", s, sum)
			}
		}
	}
}

// TestObserveStep keeps steps that did not run, and steps other than the
// pipeline's (a deploy), out of the stage histogram.
func TestObserveStep(t *testing.T) {
	tests := []struct {
		res  runners.StepResult
		want bool
	}{
		{runners.StepResult{Name: "train", Duration: time.Second}, true},
		{runners.StepResult{Name: "evaluate", Duration: time.Second, ExitCode: 1}, true},
		{runners.StepResult{Name: "evaluate", NotStarted: true}, false},
		{runners.StepResult{Name: "deploy", Duration: time.Second}, false},
	}
	for _, tc := range tests {
		before := defaultSample(t, "mlbot_pipeline_stage_duration_seconds", map[string]string{"stage": tc.res.Name}).count
		observeStep(tc.res)
		after := defaultSample(t, "mlbot_pipeline_stage_duration_seconds", map[string]string{"stage": tc.res.Name}).count
		if got := after > before; got != tc.want {
			t.Errorf("%+v observed = %v, want %v", tc.res, got, tc.want)
		}
	}
}

// blockingForge is a fakeForge whose CreateStatus waits until release is
// closed, so that a test can look at the workers while one is busy.
type blockingForge struct {
	*fakeForge
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (f *blockingForge) CreateStatus(ctx context.Context, repo bot.Repo, sha string, st bot.Status) error {
	f.once.Do(func() { close(f.entered) })
	select {
	case <-f.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return f.fakeForge.CreateStatus(ctx, repo, sha, st)
}

// TestWebhookToPendingAndWorkersBusy posts a signed pull_request delivery
// to the real webhook endpoint of a started Worker on Redis and holds the
// host's answer to the pending status: meanwhile one event worker is busy;
// once answered, the webhook-to-pending latency is observed and includes
// the wait.
func TestWebhookToPendingAndWorkersBusy(t *testing.T) {
	rdb := testRedis(t)
	// Pipelines stay queued: this test is about the way to pending.
	if err := asynq.NewInspectorFromRedisClient(rdb).PauseQueue("default"); err != nil {
		t.Fatal(err)
	}
	f := &blockingForge{fakeForge: &fakeForge{}, entered: make(chan struct{}), release: make(chan struct{})}
	dataDir := t.TempDir()
	st, reg := testState(rdb, dataDir)
	w, err := New(Options{
		Redis: rdb, Store: st, Registry: reg, Forges: []ForgeSet{{Webhook: &github.Webhook{Secret: []byte("s3cret")}, Forge: f}},
		Runners: runners.Set{runners.Local: &fakeRunner{}}, DataDir: dataDir, PublicURL: routePublicURL,
		RepoAllowed: allowFixtureRepos, Concurrency: 3, TaskCheckInterval: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	busy := func(server string) float64 {
		return defaultSample(t, "mlbot_workers_busy", map[string]string{"server": server}).value
	}
	total := func(server string) float64 {
		return defaultSample(t, "mlbot_workers", map[string]string{"server": server}).value
	}
	eventsBefore, pipelinesBefore := total(serverEvents), total(serverPipelines)
	busyBefore := busy(serverEvents)
	pendingBefore := defaultSample(t, "mlbot_webhook_to_pending_seconds", nil)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	shut := sync.OnceFunc(w.Shutdown)
	defer shut()
	if got := total(serverEvents) - eventsBefore; got != DefaultEventConcurrency {
		t.Errorf("mlbot_workers{server=events} grew by %v, want %d", got, DefaultEventConcurrency)
	}
	if got := total(serverPipelines) - pipelinesBefore; got != 3 {
		t.Errorf("mlbot_workers{server=pipelines} grew by %v, want 3", got)
	}

	srv := httptest.NewServer(bot.NewWebhookHandler(bot.HandlerOptions{
		Webhook: &github.Webhook{Secret: []byte("s3cret")}, Enqueuer: NewIngress(asynq.NewClientFromRedisClient(rdb), w.Signer()),
	}))
	defer srv.Close()
	resp, err := http.DefaultClient.Do(github.NewDeliveryRequest(srv.URL, "pull_request", githubFixture(t, "pull_request.opened.octokit.json"), []byte("s3cret")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook answered %d, want 202", resp.StatusCode)
	}
	select {
	case <-f.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no pending status was asked for")
	}
	if got := busy(serverEvents) - busyBefore; got != 1 {
		t.Errorf("while routing: mlbot_workers_busy{server=events} = %v more than before, want 1", got)
	}
	const held = 300 * time.Millisecond
	time.Sleep(held)
	close(f.release)
	deadline := time.Now().Add(10 * time.Second)
	for busy(serverEvents) != busyBefore && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := busy(serverEvents) - busyBefore; got != 0 {
		t.Errorf("after routing: mlbot_workers_busy{server=events} = %v more than before, want 0", got)
	}
	if st := f.recordedStatuses(); len(st) != 1 || st[0].Status.State != bot.StatePending {
		t.Fatalf("statuses %+v, want one pending", st)
	}
	pending := defaultSample(t, "mlbot_webhook_to_pending_seconds", nil)
	if n := pending.count - pendingBefore.count; n != 1 {
		t.Fatalf("webhook-to-pending observed %v times, want once", n)
	}
	if d := pending.sum - pendingBefore.sum; d < held.Seconds() || d > 10 {
		t.Errorf("webhook-to-pending = %vs, want at least the %v the host was held", d, held)
	}
	shut()
	if got := total(serverEvents) - eventsBefore; got != 0 {
		t.Errorf("after Shutdown mlbot_workers{server=events} is %v above where it started", got)
	}
}

// TestVerificationsCounted verifies deploys against a real Prometheus
// scraping a gauge the test sets, and counts each result by environment.
func TestVerificationsCounted(t *testing.T) {
	ok := promtest.NewExporter(t, "model_errors_ok")
	bad := promtest.NewExporter(t, "model_errors_bad")
	bad.SetValue(5)
	prom := promtest.Start(t, ok.Addr(), bad.Addr())
	prom.WaitForSeries(t, "model_errors_ok", 20*time.Second)
	prom.WaitForSeries(t, "model_errors_bad", 20*time.Second)
	limit := 1.0
	tests := []struct {
		env, query, promURL, result string
	}{
		{"verify-passed", "model_errors_ok", prom.URL(), "passed"},
		{"verify-breached", "model_errors_bad", prom.URL(), "breached"},
		{"verify-error", "sum(rate(model_errors_ok[5m]", prom.URL(), "error"},
		{"verify-skipped", "model_errors_ok", "", "skipped"},
	}
	for _, tc := range tests {
		t.Run(tc.result, func(t *testing.T) {
			w := &Worker{opts: Options{PrometheusURL: tc.promURL}}
			env := configs.Environment{Name: tc.env, Verify: &configs.Verify{Query: tc.query, Max: &limit, For: time.Second, Every: 250 * time.Millisecond}}
			w.watchMetric(context.Background(), env)
			for _, r := range []string{"passed", "breached", "error", "skipped"} {
				got := defaultSample(t, "mlbot_deploy_verifications_total", map[string]string{"env": tc.env, "result": r}).value
				want := 0.0
				if r == tc.result {
					want = 1
				}
				if got != want {
					t.Errorf("mlbot_deploy_verifications_total{env=%q,result=%q} = %v, want %v", tc.env, r, got, want)
				}
			}
		})
	}
}
