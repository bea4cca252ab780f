package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/mlbot/mlbot/bot/forgesim"
	"github.com/mlbot/mlbot/bot/github"
	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/internal/redistest"
	"github.com/mlbot/mlbot/internal/testreq"
	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/jobs/store"
)

// e2eRedisDB is this package's end-to-end tests' Redis database.
const e2eRedisDB = 2

// e2e is one end-to-end fixture: a simulated host with a repository, and
// mlbot serve on loopback pointed at it, everything over real HTTP, real
// git and a real Redis.
type e2e struct {
	t       testing.TB
	forge   string
	sb      *fakeHost
	app     *app
	url     string
	hook    string
	rdb     redis.UniversalClient
	dataDir string // MLBOT_DATA_DIR, the key of this app's training counter
	mainSHA string
}

// model is a tiny pipeline in shell: train.sh writes params into the
// model (the sandbox lets it write nothing outside its workspace, so the
// test's runner counts the trainings); eval.sh turns the model into the
// accuracy metric.
func (e *e2e) model(accuracy string) map[string]string {
	return map[string]string{
		".mlbot.yml": `version: 1
pipeline:
  train: sh train.sh
  evaluate: sh eval.sh
  metrics: [metrics.json]
  timeout: 1m
metrics:
  accuracy: {goal: maximize, min: 0.8, max_drop: 0.05}
  loss: minimize
`,
		"train.sh": "echo \"training $(cat params)\"\ncp params model.txt\n",
		"eval.sh":  "printf '{\"accuracy\": %s, \"loss\": 0.5, \"extra\": {\"auc\": 0.7}}' \"$(cat model.txt)\" > metrics.json\n",
		"params":   accuracy + "\n",
	}
}

