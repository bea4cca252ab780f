package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/jobs/deploystate"
	"github.com/mlbot/mlbot/jobs/registry"
)

var deployRepo = bot.Repo{Forge: "github", FullName: "acme/model", CloneURL: "http://127.0.0.1:1/none.git", DefaultBranch: "main"}

// recordVersions puts n versions of deployRepo in the registry.
func recordVersions(t *testing.T, w *Worker, n int) []*registry.Version {
	t.Helper()
	var out []*registry.Version
	for i := range n {
		v, err := w.registry.Record(context.Background(), registry.Version{Repo: repoKey(deployRepo), SHA: strings.Repeat(string(rune('a'+i)), 40),
			RunID: "run-" + string(rune('a'+i))}, t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, &v)
	}
	return out
}

func TestRequestDeployDropsOlderQueuedVersions(t *testing.T) {
	ctx := context.Background()
	w := newRouteWorker(t, &fakeForge{}, nil)
	vs := recordVersions(t, w, 2)
	d1, err := w.requestDeploy(ctx, deployKey("t", "1"), deployRepo, "main", "production", vs[0], "first", "maria", 0, registry.KindRequest, false)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := w.requestDeploy(ctx, deployKey("t", "2"), deployRepo, "main", "production", vs[1], "second", "maria", 0, registry.KindRequest, false)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := w.registry.GetDeploy(ctx, d1.ID); got.State != deploystate.Dropped || !strings.Contains(got.Detail, "v2") {
		t.Errorf("older queued deploy = %s (%s), want dropped for v2", got.State, got.Detail)
	}
	// A rollback queues an older version on purpose: it drops nothing.
	if _, err := w.requestDeploy(ctx, deployKey("t", "3"), deployRepo, "main", "production", vs[0], "rollback", "maria", 0, registry.KindRollback, false); err != nil {
		t.Fatal(err)
	}
	if got, _ := w.registry.GetDeploy(ctx, d2.ID); got.State != deploystate.Queued {
		t.Errorf("a rollback dropped the queued v2 deploy: %s", got.State)
	}
}

func TestDeployWaitsForItsTurn(t *testing.T) {
	ctx := context.Background()
	w := newRouteWorker(t, &fakeForge{}, nil)
	vs := recordVersions(t, w, 2)
	if _, err := w.requestDeploy(ctx, deployKey("t", "4"), deployRepo, "main", "staging", vs[1], "first", "maria", 0, registry.KindRollback, false); err != nil {
		t.Fatal(err)
	}
	second, err := w.requestDeploy(ctx, deployKey("t", "5"), deployRepo, "main", "staging", vs[0], "second", "maria", 0, registry.KindRollback, false)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(DeployPayload{DeployID: second.ID, Repo: deployRepo, Ref: "main"})
	if err := w.handleDeploy(ctx, asynq.NewTask(TypeDeploy, b)); !errors.Is(err, errWaitTurn) {
		t.Fatalf("second deploy ran before the first: err = %v", err)
	}
}

func TestDeployInterruptedIsNotRunTwice(t *testing.T) {
	ctx := context.Background()
	f := &fakeForge{}
	w := newRouteWorker(t, f, nil)
	vs := recordVersions(t, w, 1)
	d, err := w.requestDeploy(ctx, deployKey("t", "6"), deployRepo, "main", "production", vs[0], "merge of #3", "", 3, registry.KindMerge, false)
	if err != nil {
		t.Fatal(err)
	}
	// A worker took it and died: the record says running, the lease lapsed.
	d.State = deploystate.Running
	if err := w.registry.SaveDeploy(ctx, *d); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(DeployPayload{DeployID: d.ID, Repo: deployRepo, Ref: "main"})
	if err := w.handleDeploy(ctx, asynq.NewTask(TypeDeploy, b)); err != nil {
		t.Fatal(err)
	}
	got, _ := w.registry.GetDeploy(ctx, d.ID)
	if got.State != deploystate.Failed || !strings.Contains(got.Detail, "not run again") {
		t.Errorf("interrupted deploy = %s (%s), want failed without running again", got.State, got.Detail)
	}
	if n := len(f.comments[3]); n != 1 || !strings.Contains(f.comments[3][0].Body, "stopped before it finished") {
		t.Errorf("pull request #3 got %d replies: %+v", n, f.comments[3])
	}
	// The environment is free for the next deploy.
	if n, _ := w.store.DeployLine(repoKey(deployRepo), "production").Len(ctx); n != 0 {
		t.Errorf("deploy queue holds %d entries after the interrupted deploy", n)
	}
}
