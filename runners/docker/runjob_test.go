package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/mlbot/mlbot/runners"
)

// TestRunJobTwoSteps runs a train and an evaluate step in one container:
// the second sees what the first left in /workspace, the log reaches the
// output, and the metric files and the artifact end up in job.Dir.
func TestRunJobTwoSteps(t *testing.T) {
	needEngine(t)
	f := newFixture(t, Options{})
	out := &output{}
	dir := checkout(t, map[string]string{"data/input.txt": "42\n", "train.sh": "echo training on $(cat data/input.txt)\nmkdir -p out\necho weights > out/model.bin\n"})
	j := f.job("two-steps", dir, out,
		"train", `sh train.sh && echo '{"accuracy": 0.93}' > metrics.json`,
		"evaluate", `test -f out/model.bin && echo evaluating && echo '{"loss": 0.25}' > eval.json`)
	j.Metrics, j.Artifacts = []string{"metrics.json", "eval.json"}, []string{"out/model.bin"}
	res := f.r.RunJob(context.Background(), j)
	if res.InfraError != nil || len(res.Steps) != 2 || !res.Steps[0].Succeeded() || !res.Steps[1].Succeeded() {
		t.Fatalf("%s\noutput:\n%s", steps(res), out)
	}
	for _, s := range []string{"training on 42", "evaluating"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
	for name, want := range map[string]string{"metrics.json": `{"accuracy": 0.93}` + "\n", "eval.json": `{"loss": 0.25}` + "\n", "out/model.bin": "weights\n"} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != want {
			t.Errorf("%s in job.Dir: %q, %v; want %q", name, got, err, want)
		}
	}
	f.noContainer(t, j.ID)
}

// TestRunJobFailingStep checks that the job stops at a failing step and
// reports its status, and that nothing is collected.
func TestRunJobFailingStep(t *testing.T) {
	needEngine(t)
	f := newFixture(t, Options{})
	out := &output{}
	dir := checkout(t, nil)
	j := f.job("failing", dir, out, "train", `echo '{"a": 1}' > metrics.json; exit 3`, "evaluate", "echo never")
	j.Metrics = []string{"metrics.json"}
	res := f.r.RunJob(context.Background(), j)
	if res.InfraError != nil || len(res.Steps) != 1 || res.Steps[0].ExitCode != 3 || res.Steps[0].Name != "train" {
		t.Fatalf("%s, want train exiting 3 and no evaluate", steps(res))
	}
	if strings.Contains(out.String(), "never") {
		t.Errorf("evaluate ran:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "metrics.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("metrics.json of a failed job was collected: %v", err)
	}
	f.noContainer(t, j.ID)
}

// TestRunJobOOM runs a step that allocates more than the job's memory
// limit: the step says OOMKilled.
func TestRunJobOOM(t *testing.T) {
	needEngine(t)
	f := newFixture(t, Options{})
	out := &output{}
	j := f.job("oom", checkout(t, nil), out, "train", "echo allocating; dd if=/dev/zero of=/dev/null bs=96M count=1", "evaluate", "true")
	j.Resources.Memory = "48Mi"
	res := f.r.RunJob(context.Background(), j)
	last, _ := res.Last()
	if res.InfraError != nil || len(res.Steps) != 1 || !last.OOMKilled || last.Name != "train" {
		t.Fatalf("%s, want train OOMKilled\noutput:\n%s", steps(res), out)
	}
	f.noContainer(t, j.ID)
}

// TestRunJobCancel cancels a job in the middle of its step: the step says
// Canceled, and no container is left.
func TestRunJobCancel(t *testing.T) {
	needEngine(t)
	f := newFixture(t, Options{})
	out := &output{}
	j := f.job("cancel", checkout(t, nil), out, "train", "echo started; sleep 300")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan runners.JobResult, 1)
	go func() { done <- f.r.RunJob(ctx, j) }()
	out.waitFor(t, "started", time.Minute)
	cancel()
	var res runners.JobResult
	select {
	case res = <-done:
	case <-time.After(time.Minute):
		t.Fatal("RunJob did not return within a minute of the cancel")
	}
	last, _ := res.Last()
	if res.InfraError != nil || !last.Canceled || last.Succeeded() {
		t.Fatalf("%s, want train Canceled", steps(res))
	}
	f.noContainer(t, j.ID)
}

