package kubernetes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/mlbot/mlbot/internal/kubetest"
	"github.com/mlbot/mlbot/internal/redistest"
	"github.com/mlbot/mlbot/jobs/store"
	"github.com/mlbot/mlbot/runners"
	"github.com/mlbot/mlbot/web/agentsrv"
)

// kubernetesRedisDB is this package's own Redis database (see redistest).
const kubernetesRedisDB = 15

const (
	// namespace is the one ops/kubernetes/namespace.yaml makes.
	namespace = "mlbot-jobs"
	// agentImage is mlbot's image as the runner names it; the kubelet
	// gives its init container the mlbot binary the test built.
	agentImage = "ghcr.io/mlbot/mlbot:test"
	// jobImage is the image the jobs name; the kubelet runs their
	// commands with the host's programs.
	jobImage = "debian:bookworm-slim"
	opsDir   = "../../ops/kubernetes"
)

// fixture is a control plane with one CPU node whose kubelet runs the
// real `mlbot agent`, the operators' manifests applied, a real Hub
// (web/agentsrv over Redis) served over HTTP, and a Runner acting as the
// ServiceAccount the Role is bound to.
type fixture struct {
	c     *kubetest.Cluster
	node  *kubetest.Kubelet
	admin kubernetes.Interface
	hub   *agentsrv.Hub
	opts  Options
	mlbot kubernetes.Interface
}

func (f *fixture) runner(t testing.TB, change func(*Options)) *Runner {
	t.Helper()
	opts := f.opts
	if change != nil {
		change(&opts)
	}
	r, err := New(f.mlbot, f.hub, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newFixture(t testing.TB) *fixture {
	c := kubetest.Start(t)
	mlbotBin := buildMlbot(t)
	node := c.AddNode(t, kubetest.NodeOptions{Name: "cpu-1", CPU: "4", Memory: "8Gi",
		Images: map[string]kubetest.Image{agentImage: {Files: map[string]string{DefaultAgentBinary: mlbotBin}}}})
	c.Apply(t, "", filepath.Join(opsDir, "namespace.yaml"))
	for _, f := range []string{"serviceaccount.yaml", "role.yaml", "rolebinding.yaml", "networkpolicy.yaml"} {
		c.Apply(t, namespace, filepath.Join(opsDir, f))
	}

	rdb := redis.NewClient(redistest.Options(t, kubernetesRedisDB))
	t.Cleanup(func() { rdb.Close() })
	hub, err := agentsrv.New(store.New(rdb, "mlbot:"), t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(hub.Handler())
	t.Cleanup(srv.Close)
	return &fixture{c: c, node: node, admin: c.Admin, hub: hub, mlbot: c.Client(t, kubetest.MlbotUser),
		opts: Options{Namespace: namespace, AgentImage: agentImage, AgentURL: srv.URL, ServiceAccount: "mlbot-job",
			Grace: time.Second, PollInterval: 100 * time.Millisecond, PendingTimeout: time.Minute}}
}

// buildMlbot builds the mlbot binary the pods run as their agent.
func buildMlbot(t testing.TB) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "mlbot")
	cmd := exec.Command("go", "build", "-o", out, "github.com/mlbot/mlbot/cmd/mlbot")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build mlbot: %v\n%s", err, b)
	}
	return out
}

// buffer is a job's Output that a test may read while the job writes.
type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
	// first is when the first byte arrived.
	first time.Time
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.first.IsZero() && len(p) > 0 {
		b.first = time.Now()
	}
	return b.b.Write(p)
}

// firstByte is when the first byte arrived (zero: none yet).
func (b *buffer) firstByte() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.first
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// newJob is a job of steps in a fresh checkout holding data.txt.
func newJob(t testing.TB, id string, steps ...runners.Step) (runners.Job, *buffer) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "data.txt"), []byte("41\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := &buffer{}
	return runners.Job{ID: id, Steps: steps, Dir: dir, Image: jobImage, Timeout: 2 * time.Minute,
		Env: []string{"PATH=" + os.Getenv("PATH")}, Output: out, Log: "log/" + id}, out
}

