package registry_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/mlbot/mlbot/jobs/deploystate"
	"github.com/mlbot/mlbot/jobs/registry"
)

// TestPolicyDecide shows what each rule keeps, and why, on small
// histories; every version no rule names is dropped.
func TestPolicyDecide(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	// main(n, age) is a default-branch version, pr(n, pr, age) a pull
	// request's.
	main := func(n int, age time.Duration) registry.Version {
		return registry.Version{Repo: repo, Number: n, Created: now.Add(-age), Branch: "main", Reason: "push to main"}
	}
	pr := func(n, number int, age time.Duration) registry.Version {
		return registry.Version{Repo: repo, Number: n, PR: number, Created: now.Add(-age), Branch: "feature"}
	}
	dep := func(v int, state string) registry.Deploy { return registry.Deploy{Version: v, State: state} }
	const (
		ok   = deploystate.Succeeded
		fail = deploystate.Failed
	)
	old := 100 * day
	tests := []struct {
		name     string
		policy   registry.Policy
		versions []registry.Version
		deploys  map[string][]registry.Deploy // newest first
		keep     map[int][]string             // version → reasons
	}{
		{
			name:     "nothing deployed, nothing recent: the last K of the default branch",
			policy:   registry.Policy{DefaultBranch: 2},
			versions: []registry.Version{main(1, old), main(2, old), pr(3, 7, old), main(4, old)},
			keep: map[int][]string{
				4: {"one of the last 2 versions of the default branch"},
				2: {"one of the last 2 versions of the default branch"},
			},
		},
		{
			name:     "pull request versions never count as the default branch's",
			policy:   registry.Policy{DefaultBranch: 1},
			versions: []registry.Version{main(1, old), pr(2, 5, old), pr(3, 5, old)},
			keep:     map[int][]string{1: {"one of the last 1 versions of the default branch"}},
		},
		{
			name:     "everything younger than the age, nothing older",
			policy:   registry.Policy{MaxAge: 30 * day},
			versions: []registry.Version{main(1, 31*day), pr(2, 4, 29*day), main(3, time.Minute), pr(4, 4, 30*day)},
			keep: map[int][]string{
				2: {"recorded less than 30 days ago"},
				3: {"recorded less than 30 days ago"},
			},
		},
		{
			name:     "the running version and the rollback targets of each environment",
			policy:   registry.Policy{Deploys: 3},
			versions: []registry.Version{main(1, old), main(2, old), main(3, old), main(4, old), main(5, old), pr(6, 9, old)},
			deploys: map[string][]registry.Deploy{
				// Failed deploys are no rollback targets and do not count.
				"production": {dep(5, ok), dep(4, fail), dep(3, ok), dep(2, ok), dep(1, ok)},
				"staging":    {dep(6, ok), dep(5, ok)},
			},
			keep: map[int][]string{
				5: {"runs in production now", "rollback target in staging (deploy 2 of the last 3)"},
				3: {"rollback target in production (deploy 2 of the last 3)"},
				2: {"rollback target in production (deploy 3 of the last 3)"},
				6: {"runs in staging now"},
			},
		},
		{
			name:     "with no rollback targets the running version still stays",
			policy:   registry.Policy{},
			versions: []registry.Version{main(1, old), main(2, old)},
			deploys:  map[string][]registry.Deploy{"production": {dep(1, ok), dep(2, ok)}},
			keep:     map[int][]string{1: {"runs in production now"}},
		},
		{
			name:     "a deploy under way keeps its version, queued or running",
			policy:   registry.Policy{Deploys: 1},
			versions: []registry.Version{main(1, old), main(2, old), pr(3, 4, old), main(4, old)},
			deploys: map[string][]registry.Deploy{
				"production": {dep(4, deploystate.Queued), dep(2, deploystate.Running), dep(1, ok)},
			},
			keep: map[int][]string{
				4: {"a deploy to production is under way"},
				2: {"a deploy to production is under way"},
				1: {"runs in production now"},
			},
		},
		{
			name:     "a version redeployed by a rollback counts once per environment",
			policy:   registry.Policy{Deploys: 3},
			versions: []registry.Version{main(1, old), main(2, old), main(3, old)},
			deploys:  map[string][]registry.Deploy{"production": {dep(1, ok), dep(2, ok), dep(1, ok), dep(3, ok)}},
			keep: map[int][]string{
				1: {"runs in production now"},
				2: {"rollback target in production (deploy 2 of the last 3)"},
			},
		},
		{
			name:     "rules add up, each reason given",
			policy:   registry.Policy{Deploys: 2, DefaultBranch: 1, MaxAge: day},
			versions: []registry.Version{main(1, old), main(2, old), main(3, time.Hour), pr(4, 8, time.Hour)},
			deploys:  map[string][]registry.Deploy{"production": {dep(3, ok), dep(1, ok)}},
			keep: map[int][]string{
				3: {"runs in production now", "one of the last 1 versions of the default branch", "recorded less than 1 day ago"},
				1: {"rollback target in production (deploy 2 of the last 2)"},
				4: {"recorded less than 1 day ago"},
			},
		},
		{
			name:     "a deploy of a version already dropped is ignored",
			policy:   registry.Policy{Deploys: 5},
			versions: []registry.Version{main(7, old), main(8, old)},
			deploys:  map[string][]registry.Deploy{"production": {dep(8, ok), dep(3, ok)}},
			keep:     map[int][]string{8: {"runs in production now"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.policy.Decide(tt.versions, tt.deploys, now)
			got := map[int][]string{}
			for _, k := range d.Keep {
				got[k.Version.Number] = k.Reasons
			}
			if !reflect.DeepEqual(got, tt.keep) {
				t.Errorf("kept\n got: %v\nwant: %v", got, tt.keep)
			}
			if len(d.Keep)+len(d.Drop) != len(tt.versions) {
				t.Errorf("%d kept + %d dropped of %d versions", len(d.Keep), len(d.Drop), len(tt.versions))
			}
			for _, v := range d.Drop {
				if _, kept := tt.keep[v.Number]; kept {
					t.Errorf("v%d both kept and dropped", v.Number)
				}
			}
			for i := 1; i < len(d.Drop); i++ {
				if d.Drop[i-1].Number < d.Drop[i].Number {
					t.Errorf("dropped versions not newest first: %d before %d", d.Drop[i-1].Number, d.Drop[i].Number)
				}
			}
		})
	}
}