// TestRunJobTimeout runs a step longer than the job's timeout: the step
// says TimedOut, and no container is left.
func TestRunJobTimeout(t *testing.T) {
	needEngine(t)
	f := newFixture(t, Options{})
	out := &output{}
	j := f.job("timeout", checkout(t, nil), out, "train", "echo started; sleep 300", "evaluate", "true")
	j.Timeout = 3 * time.Second
	start := time.Now()
	res := f.r.RunJob(context.Background(), j)
	last, _ := res.Last()
	if res.InfraError != nil || len(res.Steps) != 1 || !last.TimedOut {
		t.Fatalf("%s, want train TimedOut\noutput:\n%s", steps(res), out)
	}
	if d := time.Since(start); d > time.Minute {
		t.Errorf("RunJob took %v for a 3s timeout", d)
	}
	f.noContainer(t, j.ID)
}

// TestRunJobTimeoutBackstop stops a job whose agent has not stopped the
// step at the runner's own deadline (made earlier than the agent's here):
// the runner stops the container and the step says TimedOut.
func TestRunJobTimeoutBackstop(t *testing.T) {
	needEngine(t)
	f := newFixture(t, Options{})
	// The runner's deadline: 20s + 1s of grace - 18s = 3s after the start.
	f.r.timeoutSlack = -18 * time.Second
	out := &output{}
	j := f.job("backstop", checkout(t, nil), out, "train", "echo started; sleep 300")
	j.Timeout = 20 * time.Second
	start := time.Now()
	res := f.r.RunJob(context.Background(), j)
	last, _ := res.Last()
	if res.InfraError != nil || len(res.Steps) != 1 || !last.TimedOut {
		t.Fatalf("%s, want train TimedOut\noutput:\n%s", steps(res), out)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("RunJob took %v: the runner did not stop the container at its deadline", d)
	}
	f.noContainer(t, j.ID)
}

