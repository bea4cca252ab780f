package jobs

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlbot/mlbot/bot"
)

var randomIDShape = regexp.MustCompile(`^[0-9a-f]{32}$`)

// runIDPattern is the shape of a run id that the run page (package web)
// accepts.
var runIDPattern = randomIDShape

// TestRunIDsAreRandomAndClaimedOnce shows that run ids are 128 random
// bits that nobody can compute from the repository and commit, while the
// same work still reaches the same run.
func TestRunIDsAreRandomAndClaimedOnce(t *testing.T) {
	ctx := context.Background()
	rdb := testRedis(t)
	w := newRouteWorkerOn(t, rdb, &fakeForge{}, nil)
	const sha = "2c70e997118ada09d114005cedaa23a2a6b41cf4"
	a := bot.Repo{Forge: "github", FullName: "acme/model"}
	b := bot.Repo{Forge: "github", FullName: "acme/other"}

	idA, err := w.runID(ctx, a, KindPullRequest, sha, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	idB, err := w.runID(ctx, b, KindPullRequest, sha, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{idA, idB} {
		if !randomIDShape.MatchString(id) {
			t.Errorf("run id %q, want 32 lower-case hex digits", id)
		}
		if strings.Contains(runKey(a, KindPullRequest, sha, 1, ""), id) || strings.Contains(runKey(b, KindPullRequest, sha, 1, ""), id) {
			t.Errorf("run id %q is (part of) the derived key", id)
		}
	}
	if idA == idB {
		t.Errorf("two repositories' identical commits share the run id %s", idA)
	}
	if again, err := w.runID(ctx, a, KindPullRequest, sha, 1, ""); err != nil || again != idA {
		t.Errorf("the same work again got id %q (%v), want %q", again, err, idA)
	}

	// Workers racing on the same new work (a delivery and its retry) all
	// get the one id.
	ids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i], _ = w.runID(ctx, a, KindBaseline, sha, 0, "main")
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] || id == "" {
			t.Fatalf("racing claims got ids %q, want one", ids)
		}
	}

	// Not derived: the same work on an install with an empty Redis gets
	// another id.
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if fresh, err := w.runID(ctx, a, KindPullRequest, sha, 1, ""); err != nil || fresh == idA {
		t.Errorf("after emptying Redis the same work got %q (%v), the id it had before", fresh, err)
	}
}

// TestClaimIDKeepsItsIDAsLongAsRuns checks the mapping outlives a finished
// run's asynq task id and lives as long as the run record, so that a late
// redelivery finds the run instead of training again.
func TestClaimIDKeepsItsIDAsLongAsRuns(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	if _, err := s.ClaimID(ctx, "deploy", deployKey("delivery", "deploy", "staging")); err != nil {
		t.Fatal(err)
	}
	ttl, err := s.rdb.TTL(ctx, s.key("id", "deploy", deployKey("delivery", "deploy", "staging"))).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl < runTTL-time.Minute || ttl > runTTL {
		t.Errorf("the id mapping lives %s, want %s", ttl, runTTL)
	}
}

// TestHeadAt drives the head history /ok-to-test approves by: the head a
// pull request had at a time is the newest head seen at or before it.
func TestHeadAt(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	type obs struct {
		sha      string
		at       time.Time
		received time.Duration // after t0, on mlbot's clock
	}
	tests := []struct {
		name    string
		history []obs
		comment time.Time
		want    string
		wantErr error
	}{
		{"nothing seen", nil, at(time.Minute), "", ErrNoHeadHistory},
		{"comment before the first head", []obs{{"a", at(time.Minute), 0}}, at(30 * time.Second), "", ErrBeforeHeads},
		{"the only head", []obs{{"a", at(0), 0}}, at(time.Minute), "a", nil},
		{"same second as the head counts", []obs{{"a", at(0), 0}}, at(0), "a", nil},
		{"written before a later push", []obs{{"a", at(0), 0}, {"b", at(2 * time.Minute), time.Minute}}, at(time.Minute), "a", nil},
		{"written after a later push", []obs{{"a", at(0), 0}, {"b", at(2 * time.Minute), time.Minute}}, at(3 * time.Minute), "b", nil},
		{"events delivered out of order", []obs{{"b", at(2 * time.Minute), 0}, {"a", at(0), time.Minute}}, at(time.Minute), "a", nil},
		{"a retried older event does not move the head back", []obs{{"a", at(0), 0}, {"b", at(2 * time.Minute), time.Minute}, {"a", at(0), 2 * time.Minute}}, at(3 * time.Minute), "b", nil},
		{"force-pushed back to an earlier head", []obs{{"a", at(0), 0}, {"b", at(time.Minute), time.Minute}, {"a", at(2 * time.Minute), 2 * time.Minute}}, at(3 * time.Minute), "a", nil},
		{"between the push away and back", []obs{{"a", at(0), 0}, {"b", at(time.Minute), time.Minute}, {"a", at(2 * time.Minute), 2 * time.Minute}}, at(90 * time.Second), "b", nil},
		{"two heads in one host second: the one received last", []obs{{"a", at(0), 0}, {"b", at(0), time.Second}}, at(time.Minute), "b", nil},
		{"an edit event re-states the head", []obs{{"a", at(0), 0}, {"b", at(time.Minute), time.Minute}, {"b", at(5 * time.Minute), 5 * time.Minute}}, at(10 * time.Minute), "b", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s := testStore(t)
			for _, o := range tc.history {
				if err := s.RecordHead(ctx, storeRepo, 7, o.sha, o.at, t0.Add(o.received)); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.HeadAt(ctx, storeRepo, 7, tc.comment)
			if !errors.Is(err, tc.wantErr) || got != tc.want {
				t.Errorf("HeadAt = %q, %v; want %q, %v", got, err, tc.want, tc.wantErr)
			}
			// Another pull request's history is its own.
			if got, err := s.HeadAt(ctx, storeRepo, 8, tc.comment); !errors.Is(err, ErrNoHeadHistory) {
				t.Errorf("pull request 8: HeadAt = %q, %v; want ErrNoHeadHistory", got, err)
			}
		})
	}
}

// TestHeadHistoryIsBounded keeps the newest observations only.
func TestHeadHistoryIsBounded(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range headHistory + 20 {
		if err := s.RecordHead(ctx, storeRepo, 1, "sha"+string(rune('a'+i%26)), t0.Add(time.Duration(i)*time.Minute), t0.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	k := s.key("prheads", repoKey(storeRepo), "1")
	if n, err := s.rdb.ZCard(ctx, k).Result(); err != nil || n != headHistory {
		t.Errorf("%d observations kept (%v), want %d", n, err, headHistory)
	}
	// The oldest were dropped: a comment from then can no longer be placed.
	if _, err := s.HeadAt(ctx, storeRepo, 1, t0.Add(time.Minute)); !errors.Is(err, ErrBeforeHeads) {
		t.Errorf("HeadAt before the kept history = %v, want ErrBeforeHeads", err)
	}
}