func TestRunner(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()

	t.Run("two steps: metrics and artifact reach the checkout", func(t *testing.T) {
		r := f.runner(t, nil)
		job, out := newJob(t, "run-two-steps",
			runners.Step{Name: "prep", Command: `echo "prep sees $(cat data.txt)"; mkdir -p out`},
			runners.Step{Name: "train", Command: `echo '{"accuracy": 0.93}' > metrics.json && printf weights > out/model.bin && echo trained`})
		job.Metrics, job.Artifacts = []string{"metrics.json"}, []string{"out/model.bin"}
		first := watchFirstJob(t, f.admin, "run-two-steps")
		res := r.RunJob(ctx, job)
		if res.InfraError != nil {
			t.Fatalf("infra error: %v\nlog:\n%s", res.InfraError, out)
		}
		if len(res.Steps) != 2 || !res.Steps[0].Succeeded() || !res.Steps[1].Succeeded() || res.Steps[1].Name != "train" {
			t.Fatalf("steps %+v\nlog:\n%s", res.Steps, out)
		}
		for name, want := range map[string]string{"metrics.json": "{\"accuracy\": 0.93}\n", "out/model.bin": "weights"} {
			b, err := os.ReadFile(filepath.Join(job.Dir, name))
			if err != nil || string(b) != want {
				t.Errorf("%s in the checkout: %q, %v; want %q", name, b, err, want)
			}
		}
		for _, want := range []string{"prep sees 41", "trained"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("log lacks %q:\n%s", want, out)
			}
		}
		if res.Log != job.Log {
			t.Errorf("Log %q, want %q", res.Log, job.Log)
		}
		checkJobObject(t, <-first, job)
		waitGone(t, f.admin, "run-two-steps")
	})

	t.Run("out of memory", func(t *testing.T) {
		r := f.runner(t, nil)
		job, out := newJob(t, "run-oom",
			runners.Step{Name: "prep", Command: "echo ready"},
			runners.Step{Name: "train", Command: "head -c 2000000000 /dev/zero | tail; echo survived"})
		job.Resources.Memory = "96Mi"
		res := r.RunJob(ctx, job)
		if res.InfraError != nil {
			t.Fatalf("infra error: %v\nlog:\n%s", res.InfraError, out)
		}
		if len(res.Steps) != 2 || !res.Steps[0].Succeeded() || !res.Steps[1].OOMKilled || res.Steps[1].Name != "train" {
			t.Fatalf("steps %+v, want prep succeeded and train OOMKilled\nlog:\n%s", res.Steps, out)
		}
		if !strings.Contains(out.String(), "memory limit of 96Mi") {
			t.Errorf("log does not quote the limit:\n%s", out)
		}
		waitGone(t, f.admin, "run-oom")
	})

	t.Run("an evicted pod is retried once", func(t *testing.T) {
		r := f.runner(t, nil)
		f.node.Inject(t, LabelRun+"=run-evicted-once", kubetest.Fault{Kind: kubetest.Evicted})
		job, out := newJob(t, "run-evicted-once", runners.Step{Name: "train", Command: "echo done"})
		res := r.RunJob(ctx, job)
		if res.InfraError != nil || len(res.Steps) != 1 || !res.Steps[0].Succeeded() {
			t.Fatalf("result %+v\nlog:\n%s", res, out)
		}
		for _, want := range []string{"was evicted: The node was low on resource: memory", "running the job again on a new pod", "done"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("log lacks %q:\n%s", want, out)
			}
		}
		waitGone(t, f.admin, "run-evicted-once")
	})

	t.Run("a second eviction fails the run", func(t *testing.T) {
		r := f.runner(t, nil)
		for range 2 {
			f.node.Inject(t, LabelRun+"=run-evicted-twice", kubetest.Fault{Kind: kubetest.Evicted, Message: "The node was low on resource: ephemeral-storage."})
		}
		job, out := newJob(t, "run-evicted-twice", runners.Step{Name: "train", Command: "sleep 30"})
		res := r.RunJob(ctx, job)
		if res.InfraError == nil || !strings.Contains(res.InfraError.Error(), "evicted again (2 tries): The node was low on resource: ephemeral-storage.") {
			t.Fatalf("infra error %v\nlog:\n%s", res.InfraError, out)
		}
		waitGone(t, f.admin, "run-evicted-twice")
	})

	t.Run("an image that does not pull fails at once", func(t *testing.T) {
		r := f.runner(t, nil)
		f.node.Inject(t, LabelRun+"=run-pull", kubetest.Fault{Kind: kubetest.ImagePull,
			Message: `failed to pull and unpack image "docker.io/library/nope:1": not found`})
		job, out := newJob(t, "run-pull", runners.Step{Name: "train", Command: "true"})
		job.Image = "nope:1"
		start := time.Now()
		res := r.RunJob(ctx, job)
		if res.InfraError == nil || !strings.Contains(res.InfraError.Error(), "image pull failed: ErrImagePull: failed to pull and unpack image") {
			t.Fatalf("infra error %v\nlog:\n%s", res.InfraError, out)
		}
		if len(res.Steps) != 1 || res.Steps[0].Name != "train" || res.Steps[0].ExitCode != -1 {
			t.Errorf("steps %+v, want train with no outcome of its own", res.Steps)
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("took %v to fail", d)
		}
		waitGone(t, f.admin, "run-pull")
	})

	t.Run("a GPU job with no GPU node", func(t *testing.T) {
		r := f.runner(t, func(o *Options) { o.PendingTimeout = 5 * time.Second })
		job, out := newJob(t, "run-gpu", runners.Step{Name: "train", Command: "true"})
		job.Resources.GPUs = 1
		var notes []string
		var mu sync.Mutex
		job.Notify = func(msg string) {
			mu.Lock()
			defer mu.Unlock()
			notes = append(notes, msg)
		}
		res := r.RunJob(ctx, job)
		const sched = "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
		if res.InfraError == nil || !strings.Contains(res.InfraError.Error(), "no node could run the pod within 5s: "+sched) {
			t.Fatalf("infra error %v\nlog:\n%s", res.InfraError, out)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(notes) == 0 || !strings.HasPrefix(notes[0], "waiting for a GPU node: "+sched) {
			t.Errorf("notes %q", notes)
		}
		waitGone(t, f.admin, "run-gpu")
	})

	t.Run("cancel deletes the Job and its pod", func(t *testing.T) {
		r := f.runner(t, nil)
		job, out := newJob(t, "run-cancel", runners.Step{Name: "train", Command: "echo started; sleep 600"})
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			waitPod(t, f.admin, "run-cancel", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
			waitOutput(t, out, "started")
			cancel()
		}()
		res := r.RunJob(cctx, job)
		if res.InfraError != nil || len(res.Steps) != 1 || !res.Steps[0].Canceled {
			t.Fatalf("result %+v, want train canceled\nlog:\n%s", res, out)
		}
		// RunJob waited for the Job to go: nothing of it is left.
		sel := metav1.ListOptions{LabelSelector: LabelRun + "=run-cancel"}
		if jobs, err := f.admin.BatchV1().Jobs(namespace).List(ctx, sel); err != nil || len(jobs.Items) != 0 {
			t.Errorf("jobs left: %v %v", jobs, err)
		}
		if pods, err := f.admin.CoreV1().Pods(namespace).List(ctx, sel); err != nil || len(pods.Items) != 0 {
			t.Errorf("pods left: %d %v", len(pods.Items), err)
		}
	})

	t.Run("the API server refuses a bad Job", func(t *testing.T) {
		r := f.runner(t, nil)
		job, _ := newJob(t, "run-refused", runners.Step{Name: "train", Command: "true"})
		job.Resources.NodeSelector = map[string]string{"bad key!": "x"}
		job.Resources.Tolerations = []string{"gpu=yes:Sometimes"}
		res := r.RunJob(ctx, job)
		err := res.InfraError
		if err == nil {
			t.Fatalf("no infra error: %+v", res)
		}
		var status apierrors.APIStatus
		if !errors.As(err, &status) || !apierrors.IsInvalid(err) {
			t.Errorf("error %v is not the API server's Invalid", err)
		}
		for _, want := range []string{`spec.template.spec.nodeSelector: Invalid value: "bad key!"`,
			`spec.template.spec.tolerations[0].effect: Unsupported value: "Sometimes"`} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q: %v", want, err)
			}
		}
	})

	t.Run("a missing RuntimeClass is the admission plugin's word", func(t *testing.T) {
		r := f.runner(t, func(o *Options) { o.RuntimeClass = "gvisor" })
		job, out := newJob(t, "run-runtimeclass", runners.Step{Name: "train", Command: "true"})
		res := r.RunJob(ctx, job)
		if res.InfraError == nil || !strings.Contains(res.InfraError.Error(), `the Job's pod was refused: `) ||
			!strings.Contains(res.InfraError.Error(), `RuntimeClass "gvisor" not found`) {
			t.Fatalf("infra error %v\nlog:\n%s", res.InfraError, out)
		}
		waitGone(t, f.admin, "run-runtimeclass")
	})

	t.Run("a restarted worker watches the Job again", func(t *testing.T) {
		r := f.runner(t, nil)
		job, out := newJob(t, "run-reattach",
			runners.Step{Name: "train", Command: "sleep 1; echo '{\"loss\": 0.5}' > metrics.json"})
		job.Metrics = []string{"metrics.json"}
		// What the worker that died did: open the session, make the Job.
		sess, err := f.hub.Open(ctx, job.ID, r.agentJob(job), job.Dir, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.create(ctx, job, 1, sess.Token); err != nil {
			t.Fatal(err)
		}
		res := r.RunJob(ctx, job)
		if res.InfraError != nil || len(res.Steps) != 1 || !res.Steps[0].Succeeded() {
			t.Fatalf("result %+v\nlog:\n%s", res, out)
		}
		if !strings.Contains(out.String(), "watching Job "+namespace+"/"+jobName(job.ID, 1)+" again") {
			t.Errorf("log:\n%s", out)
		}
		if b, err := os.ReadFile(filepath.Join(job.Dir, "metrics.json")); err != nil || !strings.Contains(string(b), "0.5") {
			t.Errorf("metrics.json: %q %v", b, err)
		}
		jobs, err := f.admin.BatchV1().Jobs(namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelRun + "=run-reattach"})
		if err != nil || len(jobs.Items) > 1 {
			t.Errorf("the runner made a second Job: %d %v", len(jobs.Items), err)
		}
	})

	t.Run("a worker that shuts down detaches and the next one re-attaches", func(t *testing.T) {
		r := f.runner(t, nil)
		job, out := newJob(t, "run-detach", runners.Step{Name: "train", Command: "echo started; sleep 2; echo finished"})
		dctx, detach := context.WithCancelCause(ctx)
		defer detach(nil)
		go func() {
			waitOutput(t, out, "started")
			detach(runners.ErrDetach)
		}()
		res := r.RunJob(dctx, job)
		if !errors.Is(res.InfraError, runners.ErrDetach) {
			t.Fatalf("result %+v, want runners.ErrDetach\nlog:\n%s", res, out)
		}
		if j, err := r.find(ctx, job.ID); err != nil || j == nil {
			t.Fatalf("the detached Job is gone: %v", err)
		}
		job2, out2 := newJob(t, job.ID, job.Steps...)
		job2.Dir = job.Dir
		res = r.RunJob(ctx, job2)
		if res.InfraError != nil || len(res.Steps) != 1 || !res.Steps[0].Succeeded() {
			t.Fatalf("result %+v\nlog:\n%s", res, out2)
		}
		if !strings.Contains(out2.String(), "watching Job") {
			t.Errorf("the second worker's log does not say it watches the Job again:\n%s", out2)
		}
		// The second worker goes on with the log where the first stopped:
		// together they hold every line once.
		count := func(s, line string) int { return strings.Count("\n"+s, "\n"+line+"\n") }
		if both := out.String() + out2.String(); count(both, "started") != 1 || count(both, "finished") != 1 || count(out2.String(), "started") != 0 {
			t.Errorf("the two workers' logs do not hold the log once:\nfirst:\n%s\nsecond:\n%s", out, out2)
		}
		waitGone(t, f.admin, job.ID)
	})

	t.Run("the agent ends a step at the job's timeout", func(t *testing.T) {
		r := f.runner(t, nil)
		job, out := newJob(t, "run-timeout", runners.Step{Name: "train", Command: "sleep 60"})
		job.Timeout = 2 * time.Second
		start := time.Now()
		res := r.RunJob(ctx, job)
		if res.InfraError != nil || len(res.Steps) != 1 || !res.Steps[0].TimedOut {
			t.Fatalf("result %+v, want train timed out\nlog:\n%s", res, out)
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("took %v", d)
		}
		waitGone(t, f.admin, job.ID)
	})

	t.Run("sweep deletes the Jobs of runs no longer live", func(t *testing.T) {
		r := f.runner(t, nil)
		ids := []string{"run-sweep-dead", "run-sweep-live"}
		results := make(chan runners.JobResult, len(ids))
		for _, id := range ids {
			job, _ := newJob(t, id, runners.Step{Name: "train", Command: "sleep 600"})
			go func() { results <- r.RunJob(ctx, job) }()
		}
		for _, id := range ids {
			waitPod(t, f.admin, id, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
		}
		// The runner running them keeps them whatever live says.
		if err := r.Sweep(ctx, func(string) bool { return false }); err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			if j, err := r.find(ctx, id); err != nil || j == nil {
				t.Fatalf("the Job of %s, watched by the sweeping runner, is gone: %v", id, err)
			}
		}
		// Another worker's sweep deletes the Job of the run not live.
		other := f.runner(t, nil)
		if err := other.Sweep(ctx, func(id string) bool { return id != "run-sweep-dead" }); err != nil {
			t.Fatal(err)
		}
		res := <-results
		if res.InfraError == nil || !strings.Contains(res.InfraError.Error(), "was deleted by someone else") {
			t.Errorf("the swept run's result: %+v", res)
		}
		waitGone(t, f.admin, "run-sweep-dead")
		if j, err := r.find(ctx, "run-sweep-live"); err != nil || j == nil {
			t.Errorf("the live run's Job: %v %v", j, err)
		}
		if err := other.Sweep(ctx, func(string) bool { return false }); err != nil {
			t.Errorf("second sweep: %v", err)
		}
		<-results
		waitGone(t, f.admin, "run-sweep-live")
	})
}

