package store

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/mlbot/mlbot/bot"
)

func TestServedRepos(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	now := time.Now()
	old := bot.Repo{Forge: "gitlab", FullName: "ml/old", DefaultBranch: "main"}
	renamed := storeRepo
	renamed.DefaultBranch = "trunk"
	for _, r := range []struct {
		repo bot.Repo
		seen time.Time
	}{
		{storeRepo, now.Add(-time.Hour)},
		{old, now.Add(-ServedTTL - time.Hour)},
		// A newer delivery of the same repository (its default branch
		// renamed) replaces the older one.
		{renamed, now},
	} {
		if err := s.RememberRepo(ctx, r.repo, r.seen); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.ServedRepos(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := []bot.Repo{renamed}; !reflect.DeepEqual(got, want) {
		t.Fatalf("ServedRepos = %+v, want %+v", got, want)
	}
	// The stale entry was dropped, not only skipped.
	if n := s.rdb.HLen(ctx, s.servedKey()).Val(); n != 1 {
		t.Errorf("served hash holds %d entries after the read, want 1", n)
	}
}

func TestLookupIDDoesNotClaim(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	if id, err := s.LookupID(ctx, "run", "k"); err != nil || id != "" {
		t.Fatalf("LookupID before any claim = %q, %v; want \"\", nil", id, err)
	}
	if id, _ := s.LookupID(ctx, "run", "k"); id != "" {
		t.Fatalf("a lookup claimed the key: %q", id)
	}
	claimed, err := s.ClaimID(ctx, "run", "k")
	if err != nil {
		t.Fatal(err)
	}
	if id, err := s.LookupID(ctx, "run", "k"); err != nil || id != claimed {
		t.Fatalf("LookupID after the claim = %q, %v; want %q", id, err, claimed)
	}
}
