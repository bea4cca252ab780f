package registry_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/mlbot/mlbot/jobs/deploystate"
	"github.com/mlbot/mlbot/jobs/registry"
)

// TestDeployKeepsItsVerification stores a verified deploy and reads its
// samples back, as the deploy page draws them.
func TestDeployKeepsItsVerification(t *testing.T) {
	ctx := context.Background()
	reg := newRegistry(t)
	max := 0.01
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	v := &registry.Verification{Query: "sum(rate(model_errors_total[5m]))", Max: &max}
	for i := range registry.MaxVerificationSamples + 3 {
		v.AddSamples(registry.Sample{At: t0.Add(time.Duration(i) * 30 * time.Second), Value: float64(i) / 1e5})
	}
	if len(v.Samples) != registry.MaxVerificationSamples || v.Samples[0].Value != 3/1e5 {
		t.Fatalf("AddSamples kept %d from %v, want the newest %d", len(v.Samples), v.Samples[0], registry.MaxVerificationSamples)
	}
	d := registry.Deploy{ID: registry.NewDeployID(), Repo: repo, Env: "production", Version: 1, State: deploystate.Succeeded,
		Requested: t0, Verification: v}
	if err := reg.SaveDeploy(ctx, d); err != nil {
		t.Fatal(err)
	}
	got, err := reg.GetDeploy(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Verification, v) {
		t.Errorf("verification read back differs:\n got %+v\nwant %+v", got.Verification, v)
	}
}
