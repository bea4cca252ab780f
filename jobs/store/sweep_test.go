package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mlbot/mlbot/bot"
)

// TestRecentSweeps writes sweeps as /sweep does, saving each again as it
// advances, and lists a repository's as its page does: newest first, one
// entry a sweep however often it was saved, the other repository's apart,
// an expired record left out, the index bounded and expiring with the
// sweeps it names.
func TestRecentSweeps(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	other := bot.Repo{Forge: "gitlab", FullName: "group/other"}
	t0 := time.Now().Add(-time.Hour).UTC()
	var ids []string
	for i := range 4 {
		sw := &Sweep{ID: fmt.Sprintf("%032x", i+1), Repo: storeRepo, SHA: fmt.Sprint("c", i), Planned: 2, State: SweepRunning,
			Created: t0.Add(time.Duration(i) * time.Minute)}
		if err := s.SaveSweep(ctx, sw); err != nil {
			t.Fatal(err)
		}
		sw.State, sw.Trials = SweepFinished, []SweepTrial{{Index: 0, Params: map[string]string{"lr": "0.1"}, RunID: "r"}}
		if err := s.SaveSweep(ctx, sw); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sw.ID)
	}
	if err := s.SaveSweep(ctx, &Sweep{ID: fmt.Sprintf("%032x", 99), Repo: other, Created: t0.Add(90 * time.Second)}); err != nil {
		t.Fatal(err)
	}

	got, err := s.RecentSweeps(ctx, RepoKey(storeRepo), 3)
	if err != nil {
		t.Fatal(err)
	}
	if ids, want := sweepIDs(got), []string{ids[3], ids[2], ids[1]}; !slices.Equal(ids, want) {
		t.Errorf("RecentSweeps(3) = %v, want %v", ids, want)
	}
	if got[0].State != SweepFinished || len(got[0].Trials) != 1 {
		t.Errorf("RecentSweeps returned a stale record: %+v", got[0])
	}
	all, err := s.RecentSweeps(ctx, RepoKey(storeRepo), 0)
	if err != nil || len(all) != 4 {
		t.Errorf("RecentSweeps(0) = %d sweeps, %v; want 4", len(all), err)
	}
	if o, err := s.RecentSweeps(ctx, RepoKey(other), 0); err != nil || len(o) != 1 || o[0].ID != fmt.Sprintf("%032x", 99) {
		t.Errorf("the other repository's sweeps: %v, %v", sweepIDs(o), err)
	}
	if none, err := s.RecentSweeps(ctx, "github:acme/none", 0); err != nil || len(none) != 0 {
		t.Errorf("a repository without sweeps: %v, %v", sweepIDs(none), err)
	}

	// A sweep whose record expired is left out (as RecentRuns leaves
	// out a run: n bounds the index entries read).
	if err := s.rdb.Del(ctx, s.sweepKey(ids[2])).Err(); err != nil {
		t.Fatal(err)
	}
	got, err = s.RecentSweeps(ctx, RepoKey(storeRepo), 3)
	if err != nil {
		t.Fatal(err)
	}
	if ids, want := sweepIDs(got), []string{ids[3], ids[1]}; !slices.Equal(ids, want) {
		t.Errorf("after an expiry RecentSweeps(3) = %v, want %v", ids, want)
	}
	if _, err := s.GetSweep(ctx, ids[2]); !errors.Is(err, ErrNoSweep) {
		t.Errorf("GetSweep of the expired sweep: %v", err)
	}

	// The index expires with the sweeps it names.
	key := s.sweepsKey(RepoKey(storeRepo))
	if ttl, err := s.rdb.TTL(ctx, key).Result(); err != nil || ttl < RunTTL-time.Minute || ttl > RunTTL {
		t.Errorf("%s lives %s (%v), want %s", key, ttl, err, RunTTL)
	}

	// It keeps the newest RecentSweeps.
	for i := range RecentSweeps {
		if err := s.SaveSweep(ctx, &Sweep{ID: fmt.Sprintf("%032x", 1000+i), Repo: storeRepo, Created: time.Now().Add(time.Duration(i) * time.Millisecond)}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.rdb.ZCard(ctx, key).Result(); err != nil || n != RecentSweeps {
		t.Errorf("%s holds %d (%v), want %d", key, n, err, RecentSweeps)
	}
	if newest, err := s.RecentSweeps(ctx, RepoKey(storeRepo), 1); err != nil || len(newest) != 1 || newest[0].ID != fmt.Sprintf("%032x", 1000+RecentSweeps-1) {
		t.Errorf("the newest sweep is not first: %v %v", sweepIDs(newest), err)
	}
}

func sweepIDs(sws []*Sweep) []string {
	var out []string
	for _, sw := range sws {
		out = append(out, sw.ID)
	}
	return out
}
