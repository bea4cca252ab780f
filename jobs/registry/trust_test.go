package registry_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/mlbot/mlbot/jobs/registry"
)

// TestVersionTrusted checks that a version keeps the trust of the run that
// made it, and that records written before versions carried it count as
// trusted only when a default-branch run made them.
func TestVersionTrusted(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"model.pt": "weights"})
	for _, tc := range []struct {
		run     string
		pr      int
		trusted bool
	}{{"main-run", 0, true}, {"member-pr", 3, true}, {"fork-pr", 4, false}} {
		v, err := r.Record(ctx, registry.Version{Repo: repo, SHA: "sha-" + tc.run, RunID: tc.run, PR: tc.pr, Trusted: tc.trusted}, dir, []string{"model.pt"})
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.Get(ctx, repo, v.Number)
		if err != nil {
			t.Fatal(err)
		}
		if got.Trusted != tc.trusted {
			t.Errorf("%s: stored version Trusted = %v, want %v", tc.run, got.Trusted, tc.trusted)
		}
	}
	for _, tc := range []struct {
		name, record string
		want         bool
	}{
		{"legacy push to main", `{"number":1,"sha":"a","run_id":"x","reason":"push to main","branch":"main"}`, true},
		{"legacy pull request", `{"number":2,"sha":"b","run_id":"y","reason":"pull request #4","pr":4}`, false},
		{"explicitly untrusted push", `{"number":3,"sha":"c","run_id":"z","trusted":false}`, false},
		{"explicitly trusted pull request", `{"number":4,"sha":"d","run_id":"w","pr":5,"trusted":true}`, true},
	} {
		var v registry.Version
		if err := json.Unmarshal([]byte(tc.record), &v); err != nil {
			t.Fatal(err)
		}
		if v.Trusted != tc.want || v.Number == 0 || v.RunID == "" {
			t.Errorf("%s: decoded %+v, want Trusted %v and the other fields kept", tc.name, v, tc.want)
		}
	}
}
