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

// A repository whose .mlbot.yml says `queue: gpu` is trained by the
// worker that serves the gpu queue (`mlbot worker --queues gpu`), not by
// mlbot serve, which serves only the default queue: serve checks the
// commit out, sees the queue and hands the run over, and the status says
// it waits for the gpu workers meanwhile.
func TestPipelineQueueRoutesRunsToItsWorkers(t *testing.T) {
	const key = "0123456789abcdef0123456789abcdef-queue-test"
	e := newE2E(t, "github", func(cfg *configs.Server) { cfg.TaskKey = key })
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

	files := e.model("0.90")
	files[".mlbot.yml"] = strings.Replace(files[".mlbot.yml"], "  timeout: 1m\n", "  timeout: 1m\n  queue: gpu\n", 1)
	e.mainSHA = e.commit("main", files, "a model for the GPUs")
	e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
	if st := e.final(e.mainSHA); st.State != "success" {
		t.Fatalf("status %+v", st)
	}
	if serve, worker := trainingsIn(e.dataDir), trainingsIn(cfg.DataDir); serve != 0 || worker != 1 {
		t.Errorf("trainings: serve %d, gpu worker %d; want 0 and 1", serve, worker)
	}
	waited := false
	for _, s := range e.sb.statuses(e.mainSHA) {
		if strings.Contains(s.Description, "queued for the gpu workers") {
			waited = true
		}
	}
	if !waited {
		t.Errorf("no status said the run waits for the gpu workers: %+v", e.sb.statuses(e.mainSHA))
	}
}
