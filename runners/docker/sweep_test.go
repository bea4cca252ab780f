package docker

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/mlbot/mlbot/runners"
)

// startPlain creates and starts a container for job id as RunJob would,
// running script in place of the agent, and returns its id.
func startPlain(t *testing.T, r *Runner, id, script string) string {
	t.Helper()
	ctx := context.Background()
	dir := runDir(r.opts.RunDir, id)
	if err := os.MkdirAll(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	opts, err := r.createOptions(runners.Job{ID: id, Image: testEnv.image}, "token", dir)
	if err != nil {
		t.Fatal(err)
	}
	opts.Config.Entrypoint, opts.Config.Cmd = []string{"/bin/sh", "-c", script}, nil
	c, err := r.engine.ContainerCreate(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.remove(context.Background(), c.ID) })
	if _, err := r.engine.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	return c.ID
}

func TestSweep(t *testing.T) {
	r := plainRunner(t, Options{})
	ctx := context.Background()
	ids := []string{"sweep-live", "sweep-dead", "sweep-watched", "sweep-exited"}
	for _, id := range ids {
		script := "sleep 60"
		if id == "sweep-exited" {
			script = "true"
		}
		startPlain(t, r, id, script)
	}
	// A container mlbot did not make, though it has a run label.
	other, err := r.engine.ContainerCreate(ctx, client.ContainerCreateOptions{Image: testEnv.image,
		Config: &container.Config{Labels: map[string]string{LabelRun: "sweep-dead"}, Cmd: []string{"true"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.remove(ctx, other.ID)
	if !r.active.Begin("sweep-watched") {
		t.Fatal("begin")
	}
	defer r.active.End("sweep-watched")

	if err := r.Sweep(ctx, func(id string) bool { return id == "sweep-live" }); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		_, found, err := r.find(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		_, statErr := os.Stat(runDir(r.opts.RunDir, id))
		keep := id == "sweep-live" || id == "sweep-watched"
		if found != keep || (statErr == nil) != keep {
			t.Errorf("%s: container found %v, run directory %v; want both %v", id, found, statErr, keep)
		}
	}
	if _, err := r.engine.ContainerInspect(ctx, other.ID, client.ContainerInspectOptions{}); err != nil {
		t.Errorf("a container without %s=true was swept: %v", LabelManaged, err)
	}
}

func TestRunJobImageNotFound(t *testing.T) {
	r := plainRunner(t, Options{})
	res := r.RunJob(context.Background(), runners.Job{ID: "no-image", Image: "mlbot-test/absent:0",
		Steps: []runners.Step{{Name: "train", Command: "true"}}})
	if res.InfraError == nil || !strings.Contains(res.InfraError.Error(), `image "mlbot-test/absent:0" not found`) {
		t.Fatalf("InfraError = %v, want the image not found", res.InfraError)
	}
	if last, ok := res.Last(); !ok || last.Name != "train" || last.Succeeded() {
		t.Errorf("steps %+v, want train without an outcome", res.Steps)
	}
}