// watchFirstJob returns the first Job of run id as the API server stored
// it, before the runner resumed it.
func watchFirstJob(t *testing.T, cs kubernetes.Interface, id string) <-chan *batchv1.Job {
	t.Helper()
	w, err := cs.BatchV1().Jobs(namespace).Watch(context.Background(), metav1.ListOptions{LabelSelector: LabelRun + "=" + RunLabel(id)})
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *batchv1.Job, 1)
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			if j, ok := ev.Object.(*batchv1.Job); ok {
				ch <- j
				return
			}
		}
		close(ch)
	}()
	return ch
}

// checkJobObject checks the Job the runner made for job, as stored.
func checkJobObject(t *testing.T, j *batchv1.Job, job runners.Job) {
	t.Helper()
	if j == nil {
		t.Fatal("no Job seen")
	}
	s := j.Spec
	pod := s.Template.Spec
	checks := map[string]bool{
		"created suspended":          s.Suspend != nil && *s.Suspend,
		"backoffLimit 0":             s.BackoffLimit != nil && *s.BackoffLimit == 0,
		"activeDeadlineSeconds":      s.ActiveDeadlineSeconds != nil && *s.ActiveDeadlineSeconds > int64(job.Timeout/time.Second),
		"ttlSecondsAfterFinished":    s.TTLSecondsAfterFinished != nil && *s.TTLSecondsAfterFinished == 3600,
		"run label":                  j.Labels[LabelRun] == job.ID && s.Template.Labels[LabelRun] == job.ID,
		"run annotation":             j.Annotations[AnnotationRun] == job.ID,
		"no service account token":   pod.AutomountServiceAccountToken != nil && !*pod.AutomountServiceAccountToken,
		"service account":            pod.ServiceAccountName == "mlbot-job",
		"restart never":              pod.RestartPolicy == corev1.RestartPolicyNever,
		"non-root pod":               pod.SecurityContext.RunAsNonRoot != nil && *pod.SecurityContext.RunAsNonRoot,
		"init container is mlbot's":  len(pod.InitContainers) == 1 && pod.InitContainers[0].Image == agentImage,
		"one container of the image": len(pod.Containers) == 1 && pod.Containers[0].Image == jobImage,
	}
	if len(pod.Containers) == 1 {
		c := pod.Containers[0]
		sc := c.SecurityContext
		checks["runs the agent"] = strings.Join(c.Command, " ") == "/mlbot/bin/mlbot agent"
		checks["read-only root"] = sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem
		checks["no privilege escalation"] = sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation
		checks["capabilities dropped"] = sc.Capabilities != nil && len(sc.Capabilities.Drop) == 1 && sc.Capabilities.Drop[0] == "ALL"
		checks["seccomp"] = sc.SeccompProfile != nil && sc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault
		checks["uid 1000"] = sc.RunAsUser != nil && *sc.RunAsUser == 1000
		var tokenFromSecret bool
		for _, e := range c.Env {
			if e.Name == "MLBOT_AGENT_TOKEN" && e.Value == "" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil &&
				e.ValueFrom.SecretKeyRef.Name == j.Name {
				tokenFromSecret = true
			}
		}
		checks["token from the Secret"] = tokenFromSecret
	}
	for what, ok := range checks {
		if !ok {
			t.Errorf("the Job as stored: not %s", what)
		}
	}
}