func newE2E(t testing.TB, forge string, tweak func(*configs.Server)) *e2e {
	t.Helper()
	dir := t.TempDir()
	sb, err := newFakeHost(forge, dir, "acme/model")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sb.Close)
	cfg := defaultServerConfig()
	cfg.RedisURL = redistest.URL(t, e2eRedisDB)
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.RetryBase = 100 * time.Millisecond
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.APIToken = e2eAPIToken
	sb.configure(cfg)
	if tweak != nil {
		tweak(cfg)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	a, url, err := startLocal(cfg, log)
	if errors.Is(err, errNoSandbox) {
		testreq.Missing(t, "sandbox", "%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Shutdown)
	// Where the app's Redis is, with its password (the in-process one has one).
	var rdb redis.UniversalClient
	if cfg.RedisURL != "" {
		ep, err := store.ParseURL(cfg.RedisURL)
		if err != nil {
			t.Fatal(err)
		}
		rdb = ep.Client()
	} else {
		ao := a.rdb.(*redis.Client).Options()
		rdb = redis.NewClient(&redis.Options{Addr: ao.Addr, Password: ao.Password, DB: ao.DB})
	}
	t.Cleanup(func() { rdb.Close() })
	sb.grant("alice", "write")
	sb.grant("maria", "maintain")
	sb.grant("rita", "read")
	return &e2e{t: t, forge: forge, sb: sb, app: a, url: url, hook: url + "/webhooks/" + forge, rdb: rdb,
		dataDir: cfg.DataDir}
}

// testWriter sends mlbot's log lines to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// commit writes files into the working copy on branch (created from the
// current commit when new), commits and pushes.
func (e *e2e) commit(branch string, files map[string]string, msg string) string {
	e.t.Helper()
	if _, err := gitOut(e.sb.work, "rev-parse", "--verify", "--quiet", "refs/heads/"+branch); err != nil {
		if err := e.sb.checkout(branch, true); err != nil {
			e.t.Fatal(err)
		}
	} else if err := e.sb.checkout(branch, false); err != nil {
		e.t.Fatal(err)
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(e.sb.work, name), []byte(body), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	sha, err := e.sb.commit(msg)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.sb.pushBranch(branch); err != nil {
		e.t.Fatal(err)
	}
	return sha
}

// baseline commits the model with accuracy on main and waits for its run.
func (e *e2e) baseline(accuracy string) string {
	e.t.Helper()
	e.mainSHA = e.commit("main", e.model(accuracy), "model")
	e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
	if st := e.final(e.mainSHA); st.State != "success" {
		e.t.Fatalf("baseline status = %+v", st)
	}
	return e.mainSHA
}

// openPR delivers a pull request event for head on branch "feature".
func (e *e2e) prEvent(action, head, oldrev string) *http.Request {
	return e.sb.pr(e.hook, prEvent{Action: action, HeadRef: "feature", HeadSHA: head, BaseSHA: e.mainSHA, OldRev: oldrev, Author: "alice", Association: "MEMBER"})
}

// send delivers req and checks the answer's status code.
func (e *e2e) send(req *http.Request, want int) string {
	e.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		e.t.Fatalf("webhook answered %d (%s), want %d", resp.StatusCode, b, want)
	}
	return string(b)
}

// final waits for sha's mlbot/train-eval status to leave pending.
func (e *e2e) final(sha string) hostStatus {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if ss := e.sb.statuses(sha); len(ss) > 0 {
			if last := ss[len(ss)-1]; last.State != "pending" && last.State != "running" {
				return last
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.t.Fatalf("no final status on %s; statuses %+v", sha[:7], e.sb.statuses(sha))
	return hostStatus{}
}

// trainings counts the train steps this test's app started.
func (e *e2e) trainings() int { return trainingsIn(e.dataDir) }

// settleLimit bounds settle's wait: long enough for a whole sweep's
// trials under -race on a loaded 2-core machine, where one trivial
// pipeline can take 15 s.
const settleLimit = 2 * time.Minute

// settle waits until no mlbot task is queued, running or waiting to be
// retried, so that "nothing more happens" can be asserted.
func (e *e2e) settle() {
	e.t.Helper()
	in := asynq.NewInspectorFromRedisClient(e.rdb)
	deadline := time.Now().Add(settleLimit)
	for time.Now().Before(deadline) {
		busy := 0
		for _, q := range []string{"events", "report", "default", "deploy"} {
			if info, err := in.GetQueueInfo(q); err == nil {
				busy += info.Pending + info.Active + info.Scheduled + info.Retry
			}
		}
		// Runs not yet dispatched wait in the fair line.
		waiting, err := e.app.store.FairWaiting(context.Background(), "default")
		if err != nil {
			e.t.Fatal(err)
		}
		if busy == 0 && waiting == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("tasks still pending after %s", settleLimit)
}

// archived lists the tasks that failed for good, for every queue.
func (e *e2e) archived() []string {
	in := asynq.NewInspectorFromRedisClient(e.rdb)
	var out []string
	for _, q := range []string{"events", "report", "default", "deploy"} {
		tasks, _ := in.ListArchivedTasks(q)
		for _, t := range tasks {
			out = append(out, q+": "+t.Type+": "+t.LastErr)
		}
	}
	return out
}

// mlbotComments lists mlbot's train-eval comments on pull request number.
func (e *e2e) mlbotComments(number int) []hostComment { return e.commentsMarked(number, report.Marker) }

// commentsMarked lists the comments on pull request number that start
// with marker.
func (e *e2e) commentsMarked(number int, marker string) []hostComment {
	var out []hostComment
	for _, c := range e.sb.comments(number) {
		if strings.HasPrefix(c.Body, marker) {
			out = append(out, c)
		}
	}
	return out
}

// forges lists the hosts every end-to-end scenario runs against.
var forges = []string{"github", "gitlab"}

// TestEndToEnd runs each scenario of a user's life with mlbot against
// every forge: webhooks in over HTTP, host API calls out.
func TestEndToEnd(t *testing.T) {
	scenarios := []struct {
		name string
		run  func(t *testing.T, e *e2e)
	}{
		{"one comment edited across pushes", func(t *testing.T, e *e2e) {
			e.baseline("0.90")
			h1 := e.commit("feature", map[string]string{"params": "0.92\n"}, "better")
			e.send(e.prEvent("opened", h1, ""), http.StatusAccepted)
			st := e.final(h1)
			if st.State != "success" || !strings.HasPrefix(st.TargetURL, e.url+"/runs/") {
				t.Fatalf("first push: status %+v", st)
			}
			e.settle() // the comment follows the status
			states := e.sb.statuses(h1)
			if states[0].State != "pending" && states[0].State != "running" && e.forge == "github" {
				t.Errorf("first status of %s = %s, want pending", h1[:7], states[0].State)
			}
			h2 := e.commit("feature", map[string]string{"params": "0.93\n"}, "better still")
			e.send(e.prEvent("updated", h2, h1), http.StatusAccepted)
			if st := e.final(h2); st.State != "success" {
				t.Fatalf("second push: status %+v", st)
			}
			e.settle()
			cs := e.mlbotComments(1)
			if len(cs) != 1 {
				t.Fatalf("%d mlbot comments, want 1: %+v", len(cs), cs)
			}
			body := cs[0].Body
			for _, want := range []string{"| `accuracy` | 0.9 | 0.93 |", e.mainSHA[:7], h2[:7], "Verdict: passed", "`extra.auc`"} {
				if !strings.Contains(body, want) {
					t.Errorf("comment lacks %q:\n%s", want, body)
				}
			}
			if cs[0].Edits < 1 {
				t.Errorf("comment was never edited")
			}
			// The run page linked from the status shows the run.
			resp, err := http.Get(e.final(h2).TargetURL)
			if err != nil {
				t.Fatal(err)
			}
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(page), h2) || !strings.Contains(string(page), "training 0.93") {
				t.Errorf("run page %d:\n%s", resp.StatusCode, page)
			}
		}},
		{"gate failure fails the status", func(t *testing.T, e *e2e) {
			e.baseline("0.90")
			h := e.commit("feature", map[string]string{"params": "0.70\n"}, "worse")
			e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
			if st := e.final(h); st.State != "failure" || !strings.Contains(st.Description, "accuracy") {
				t.Fatalf("status %+v, want failure naming accuracy", st)
			}
			e.settle()
			cs := e.mlbotComments(1)
			if len(cs) != 1 || !strings.Contains(cs[0].Body, "Verdict: failed") || !strings.Contains(cs[0].Body, "0.7 < min 0.8") {
				t.Fatalf("comments: %+v", cs)
			}
		}},
		{"no baseline: the merge base is run too", func(t *testing.T, e *e2e) {
			e.mainSHA = e.commit("main", e.model("0.85"), "model") // pushed, but no webhook
			h := e.commit("feature", map[string]string{"params": "0.86\n"}, "better")
			e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
			if st := e.final(h); st.State != "success" {
				t.Fatalf("status %+v", st)
			}
			e.settle()
			if n := e.trainings(); n != 2 {
				t.Errorf("%d trainings, want 2 (head and merge base)", n)
			}
			if cs := e.mlbotComments(1); len(cs) != 1 || !strings.Contains(cs[0].Body, "| `accuracy` | 0.85 | 0.86 |") {
				t.Fatalf("comments: %+v", cs)
			}
		}},
		{"invalid .mlbot.yml quotes the error with line and column", func(t *testing.T, e *e2e) {
			e.baseline("0.90")
			h := e.commit("feature", map[string]string{".mlbot.yml": "version: 1\npipeline:\n  trian: sh train.sh\n  metrics: [metrics.json]\n"}, "typo")
			e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
			if st := e.final(h); st.State != "failure" || !strings.Contains(st.Description, ".mlbot.yml") {
				t.Fatalf("status %+v", st)
			}
			e.settle()
			cs := e.mlbotComments(1)
			if len(cs) != 1 || !strings.Contains(cs[0].Body, ".mlbot.yml:3:3") || !strings.Contains(cs[0].Body, `"trian"`) {
				t.Fatalf("comment does not quote the error with line:col: %+v", cs)
			}
		}},
		{"duplicate delivery makes one run", func(t *testing.T, e *e2e) {
			e.baseline("0.90")
			before := e.trainings()
			h := e.commit("feature", map[string]string{"params": "0.91\n"}, "change")
			req := e.prEvent("opened", h, "")
			body, _ := io.ReadAll(req.Body)
			again := req.Clone(context.Background())
			req.Body, again.Body = io.NopCloser(bytes.NewReader(body)), io.NopCloser(bytes.NewReader(body))
			e.send(req, http.StatusAccepted)
			if got := e.send(again, http.StatusOK); !strings.Contains(got, "duplicate") {
				t.Errorf("second answer %q", got)
			}
			e.final(h)
			e.settle()
			if n := e.trainings() - before; n != 1 {
				t.Errorf("%d trainings for one delivery sent twice, want 1", n)
			}
			queued := 0
			for _, s := range e.sb.statuses(h) {
				if strings.HasPrefix(s.Description, "queued") {
					queued++
				}
			}
			if queued > 1 {
				t.Errorf("%d queued statuses, want 1", queued)
			}
		}},
		{"host 502 then success: one comment, one training", func(t *testing.T, e *e2e) {
			e.baseline("0.90")
			before := e.trainings()
			e.sb.host.faults().Add(forgesim.Fault{Method: http.MethodPost, PathSubstr: commentPath(e.forge), Status: http.StatusBadGateway, Times: 2})
			h := e.commit("feature", map[string]string{"params": "0.91\n"}, "change")
			e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
			if st := e.final(h); st.State != "success" {
				t.Fatalf("status %+v", st)
			}
			e.settle()
			if n := len(e.mlbotComments(1)); n != 1 {
				t.Errorf("%d comments, want 1", n)
			}
			if n := e.trainings() - before; n != 1 {
				t.Errorf("%d trainings, want 1: a host error must retry the post, not the training", n)
			}
			if n := len(e.sb.host.recorder().Find(http.MethodPost, commentPath(e.forge))); n != 3 {
				t.Errorf("%d comment posts, want 3 (two 502s, then success)", n)
			}
		}},
		{"rate limited comment honours Retry-After", func(t *testing.T, e *e2e) {
			e.baseline("0.90")
			h := e.commit("feature", map[string]string{"params": "0.91\n"}, "change")
			e.sb.host.faults().Add(forgesim.Fault{Method: http.MethodPost, PathSubstr: commentPath(e.forge), Status: http.StatusTooManyRequests,
				Header: map[string]string{"Retry-After": "1"}})
			e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
			if st := e.final(h); st.State != "success" {
				t.Fatalf("status %+v", st)
			}
			e.settle()
			if n := len(e.mlbotComments(1)); n != 1 {
				t.Errorf("%d comments, want 1", n)
			}
			calls := e.sb.host.recorder().Find(http.MethodPost, commentPath(e.forge))
			if len(calls) < 2 || calls[0].Status != http.StatusTooManyRequests {
				t.Fatalf("status calls: %d", len(calls))
			}
			if gap := calls[1].At.Sub(calls[0].At); gap < time.Second {
				t.Errorf("retried after %s, before the host's Retry-After of 1s", gap)
			}
		}},
		{"training timeout kills the process group", func(t *testing.T, e *e2e) {
			e.baseline("0.90")
			marker := uniqueMarker()
			files := e.model("0.91")
			files[".mlbot.yml"] = strings.Replace(files[".mlbot.yml"], "timeout: 1m", "timeout: 2s", 1)
			files["train.sh"] = "sleep 60." + marker + " &\nwait\n"
			h := e.commit("feature", files, "slow")
			e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
			pid := waitProc(t, marker)
			if st := e.final(h); st.State != "failure" {
				t.Fatalf("status %+v", st)
			}
			e.settle()
			cs := e.mlbotComments(1)
			if len(cs) != 1 || !strings.Contains(cs[0].Body, "did not finish within") {
				t.Fatalf("comments: %+v", cs)
			}
			assertGone(t, pid)
		}},
		{"a new push cancels the running training of the older commit", func(t *testing.T, e *e2e) {
			e.baseline("0.90")
			marker := uniqueMarker()
			slow := e.model("0.91")
			slow["train.sh"] = "sleep 60." + marker + " &\nwait\n"
			h1 := e.commit("feature", slow, "slow")
			e.send(e.prEvent("opened", h1, ""), http.StatusAccepted)
			pid := waitProc(t, marker)
			h2 := e.commit("feature", e.model("0.92"), "fast again")
			e.send(e.prEvent("updated", h2, h1), http.StatusAccepted)
			if st := e.final(h1); (st.State != "error" && st.State != "canceled") || !strings.Contains(st.Description, "superseded") {
				t.Errorf("older commit's status %+v, want cancelled as superseded", st)
			}
			if st := e.final(h2); st.State != "success" {
				t.Errorf("newer commit's status %+v", st)
			}
			e.settle()
			assertGone(t, pid)
			cs := e.mlbotComments(1)
			if len(cs) != 1 || !strings.Contains(cs[0].Body, h2[:7]) {
				t.Fatalf("comments %+v, want one showing %s", cs, h2[:7])
			}
		}},
		{"closing the pull request cancels its run", func(t *testing.T, e *e2e) {
			e.baseline("0.90")
			marker := uniqueMarker()
			slow := e.model("0.91")
			slow["train.sh"] = "sleep 60." + marker + " &\nwait\n"
			h := e.commit("feature", slow, "slow")
			e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
			pid := waitProc(t, marker)
			e.send(e.prEvent("closed", h, ""), http.StatusAccepted)
			if st := e.final(h); st.State != "error" && st.State != "canceled" {
				t.Errorf("status %+v, want cancelled", st)
			}
			e.settle()
			assertGone(t, pid)
		}},
		{"fork pull request runs nothing", func(t *testing.T, e *e2e) {
			e.baseline("0.90")
			before := e.trainings()
			h := e.commit("feature", map[string]string{"params": "0.91\n"}, "from a fork")
			e.send(e.sb.pr(e.hook, prEvent{Action: "opened", HeadRef: "feature", HeadSHA: h, BaseSHA: e.mainSHA, Fork: true, Author: "mallory", Association: "NONE"}), http.StatusAccepted)
			e.settle()
			if ss := e.sb.statuses(h); len(ss) != 1 || ss[0].State != "pending" || !strings.Contains(ss[0].Description, "/ok-to-test") {
				t.Fatalf("statuses %+v, want one pending waiting for /ok-to-test", ss)
			}
			if n := e.trainings() - before; n != 0 {
				t.Errorf("a fork's code ran %d times", n)
			}
		}},
		{"bad requests are refused and enqueue nothing", func(t *testing.T, e *e2e) {
			h := e.commit("main", e.model("0.9"), "model")
			good := e.sb.push(e.hook, zeroSHA, h)
			body, _ := io.ReadAll(good.Body)
			mk := func(b []byte, mutate func(http.Header)) *http.Request {
				r := good.Clone(context.Background())
				r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
				r.Header = good.Header.Clone()
				if mutate != nil {
					mutate(r.Header)
				}
				return r
			}
			authHeader := map[string]string{"github": "X-Hub-Signature-256", "gitlab": "X-Gitlab-Token"}[e.forge]
			e.send(mk(body, func(h http.Header) { h.Set(authHeader, "sha256=00") }), http.StatusUnauthorized)
			e.send(mk(body, func(h http.Header) { h.Del(authHeader) }), http.StatusUnauthorized)
			half := append([]byte(nil), body[:len(body)/2]...)
			e.send(mk(half, resign(e, half)), http.StatusBadRequest)
			big := append(bytes.Repeat([]byte(" "), 3<<20), body...)
			e.send(mk(big, resign(e, big)), http.StatusRequestEntityTooLarge)
			e.settle()
			if calls := e.sb.host.recorder().Calls(); len(calls) != 0 {
				t.Errorf("refused deliveries reached the host: %d calls", len(calls))
			}
			if n := e.trainings(); n != 0 {
				t.Errorf("%d trainings from refused deliveries", n)
			}
		}},
	}
	for _, forge := range forges {
		for _, sc := range scenarios {
			t.Run(forge+"/"+sc.name, func(t *testing.T) {
				e := newE2E(t, forge, func(c *configs.Server) { c.MaxWebhookBytes = 2 << 20 })
				sc.run(t, e)
				if a := e.archived(); len(a) > 0 {
					t.Errorf("tasks failed for good: %v", a)
				}
			})
		}
	}
}

// resign returns a header mutation that signs a changed body again, so
// that the request fails for its body, not its signature.
func resign(e *e2e, body []byte) func(http.Header) {
	return func(h http.Header) {
		if e.forge == "github" {
			h.Set("X-Hub-Signature-256", github.Sign([]byte(e.sb.secret), body))
		}
	}
}

// commentPath is the API path fragment of creating a PR comment.
func commentPath(forge string) string {
	if forge == "gitlab" {
		return "/notes"
	}
	return "/issues/1/comments"
}

// markers numbers uniqueMarker's markers.
var markers atomic.Int64

// uniqueMarker is a number to put in a training's command line ("sleep
// 60.<marker>") so that the test can find the process on the host: the
// sandbox lets a training write nothing outside its workspace, and its own
// PIDs are those of its PID namespace.
func uniqueMarker() string {
	return fmt.Sprintf("%06d", (time.Now().UnixNano()/1000+markers.Add(1)*7919)%1000000)
}

// waitProc waits for a process whose command line holds marker and
// returns its host PID.
func waitProc(t *testing.T, marker string) int {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && strings.Contains(string(b), "sleep\x0060."+marker) {
				return pid
			}
		}
	}
	t.Fatal("the training never started")
	return 0
}

// assertGone fails unless process pid has exited (a zombie counts as gone).
func assertGone(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err := syscall.Kill(pid, 0); err != nil {
			return
		}
		if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); strings.Contains(string(st), ") Z ") {
			return
		}
	}
	t.Errorf("training process %d is still alive", pid)
}
