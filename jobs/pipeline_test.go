package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/hibiken/asynq"
)

// TestPipelineWaitsForTheRunsOtherRunner shows that a commit being run by
// one worker (say, as a pull request's merge base) is not run again by
// another: the second waits its turn, without counting as a failure.
func TestPipelineWaitsForTheRunsOtherRunner(t *testing.T) {
	ctx := context.Background()
	w := newRouteWorker(t, &fakeForge{}, nil)
	p := PipelinePayload{Kind: KindBaseline, Repo: deployRepo, SHA: "0123456789abcdef0123456789abcdef01234567", Branch: "main", Trusted: true}
	var err error
	if p.RunID, err = w.runID(ctx, p.Repo, p.Kind, p.SHA, 0, p.Branch); err != nil {
		t.Fatal(err)
	}
	lease, ok, err := w.store.Lease(ctx, "run:"+p.RunID, runLease)
	if err != nil || !ok {
		t.Fatalf("lease: %v %v", ok, err)
	}
	defer lease.Release()
	b, _ := json.Marshal(p)
	err = w.handlePipeline(ctx, asynq.NewTask(TypePipeline, b))
	if !errors.Is(err, errWaitTurn) {
		t.Fatalf("handlePipeline = %v, want it to wait its turn", err)
	}
	if isFailure(err) {
		t.Error("waiting counts as a failure and would use up the task's retries")
	}
}
