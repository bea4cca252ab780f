package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/moby/moby/client"

	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/internal/dockertest"
	"github.com/mlbot/mlbot/internal/testreq"
	"github.com/mlbot/mlbot/jobs/store"
	"github.com/mlbot/mlbot/runners/docker"
)

// dockerEnv is what the docker end-to-end tests share, made once: the
// engine, an image of busybox plus the digits example's trainer built
// statically, and a static mlbot to inject.
var dockerEnv struct {
	once   sync.Once
	dir    string
	cli    *client.Client
	image  string
	binary string
	err    error
}

// needDocker returns the image and the agent binary, or ends t when no
// engine answers (failing it when MLBOT_TEST_REQUIRE names docker).
func needDocker(t *testing.T) (image, binary string) {
	t.Helper()
	dockerEnv.once.Do(func() {
		dockerEnv.dir, dockerEnv.err = os.MkdirTemp("", "mlbot-e2e-docker-")
		if dockerEnv.err != nil {
			return
		}
		if dockerEnv.cli, dockerEnv.err = dockertest.Engine(); dockerEnv.err != nil {
			return
		}
		dockerEnv.binary = filepath.Join(dockerEnv.dir, "mlbot")
		if dockerEnv.err = dockertest.BuildStaticMlbot(dockerEnv.binary); dockerEnv.err != nil {
			return
		}
		softmax := filepath.Join(dockerEnv.dir, "softmax")
		if dockerEnv.err = dockertest.BuildStatic(softmax, "../../examples/digits/softmax.go"); dockerEnv.err != nil {
			return
		}
		b, err := os.ReadFile(softmax)
		if err != nil {
			dockerEnv.err = err
			return
		}
		dockerEnv.image, dockerEnv.err = dockertest.ImportBusyboxWith(dockerEnv.cli, map[string][]byte{"usr/local/bin/softmax": b})
	})
	if dockerEnv.err != nil {
		testreq.Missing(t, "docker", "%v", dockerEnv.err)
	}
	return dockerEnv.image, dockerEnv.binary
}

// dockerCleanup removes what needDocker made; TestMain calls it.
func dockerCleanup() {
	if dockerEnv.cli != nil && dockerEnv.image != "" {
		dockertest.RemoveImage(dockerEnv.cli, dockerEnv.image)
	}
	if dockerEnv.dir != "" {
		os.RemoveAll(dockerEnv.dir)
	}
}