// TestRunJobUntrusted runs the isolation probe and the network probe as
// the step of an untrusted job, so that what they check holds for the
// steps the agent runs, not only for the container's first process.
func TestRunJobUntrusted(t *testing.T) {
	needEngine(t)
	f := newFixture(t, Options{PidsLimit: 321})
	out := &output{}
	j := f.job("untrusted", checkout(t, nil), out, "probe", probe+networkProbe)
	res := f.r.RunJob(context.Background(), j)
	if res.InfraError != nil || len(res.Steps) != 1 || !res.Steps[0].Succeeded() {
		t.Fatalf("%s\noutput:\n%s", steps(res), out)
	}
	got := values(out.String())
	want := map[string]string{
		"uid": "1000", "gid": "1000", "capeff": "0000000000000000", "capbnd": "0000000000000000",
		"nonewprivs": "1", "seccomp": "2", "rootfs": "read-only", "workspace": "writable", "tmp": "writable",
		"rundir": "read-only", "binary": "read-only", "pids": "321", "interfaces": "lo",
		"127.0.0.1:6379": "unreachable", "172.17.0.1:6379": "unreachable", "1.1.1.1:53": "unreachable", "wget": "unreachable",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %q, want %q", k, got[k], w)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
	f.noContainer(t, j.ID)
}

// TestRunJobReattach detaches from a running job half-way (as a worker
// that shuts down does) and runs the job again with a new Runner, as
// after a restart: whether the container still runs, has ended meanwhile,
// or has even been removed before its session was closed, the job ends
// as it would have, and the training ran once.
func TestRunJobReattach(t *testing.T) {
	needEngine(t)
	tests := []struct {
		name string
		// meanwhile is what happens between the detach and the re-attach.
		meanwhile func(t *testing.T, f *fixture, id string)
	}{
		{"still running", func(t *testing.T, f *fixture, id string) {
			// The agent's pushes fail and are retried meanwhile.
			time.Sleep(1500 * time.Millisecond)
			if c, _, _ := f.r.find(context.Background(), id); c.State != "running" {
				t.Fatalf("the container is %s 1.5s after the detach, want running", c.State)
			}
		}},
		// Without a runner the agent cannot end: nothing serves its socket
		// and it retries (for 5 minutes). Here something does meanwhile.
		{"ended meanwhile", func(t *testing.T, f *fixture, id string) {
			s, err := f.r.serveSocket(id)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			waitState(t, f, id, "exited")
		}},
		{"ended and removed, session open", func(t *testing.T, f *fixture, id string) {
			s, err := f.r.serveSocket(id)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			c := waitState(t, f, id, "exited")
			if err := f.r.remove(context.Background(), c); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Options{})
			out := &output{}
			dir := checkout(t, nil)
			j := f.job(fmt.Sprintf("reattach-%d", i), dir, out,
				"train", "echo run >> /workspace/count; echo started; sleep 3; echo trained",
				"evaluate", `echo "{\"runs\": $(wc -l < /workspace/count)}" > metrics.json`)
			j.Metrics = []string{"metrics.json"}
			ctx, cancel := context.WithCancelCause(context.Background())
			done := make(chan runners.JobResult, 1)
			go func() { done <- f.r.RunJob(ctx, j) }()
			out.waitFor(t, "started", time.Minute)
			cancel(runners.ErrDetach)
			res := <-done
			if !errors.Is(res.InfraError, runners.ErrDetach) {
				t.Fatalf("%s, want runners.ErrDetach", steps(res))
			}
			if _, ok, err := f.r.find(context.Background(), j.ID); err != nil || !ok {
				t.Fatalf("the container is gone after a detach: %v", err)
			}
			tt.meanwhile(t, f, j.ID)

			// A new runner with the same hub and run directory.
			r2, err := New(f.opts)
			if err != nil {
				t.Fatal(err)
			}
			out2 := &output{}
			j.Output = out2
			res = r2.RunJob(context.Background(), j)
			if res.InfraError != nil || len(res.Steps) != 2 || !res.Steps[1].Succeeded() {
				t.Fatalf("after re-attaching: %s\noutput:\n%s", steps(res), out2)
			}
			got, err := os.ReadFile(filepath.Join(dir, "metrics.json"))
			if err != nil || strings.TrimSpace(string(got)) != `{"runs": 1}` {
				t.Errorf("metrics.json = %q, %v; want the training to have run once", got, err)
			}
			// The re-attached runner goes on with the log where the first
			// one stopped: together they copied every line once.
			lines := strings.Split(out.String()+out2.String(), "\n")
			if slices.Index(lines, "started") < 0 || slices.Index(lines, "trained") < 0 ||
				len(slices.DeleteFunc(lines, func(l string) bool { return l != "started" && l != "trained" })) != 2 {
				t.Errorf("the two runners' outputs together do not hold the log once:\nfirst:\n%s\nre-attached:\n%s", out, out2)
			}
			if strings.Contains(out2.String(), "started") {
				t.Errorf("the re-attached output copies the log again from its start:\n%s", out2)
			}
			f.noContainer(t, j.ID)
		})
	}
}

// TestRunJobOpenWithoutContainer runs a job whose session a worker opened
// before it died, without a container: the run starts afresh.
func TestRunJobOpenWithoutContainer(t *testing.T) {
	needEngine(t)
	f := newFixture(t, Options{})
	out := &output{}
	j := f.job("open-only", checkout(t, nil), out, "train", "echo trained")
	if _, err := f.hub.Open(context.Background(), j.ID, f.r.agentJob(j), j.Dir, time.Hour); err != nil {
		t.Fatal(err)
	}
	res := f.r.RunJob(context.Background(), j)
	if res.InfraError != nil || len(res.Steps) != 1 || !res.Steps[0].Succeeded() || !strings.Contains(out.String(), "trained") {
		t.Fatalf("%s\noutput:\n%s", steps(res), out)
	}
	f.noContainer(t, j.ID)
}

