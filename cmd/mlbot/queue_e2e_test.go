package main

import (
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlbot/mlbot/configs"
)

// A repository whose .mlbot.yml says `queue: gpu` is trained by a worker
// that serves the gpu queue (`mlbot worker --queues gpu`), not by mlbot
// serve, which serves only the default queue: serve checks the commit
// out, sees the queue and hands the run over; the status says the run
// waits for the gpu workers until one starts and takes it.
func TestPipelineQueueRoutesRunsToItsWorkers(t *testing.T) {
	const key = "0123456789abcdef0123456789abcdef-queue-test"
	e := newE2E(t, "github", func(cfg *configs.Server) { cfg.TaskKey = key })
	files := e.model("0.90")
	files[".mlbot.yml"] = strings.Replace(files[".mlbot.yml"], "  timeout: 1m\n", "  timeout: 1m\n  queue: gpu\n", 1)
	e.mainSHA = e.commit("main", files, "a model for the GPUs")
	e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
	// No gpu worker runs yet: serve routes the run, checks it out, hands
	// it over, and the status says what it waits for.
	deadline := time.Now().Add(30 * time.Second)
	for !e.sb.hasStatus(e.mainSHA, "queued for the gpu workers") {
		if time.Now().After(deadline) {
			t.Fatalf("no status says the run waits for the gpu workers: %+v", e.sb.statuses(e.mainSHA))
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.settle()
	if n := trainingsIn(e.dataDir); n != 0 {
		t.Fatalf("serve trained %d times", n)
	}
	// The gpu worker: the same Redis and task key, a machine (data
	// directory) of its own, only the gpu queue, no HTTP.
	cfg := defaultServerConfig()
	cfg.RedisURL, cfg.TaskKey = e.app.cfg.RedisURL, key
	cfg.DataDir = filepath.Join(t.TempDir(), "gpu-worker")
	cfg.Queues = []string{"gpu"}
	cfg.ShutdownTimeout = 5 * time.Second
	e.sb.configure(cfg)
	cfg.Listen, cfg.PublicURL = "127.0.0.1:0", e.url
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	gpu, err := newApp(cfg, slog.New(slog.NewTextHandler(testWriter{t}, nil)), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := gpu.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gpu.Shutdown)

	if st := e.final(e.mainSHA); st.State != "success" {
		t.Fatalf("status %+v", st)
	}
	if serve, worker := trainingsIn(e.dataDir), trainingsIn(cfg.DataDir); serve != 0 || worker != 1 {
		t.Errorf("trainings: serve %d, gpu worker %d; want 0 and 1", serve, worker)
	}
}

// hasStatus reports whether a status of sha has desc in its description.
func (h *fakeHost) hasStatus(sha, desc string) bool {
	for _, s := range h.statuses(sha) {
		if strings.Contains(s.Description, desc) {
			return true
		}
	}
	return false
}