// waitPod waits for a pod of run id that satisfies ok.
func waitPod(t *testing.T, cs kubernetes.Interface, id string, ok func(*corev1.Pod) bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		pods, err := cs.CoreV1().Pods(namespace).List(context.Background(), metav1.ListOptions{LabelSelector: LabelRun + "=" + RunLabel(id)})
		if err == nil {
			for i := range pods.Items {
				if ok(&pods.Items[i]) {
					return
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("no pod of %s as wanted", id)
}

// waitOutput waits for out to hold want, for a minute at most.
func waitOutput(t *testing.T, out *buffer, want string) {
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Errorf("the job's output never held %q:\n%s", want, out)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitGone waits until run id has no Job, pod or Secret left.
func waitGone(t *testing.T, cs kubernetes.Interface, id string) {
	t.Helper()
	ctx := context.Background()
	sel := metav1.ListOptions{LabelSelector: LabelRun + "=" + RunLabel(id)}
	deadline := time.Now().Add(60 * time.Second)
	var left string
	for time.Now().Before(deadline) {
		jobs, err1 := cs.BatchV1().Jobs(namespace).List(ctx, sel)
		pods, err2 := cs.CoreV1().Pods(namespace).List(ctx, sel)
		secs, err3 := cs.CoreV1().Secrets(namespace).List(ctx, sel)
		if err := errors.Join(err1, err2, err3); err != nil {
			t.Fatal(err)
		}
		if len(jobs.Items)+len(pods.Items)+len(secs.Items) == 0 {
			return
		}
		left = ""
		for _, j := range jobs.Items {
			left += " job/" + j.Name
		}
		for _, p := range pods.Items {
			left += " pod/" + p.Name + "(" + string(p.Status.Phase) + ")"
		}
		for _, s := range secs.Items {
			left += " secret/" + s.Name
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("run %s left:%s", id, left)
}

// BenchmarkFirstLogLine measures the time from RunJob to the first byte
// of the step's output on the test's control plane: the Job's creation,
// the Job controller making its pod, the scheduler binding it, the test's
// kubelet starting the init container and `mlbot agent` as local
// processes (no image pull, no container runtime), the agent fetching the
// job and the source from the Hub, the step's start, and the runner's
// poll of the log (Options.PollInterval, 100 ms here).
func BenchmarkFirstLogLine(b *testing.B) {
	f := newFixture(b)
	r := f.runner(b, nil)
	var total time.Duration
	for i := 0; b.Loop(); i++ {
		id := fmt.Sprintf("bench-first-%d", i)
		job, out := newJob(b, id, runners.Step{Name: "train", Command: "echo hello"})
		start := time.Now()
		res := r.RunJob(context.Background(), job)
		first := out.firstByte()
		if res.InfraError != nil || first.IsZero() {
			b.Fatalf("infra error %v, output:\n%s", res.InfraError, out)
		}
		total += first.Sub(start)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/first-line")
}