// waitState waits until run id's container is in state and returns its id.
func waitState(t *testing.T, f *fixture, id, state string) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		c, ok, err := f.r.find(context.Background(), id)
		if err != nil || !ok {
			t.Fatalf("no container of run %s: %v", id, err)
		}
		if string(c.State) == state {
			return c.ID
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container of run %s is %s after a minute, want %s", id, c.State, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// BenchmarkFirstLogLine measures the time from RunJob to the first byte
// of the step's output: container creation and start, the agent fetching
// the job and the source, the step's start and one poll of the log.
func BenchmarkFirstLogLine(b *testing.B) {
	if testEnv.err != nil {
		b.Skipf("no engine: %v", testEnv.err)
	}
	f := newFixture(b, Options{})
	dir := checkout(b, map[string]string{"README": "x\n"})
	var total time.Duration
	for i := 0; b.Loop(); i++ {
		out := &output{}
		start := time.Now()
		res := f.r.RunJob(context.Background(), f.job(fmt.Sprintf("bench-%d", i), dir, out, "hello", "echo hello"))
		if res.InfraError != nil || out.first.IsZero() {
			b.Fatalf("%s\noutput:\n%s", steps(res), out)
		}
		total += out.first.Sub(start)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/first-line")
}

// TestRun runs a Spec, which names no image, in a container of
// Options.Image.
func TestRun(t *testing.T) {
	needEngine(t)
	f := newFixture(t, Options{Image: testEnv.image})
	out := &output{}
	res, err := f.r.Run(context.Background(), runners.Spec{Name: "deploy", Command: "cat VERSION; exit 4",
		Dir: checkout(t, map[string]string{"VERSION": "v1.2.3\n"}), Env: []string{"PATH=/bin"}, Output: out})
	if err != nil || res.ExitCode != 4 || res.Canceled || res.TimedOut || res.OOMKilled {
		t.Fatalf("Run = %+v, %v; want exit status 4", res, err)
	}
	if !strings.Contains(out.String(), "v1.2.3") {
		t.Errorf("output %q lacks the checkout's VERSION", out)
	}
	f.r.opts.Image = ""
	if _, err := f.r.Run(context.Background(), runners.Spec{Command: "true"}); err == nil || !strings.Contains(err.Error(), "Options.Image") {
		t.Errorf("Run without an image: %v, want an error naming Options.Image", err)
	}
}

// BenchmarkContainerStart measures what the engine alone takes to create
// and start a container made as RunJob makes it (ms/start, the floor
// under BenchmarkFirstLogLine), running a shell that exits at once, and
// to wait for and remove it (ns/op all told).
func BenchmarkContainerStart(b *testing.B) {
	if testEnv.err != nil {
		b.Skipf("no engine: %v", testEnv.err)
	}
	f := newFixture(b, Options{})
	ctx := context.Background()
	dir := runDir(f.runDir, "bench")
	if err := os.MkdirAll(dir, 0o711); err != nil {
		b.Fatal(err)
	}
	var starting time.Duration
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		opts, err := f.r.createOptions(runners.Job{ID: fmt.Sprintf("bench-start-%d", i), Image: testEnv.image}, "token", dir)
		if err != nil {
			b.Fatal(err)
		}
		opts.Config.Entrypoint, opts.Config.Cmd = []string{"/bin/sh", "-c", ":"}, nil
		c, err := f.r.engine.ContainerCreate(ctx, opts)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.r.engine.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
			b.Fatal(err)
		}
		starting += time.Since(t0)
		w := f.r.engine.ContainerWait(ctx, c.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
		select {
		case <-w.Result:
		case err := <-w.Error:
			b.Fatal(err)
		}
		if err := f.r.remove(ctx, c.ID); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(starting.Milliseconds())/float64(b.N), "ms/start")
}