// containersOf lists the containers, running or not, labelled with run id.
func containersOf(t *testing.T, id string) int {
	t.Helper()
	list, err := dockerEnv.cli.ContainerList(context.Background(), client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", docker.LabelRun+"="+id)})
	if err != nil {
		t.Fatal(err)
	}
	return len(list.Items)
}

// dockerModel is e.model's pipeline run by the docker runner in image.
func dockerModel(image, accuracy, train string) map[string]string {
	files := (&e2e{}).model(accuracy)
	files[".mlbot.yml"] = strings.Replace(files[".mlbot.yml"], "  timeout: 1m\n",
		"  timeout: 1m\n  runner: docker\n  image: "+image+"\n  resources: {memory: 64Mi}\n", 1)
	if train != "" {
		files["train.sh"] = train
	}
	return files
}

// runJSON returns the run record behind a status's link, as JSON text.
func runJSON(t *testing.T, st hostStatus) string {
	t.Helper()
	resp, err := http.Get(st.TargetURL + "?format=json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDockerRunner drives the docker runner through webhooks: pushes and
// pull requests trained in a container of an image the repository names,
// with the agent injected; what only the engine knows (an OOM kill)
// reported as such; no network for untrusted code; no container left.
func TestDockerRunner(t *testing.T) {
	image, binary := needDocker(t)
	tweak := func(cfg *configs.Server) {
		cfg.Runners = []string{"local", "docker"}
		cfg.AgentBinary = binary
		cfg.Docker = configs.RunnerLimits{Images: []string{"mlbot-test/*"}, MaxMemory: 256 << 20, MaxCPU: "2"}
	}
	runIDOf := func(t *testing.T, st hostStatus) string {
		t.Helper()
		i := strings.LastIndex(st.TargetURL, "/runs/")
		if i < 0 {
			t.Fatalf("status %+v links no run", st)
		}
		return st.TargetURL[i+len("/runs/"):]
	}
	t.Run("a push and a pull request trained in a container", func(t *testing.T) {
		e := newE2E(t, "github", tweak)
		train := "echo \"uid $(id -u) in $(hostname)\"\nexec cp params model.txt\n"
		e.mainSHA = e.commit("main", dockerModel(image, "0.90", train), "model in a container")
		e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
		if st := e.final(e.mainSHA); st.State != "success" {
			t.Fatalf("baseline status %+v", st)
		}
		head := e.commit("feature", map[string]string{"params": "0.93\n"}, "better")
		e.send(e.prEvent("opened", head, ""), http.StatusAccepted)
		st := e.final(head)
		if st.State != "success" {
			t.Fatalf("pull request status %+v", st)
		}
		// The status is posted before the comment: wait for the report.
		e.settle()
		cs := e.mlbotComments(1)
		if len(cs) != 1 || !strings.Contains(cs[0].Body, "0.93") {
			t.Fatalf("comments %+v, want the diff with 0.93", cs)
		}
		id := runIDOf(t, st)
		if rec := runJSON(t, st); !strings.Contains(rec, "uid 1000 in ") {
			t.Errorf("the run's log does not show the container's unprivileged user: %s", rec)
		}
		if n := containersOf(t, id); n != 0 {
			t.Errorf("%d containers of run %s left", n, id)
		}
	})
	t.Run("an approved fork's container has no network", func(t *testing.T) {
		e := newE2E(t, "github", tweak)
		e.mainSHA = e.commit("main", dockerModel(image, "0.90", ""), "model in a container")
		e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
		if st := e.final(e.mainSHA); st.State != "success" {
			t.Fatalf("baseline status %+v", st)
		}
		// The probe lists the container's interfaces and tries the
		// engine's bridge gateway: anything but loopback is the failure.
		probe := `ifaces="$(awk -F: 'NR > 2 { gsub(/ /, "", $1); print $1 }' /proc/net/dev | tr '\n' ' ')"
echo "interfaces: $ifaces"
for i in $ifaces; do [ "$i" = lo ] || { echo "NETWORK $i"; exit 42; }; done
if nc -w 2 172.17.0.1 6379 </dev/null; then echo "REACHED THE HOST"; exit 43; fi
cp params model.txt
`
		h := e.approvedFork(dockerModel(image, "0.91", probe))
		st := e.final(h)
		if st.State != "success" {
			t.Fatalf("the approved fork's status %+v: its container had a network; run %s", st, runJSON(t, st))
		}
		if rec := runJSON(t, st); !strings.Contains(rec, "interfaces: lo") {
			t.Errorf("the probe did not run or saw more than loopback: %s", rec)
		}
		// The probe itself works: a trusted run's container is on the
		// bridge and sees its interface.
		h2 := e.commit("trusted", dockerModel(image, "0.92", probe), "trusted probe")
		e.send(e.sb.pr(e.hook, prEvent{Action: "opened", HeadRef: "trusted", HeadSHA: h2, BaseSHA: e.mainSHA, Author: "alice", Association: "MEMBER", Number: 2}), http.StatusAccepted)
		if st := e.final(h2); st.State != "failure" || !strings.Contains(st.Description, "42") {
			t.Errorf("a trusted run's probe: status %+v, want it to see a network interface (exit 42)", st)
		}
	})
	t.Run("a cancelled run leaves no container", func(t *testing.T) {
		e := newE2E(t, "github", tweak)
		e.mainSHA = e.commit("main", dockerModel(image, "0.90", ""), "model in a container")
		e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
		if st := e.final(e.mainSHA); st.State != "success" {
			t.Fatalf("baseline status %+v", st)
		}
		h := e.commit("feature", dockerModel(image, "0.91", "echo training\nsleep 120\ncp params model.txt\n"), "slow")
		e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
		url := e.runningURL(h)
		id := url[strings.LastIndex(url, "/runs/")+len("/runs/"):]
		deadline := time.Now().Add(60 * time.Second)
		for containersOf(t, id) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("no container of run %s started", id)
			}
			time.Sleep(50 * time.Millisecond)
		}
		e.say("alice", "/cancel")
		if st := e.final(h); st.State != "error" && st.State != "canceled" {
			t.Errorf("status %+v, want cancelled", st)
		}
		e.lastReply("Cancelled")
		if n := containersOf(t, id); n != 0 {
			t.Errorf("%d containers of the cancelled run %s left", n, id)
		}
	})
	t.Run("an OOM kill is reported with the limit", func(t *testing.T) {
		e := newE2E(t, "github", tweak)
		hog := "exec awk 'BEGIN { s = \"x\"; for (i = 0; i < 40; i++) s = s s; print length(s) }'\ncp params model.txt\n"
		e.mainSHA = e.commit("main", dockerModel(image, "0.90", hog), "a greedy model")
		e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
		st := e.final(e.mainSHA)
		if st.State != "failure" {
			t.Fatalf("status %+v, want failure; run %s", st, runJSON(t, st))
		}
		rec := runJSON(t, st)
		if !strings.Contains(rec, "out of memory") || !strings.Contains(rec, "64Mi") {
			t.Errorf("run record does not say out of memory with the limit: %s", rec)
		}
	})
	t.Run("an OOM kill of a helper process is reported though the step goes on", func(t *testing.T) {
		e := newE2E(t, "github", tweak)
		// A child of the step (a data loader worker) dies; the step
		// itself carries on and exits 0, a while later, so that the
		// engine's OOM event comes well before the step's end.
		// The helper makes itself the kernel's first victim.
		hog := "sh -c 'echo 1000 > /proc/self/oom_score_adj; exec awk \"BEGIN { s = \\\"x\\\"; for (i = 0; i < 40; i++) s = s s; print length(s) }\"'\necho \"the helper exited $?\"\nsleep 1.5\ncp params model.txt\n"
		e.mainSHA = e.commit("main", dockerModel(image, "0.90", hog), "a greedy helper")
		e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
		st := e.final(e.mainSHA)
		rec := runJSON(t, st)
		if st.State != "failure" {
			t.Fatalf("status %+v, want failure; run %s", st, rec)
		}
		if !strings.Contains(rec, "the helper exited 137") || !strings.Contains(rec, "a process of train ran out of memory") || !strings.Contains(rec, "64Mi") {
			t.Errorf("run record does not say a process of train ran out of memory, with the limit: %s", rec)
		}
	})
	t.Run("a run asking for more than allowed fails at once quoting the limit", func(t *testing.T) {
		e := newE2E(t, "gitlab", tweak)
		files := dockerModel(image, "0.90", "")
		files[".mlbot.yml"] = strings.Replace(files[".mlbot.yml"], "memory: 64Mi", "memory: 64Gi", 1)
		e.mainSHA = e.commit("main", files, "greedy")
		start := time.Now()
		e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
		st := e.final(e.mainSHA)
		if st.State != "failed" && st.State != "failure" {
			t.Fatalf("status %+v, want failed", st)
		}
		if time.Since(start) > 30*time.Second {
			t.Errorf("the refusal took %s", time.Since(start))
		}
		if rec := runJSON(t, st); !strings.Contains(rec, "pipeline.resources.memory 64Gi is more than the limit of 256Mi per run (MLBOT_DOCKER_MAX_MEMORY)") {
			t.Errorf("the run does not quote the limit: %s", rec)
		}
	})
	t.Run("the digits example trained in a container", func(t *testing.T) {
		e := newE2E(t, "gitlab", tweak)
		data, err := os.ReadFile("../../examples/digits/digits.csv.gz")
		if err != nil {
			t.Fatal(err)
		}
		e.mainSHA = e.commit("main", map[string]string{
			".mlbot.yml": `version: 1
pipeline:
  train: softmax train --lr 0.5 --epochs 40 --seed 42 --out model.json
  evaluate: softmax evaluate --model model.json --out metrics.json
  metrics: [metrics.json]
  artifacts: [model.json]
  timeout: 5m
  runner: docker
  image: ` + image + `
  resources: {memory: 256Mi, cpu: "1"}
metrics:
  accuracy: {goal: maximize, min: 0.90}
`,
			"digits.csv.gz": string(data),
		}, "digits")
		e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
		st := e.final(e.mainSHA)
		if st.State != "success" {
			t.Fatalf("status %+v; run %s", st, runJSON(t, st))
		}
		if rec := runJSON(t, st); !strings.Contains(rec, `"accuracy":0.9`) {
			t.Errorf("run record lacks an accuracy of at least 0.9: %s", rec)
		}
	})
}

// TestDockerWorkerKilledMidTraining SIGKILLs a real `mlbot worker`
// process while the container it started trains a pull request: the
// container trains on (its agent retries its pushes while nothing serves
// its socket), a worker started on the same machine takes the run when
// asynq recovers the task of the dead one (its lease lapses: about a
// minute), re-attaches to the container by the run's label and reports
// once. No second container or training starts, the run's log holds each
// line once, and the pull request gets one final status and one comment.
func TestDockerWorkerKilledMidTraining(t *testing.T) {
	image, binary := needDocker(t)
	const key = "0123456789abcdef0123456789abcdef-docker-kill"
	e := newE2E(t, "github", func(cfg *configs.Server) { cfg.TaskKey = key })
	// The base is trained by serve, in its sandbox.
	e.mainSHA = e.baseline("0.90")

	// The head runs on the gpu workers, in a container.
	// The training outlasts the kill by far; its time hides in the wait
	// for asynq to recover the dead worker's task, which it outlasts too
	// (its agent waits for a worker to serve its socket again).
	files := dockerModel(image, "0.93", "echo started\nsleep 15\necho trained\ncp params model.txt\n")
	// The time the agent waits for a worker counts against the job's
	// timeout: give it more than the minute asynq takes.
	files[".mlbot.yml"] = strings.Replace(strings.Replace(files[".mlbot.yml"], "  runner: docker\n", "  runner: docker\n  queue: gpu\n", 1),
		"timeout: 1m", "timeout: 5m", 1)
	head := e.commit("feature", files, "trained in a container by the gpu workers")
	cfg := e.app.cfg
	env := map[string]string{
		"MLBOT_REDIS_URL": cfg.RedisURL, "MLBOT_TASK_KEY": key, "MLBOT_PUBLIC_URL": e.url,
		"MLBOT_GITHUB_API_URL": cfg.GitHubAPIURL, "MLBOT_GITHUB_TOKEN": cfg.GitHubToken,
		"MLBOT_GITHUB_WEBHOOK_SECRET": cfg.GitHubWebhookSecret, "MLBOT_REPO_ALLOWLIST": strings.Join(cfg.RepoAllowlist, ","),
		// One machine: both workers share its data directory.
		"MLBOT_DATA_DIR": filepath.Join(t.TempDir(), "gpu"), "MLBOT_QUEUES": "gpu", "MLBOT_RETRY_BASE": "100ms",
		"MLBOT_RUNNERS": "docker", "MLBOT_AGENT_BINARY": binary, "MLBOT_DOCKER_IMAGES": "mlbot-test/*",
		"MLBOT_DOCKER_MAX_MEMORY": "256MiB", "MLBOT_LOG_LEVEL": "info",
	}
	first := startMlbot(t, binary, "worker", env)
	e.send(e.prEvent("opened", head, ""), http.StatusAccepted)
	url := e.runningURL(head)
	id := url[strings.LastIndex(url, "/runs/")+len("/runs/"):]
	st := store.New(e.rdb, store.DefaultPrefix)
	runLog := func() string {
		b, _, err := st.ReadRunLog(context.Background(), id, 0, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// Kill the worker once its container trains and the run's log shows it.
	var cid string
	deadline := time.Now().Add(2 * time.Minute)
	for cid == "" || !strings.Contains(runLog(), "started\n") {
		if time.Now().After(deadline) || first.exited() {
			t.Fatalf("the gpu worker did not start the training (log %q)\n%s", runLog(), first.out.String())
		}
		if ids := containerIDs(t, id); len(ids) == 1 {
			cid = ids[0]
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-first.done
	t.Logf("worker SIGKILLed while container %.12s trains", cid)

	second := startMlbot(t, binary, "worker", env)
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); {
		if ids := containerIDs(t, id); len(ids) > 1 || len(ids) == 1 && ids[0] != cid {
			t.Fatalf("a second container of run %s: %v (the first was %.12s)", id, ids, cid)
		} else if len(ids) == 0 {
			break
		}
		if second.exited() {
			t.Fatalf("the second worker exited\n%s", second.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	final := cliAwaitFinal(t, e.sb, head, 3*time.Minute)
	if final.State != "success" {
		t.Fatalf("status %+v; run %s\n%s", final, runJSON(t, final), second.out.String())
	}
	e.settle()
	settleQueue(t, e, "gpu")
	var finals int
	for _, s := range e.sb.statuses(head) {
		if s.State != "pending" && s.State != "running" {
			finals++
		}
	}
	if finals != 1 {
		t.Errorf("%d final statuses, want 1: %+v", finals, e.sb.statuses(head))
	}
	if cs := e.mlbotComments(1); len(cs) != 1 || !strings.Contains(cs[0].Body, "0.93") {
		t.Errorf("comments %+v, want one with the diff", cs)
	}
	log := runLog()
	for _, line := range []string{"started", "trained"} {
		if n := strings.Count(log, "\n"+line+"\n"); n != 1 {
			t.Errorf("the run's log shows %q %d times, want once:\n%s", line, n, log)
		}
	}
	if !strings.Contains(second.out.String(), "re-attaching to the run's container") {
		t.Errorf("the second worker did not say it re-attached:\n%s", second.out.String())
	}
}

// containerIDs lists the ids of the containers, running or not, labelled
// with run id.
func containerIDs(t *testing.T, id string) []string {
	t.Helper()
	list, err := dockerEnv.cli.ContainerList(context.Background(), client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", docker.LabelRun+"="+id)})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range list.Items {
		out = append(out, c.ID)
	}
	return out
}

// settleQueue waits until nothing is queued, running or waiting to be
// retried on queue.
func settleQueue(t *testing.T, e *e2e, queue string) {
	t.Helper()
	in := asynq.NewInspectorFromRedisClient(e.rdb)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		info, err := in.GetQueueInfo(queue)
		if err != nil || info.Pending+info.Active+info.Scheduled+info.Retry == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("tasks of queue %s still pending after 30s", queue)
}
