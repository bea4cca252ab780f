package store

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mlbot/mlbot/bot"
)

// TestRunIndexes writes runs as the workers do and reads them back as the
// pages list them: newest first per repository, default-branch runs
// oldest first, repositories by their newest run, each index bounded and
// expiring with the runs it names.
func TestRunIndexes(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	other := bot.Repo{Forge: "gitlab", FullName: "group/sub/other"}
	t0 := time.Now().Add(-time.Hour).UTC()
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }

	// Five runs of storeRepo, alternating pull request and baseline, and
	// one of other in between.
	var ids []string
	for i := range 5 {
		kind := KindPullRequest
		if i%2 == 0 {
			kind = KindBaseline
		}
		r := &Run{ID: fmt.Sprintf("%032x", i+1), Kind: kind, Repo: storeRepo, SHA: fmt.Sprint("c", i), State: RunQueued, Created: at(i * 10)}
		if created, err := s.CreateRun(ctx, r); err != nil || !created {
			t.Fatalf("CreateRun %d = %v, %v", i, created, err)
		}
		// Later saves of the same run keep one entry.
		r.State = RunFinished
		if err := s.SaveRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	if err := s.SaveRun(ctx, &Run{ID: fmt.Sprintf("%032x", 99), Kind: KindBaseline, Repo: other, Created: at(25)}); err != nil {
		t.Fatal(err)
	}

	recent, err := s.RecentRuns(ctx, RepoKey(storeRepo), 3)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := runIDs(recent), []string{ids[4], ids[3], ids[2]}; !slices.Equal(got, want) {
		t.Errorf("RecentRuns(3) = %v, want %v", got, want)
	}
	if recent[0].State != RunFinished {
		t.Errorf("RecentRuns returned a stale record: %s", recent[0].State)
	}
	all, err := s.RecentRuns(ctx, RepoKey(storeRepo), 0)
	if err != nil || len(all) != 5 {
		t.Errorf("RecentRuns(0) = %d runs, %v; want 5", len(all), err)
	}
	base, err := s.BaselineRuns(ctx, RepoKey(storeRepo))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := runIDs(base), []string{ids[0], ids[2], ids[4]}; !slices.Equal(got, want) {
		t.Errorf("BaselineRuns = %v, want %v (oldest first, baselines only)", got, want)
	}
	repos, err := s.RunRepos(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{RepoKey(storeRepo), RepoKey(other)}; !slices.Equal(repos, want) {
		t.Errorf("RunRepos = %v, want %v (most recently active first)", repos, want)
	}

	// A run whose record expired is left out of the lists.
	if err := s.rdb.Del(ctx, s.runKey(ids[3])).Err(); err != nil {
		t.Fatal(err)
	}
	recent, err = s.RecentRuns(ctx, RepoKey(storeRepo), 3)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := runIDs(recent), []string{ids[4], ids[2]}; !slices.Equal(got, want) {
		t.Errorf("after an expiry RecentRuns(3) = %v, want %v", got, want)
	}

	// Every index expires with the runs it names.
	for _, k := range []string{s.runsKey(RepoKey(storeRepo)), s.baselineRunsKey(RepoKey(storeRepo)), s.reposKey()} {
		ttl, err := s.rdb.TTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl < RunTTL-time.Minute || ttl > RunTTL {
			t.Errorf("%s lives %s, want %s", k, ttl, RunTTL)
		}
	}

	// A repository whose newest run is older than runs are kept is no
	// longer listed.
	stale := bot.Repo{Forge: "github", FullName: "acme/stale"}
	if err := s.SaveRun(ctx, &Run{ID: fmt.Sprintf("%032x", 100), Repo: stale, Created: time.Now().Add(-RunTTL - time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if repos, _ := s.RunRepos(ctx); slices.Contains(repos, RepoKey(stale)) {
		t.Errorf("RunRepos lists %s, whose only run is older than %s", RepoKey(stale), RunTTL)
	}
}

// TestRunIndexesAreBounded writes more runs than the indexes keep.
func TestRunIndexesAreBounded(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	t0 := time.Now().Add(-time.Hour)
	n := RecentRuns + 7
	for i := range n {
		kind := KindPullRequest
		if i >= n-BaselineHistory-3 {
			kind = KindBaseline
		}
		r := &Run{ID: fmt.Sprintf("%032x", i), Kind: kind, Repo: storeRepo, Created: t0.Add(time.Duration(i) * time.Millisecond)}
		if err := s.SaveRun(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		key  string
		want int64
	}{{s.runsKey(RepoKey(storeRepo)), RecentRuns}, {s.baselineRunsKey(RepoKey(storeRepo)), BaselineHistory}} {
		if got, err := s.rdb.ZCard(ctx, c.key).Result(); err != nil || got != c.want {
			t.Errorf("%s holds %d (%v), want %d", c.key, got, err, c.want)
		}
	}
	recent, err := s.RecentRuns(ctx, RepoKey(storeRepo), 1)
	if err != nil || len(recent) != 1 || recent[0].ID != fmt.Sprintf("%032x", n-1) {
		t.Errorf("the newest run is not first: %v %v", runIDs(recent), err)
	}
	base, err := s.BaselineRuns(ctx, RepoKey(storeRepo))
	if err != nil || len(base) != BaselineHistory || base[0].ID != fmt.Sprintf("%032x", n-BaselineHistory) {
		t.Errorf("BaselineRuns kept %d from %v (%v), want the newest %d", len(base), runIDs(base[:1]), err, BaselineHistory)
	}
}

func runIDs(runs []*Run) []string {
	var out []string
	for _, r := range runs {
		out = append(out, r.ID)
	}
	return out
}
