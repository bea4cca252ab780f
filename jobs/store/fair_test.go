package store

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// fairDrain claims and acknowledges every run of queue's fair line, and
// returns their ids in the order they were offered.
func fairDrain(t *testing.T, s *Store, queue string) []string {
	t.Helper()
	ctx := context.Background()
	var got []string
	for range 1000 {
		e, ok, err := s.FairClaim(ctx, queue, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return got
		}
		got = append(got, e.RunID)
		if want := "task of " + e.RunID; string(e.Task) != want {
			t.Errorf("task of %s = %q, want %q", e.RunID, e.Task, want)
		}
		if err := s.FairAck(ctx, queue, e.Repo, e.RunID); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("fair line never emptied")
	return nil
}

func TestFairLineTakesTurnsBetweenRepositories(t *testing.T) {
	type push struct{ repo, id string }
	cases := []struct {
		name   string
		pushes []push
		want   []string
	}{
		{"one repository keeps its order",
			[]push{{"a", "a1"}, {"a", "a2"}, {"a", "a3"}},
			[]string{"a1", "a2", "a3"}},
		{"a burst waits behind a later repository's first run",
			[]push{{"a", "a1"}, {"a", "a2"}, {"a", "a3"}, {"a", "a4"}, {"b", "b1"}, {"c", "c1"}, {"c", "c2"}},
			[]string{"a1", "b1", "c1", "a2", "c2", "a3", "a4"}},
		{"a repeated run is kept once, in its first place",
			[]push{{"a", "a1"}, {"b", "b1"}, {"a", "a1"}, {"a", "a2"}},
			[]string{"a1", "b1", "a2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := testStore(t)
			ctx := context.Background()
			for _, p := range tc.pushes {
				if _, err := s.FairPush(ctx, "default", p.repo, p.id, []byte("task of "+p.id)); err != nil {
					t.Fatal(err)
				}
			}
			if got := fairDrain(t, s, "default"); !slices.Equal(got, tc.want) {
				t.Errorf("offered %v, want %v", got, tc.want)
			}
			if n, _ := s.FairWaiting(ctx, "default"); n != 0 {
				t.Errorf("%d runs still waiting after the drain", n)
			}
			if turns, _ := s.FairTurns(ctx, "default"); len(turns) != 0 {
				t.Errorf("turns left after the drain: %v", turns)
			}
			if keys, _ := s.rdb.Keys(ctx, "mlbot:fair:*").Result(); len(keys) != 0 {
				t.Errorf("keys left after the drain: %v", keys)
			}
		})
	}
}

// TestFairLineSurvivesACrashBetweenSteps plays a dispatcher that dies
// after each step of claim → enqueue → ack: the run must be offered again
// (never lost) once its claim lapses, and not before.
func TestFairLineSurvivesACrashBetweenSteps(t *testing.T) {
	cases := []struct {
		name string
		// acked says whether the dead dispatcher acknowledged the run.
		acked bool
		// wantAgain says whether the run must be offered again.
		wantAgain bool
	}{
		{"dies after the claim (or after the enqueue, before the ack)", false, true},
		{"dies after the ack", true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := testStore(t)
			ctx := context.Background()
			if _, err := s.FairPush(ctx, "default", "a", "a1", []byte("task of a1")); err != nil {
				t.Fatal(err)
			}
			e, ok, err := s.FairClaim(ctx, "default", 200*time.Millisecond)
			if err != nil || !ok || e.RunID != "a1" {
				t.Fatalf("claim = %+v, %v, %v", e, ok, err)
			}
			if tc.acked {
				if err := s.FairAck(ctx, "default", e.Repo, e.RunID); err != nil {
					t.Fatal(err)
				}
			}
			// While the claim holds, another dispatcher is offered nothing.
			if _, ok, _ := s.FairClaim(ctx, "default", time.Minute); ok {
				t.Fatal("a claimed run was offered to a second dispatcher")
			}
			time.Sleep(300 * time.Millisecond)
			again, ok, err := s.FairClaim(ctx, "default", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if ok != tc.wantAgain || (ok && again.RunID != "a1") {
				t.Fatalf("after the claim lapsed: offered %+v (%v), want again=%v", again, ok, tc.wantAgain)
			}
		})
	}
}

func TestFairRemove(t *testing.T) {
	cases := []struct {
		name        string
		claim       bool
		wantRemoved bool
		wantLeft    []string
	}{
		{"a waiting run leaves its line", false, true, []string{"a2", "b1"}},
		{"a claimed run stays: it is being handed to asynq", true, false, []string{"b1", "a1", "a2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := testStore(t)
			ctx := context.Background()
			for _, id := range []string{"a1", "a2", "b1"} {
				if _, err := s.FairPush(ctx, "default", id[:1], id, []byte("task of "+id)); err != nil {
					t.Fatal(err)
				}
			}
			if tc.claim {
				if e, ok, err := s.FairClaim(ctx, "default", time.Minute); err != nil || !ok || e.RunID != "a1" {
					t.Fatalf("claim = %+v, %v, %v", e, ok, err)
				}
			}
			removed, err := s.FairRemove(ctx, "default", "a", "a1")
			if err != nil || removed != tc.wantRemoved {
				t.Fatalf("FairRemove = %v, %v; want %v", removed, err, tc.wantRemoved)
			}
			if tc.claim {
				// The claim's dispatcher died: let the drain below see it.
				s.rdb.HDel(ctx, s.fairClaimsKey("default"), "a1")
			}
			if got := fairDrain(t, s, "default"); !slices.Equal(got, tc.wantLeft) {
				t.Errorf("left %v, want %v", got, tc.wantLeft)
			}
		})
	}
}

// TestFairLineConcurrentDispatchers lets several dispatchers drain one
// line at once: every run is offered exactly once.
func TestFairLineConcurrentDispatchers(t *testing.T) {
	s := testStore(t)
	ctx := context.Background()
	var want []string
	for r := range 5 {
		for i := range 20 {
			id := fmt.Sprintf("r%d-%02d", r, i)
			want = append(want, id)
			if _, err := s.FairPush(ctx, "default", fmt.Sprintf("r%d", r), id, []byte("task of "+id)); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := make(chan []string, 4)
	for range 4 {
		go func() {
			var mine []string
			for {
				e, ok, err := s.FairClaim(ctx, "default", time.Minute)
				if err != nil {
					t.Error(err)
					break
				}
				if !ok {
					if n, _ := s.FairWaiting(ctx, "default"); n == 0 {
						break
					}
					continue // the others' claims are being acknowledged
				}
				mine = append(mine, e.RunID)
				if err := s.FairAck(ctx, "default", e.Repo, e.RunID); err != nil {
					t.Error(err)
					break
				}
			}
			got <- mine
		}()
	}
	var all []string
	for range 4 {
		all = append(all, <-got...)
	}
	slices.Sort(all)
	if !slices.Equal(all, want) {
		t.Errorf("offered %d runs (%v), want each of %d once", len(all), all, len(want))
	}
}

// TestFairOldest follows the age of the longest-waiting run through every
// way a run leaves the line: handed over, removed, and dropped for a
// missing task.
func TestFairOldest(t *testing.T) {
	s := testStore(t)
	ctx := context.Background()
	oldest := func() (time.Time, bool) {
		t.Helper()
		since, ok, err := s.FairOldest(ctx, "ages")
		if err != nil {
			t.Fatal(err)
		}
		return since, ok
	}
	if _, ok := oldest(); ok {
		t.Fatal("an empty line has an oldest run")
	}
	before := time.Now().Add(-time.Second) // Redis's clock may trail ours a little
	for _, p := range []struct{ repo, id string }{{"a", "a1"}, {"b", "b1"}, {"a", "a2"}} {
		if _, err := s.FairPush(ctx, "ages", p.repo, p.id, []byte("task of "+p.id)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	first, ok := oldest()
	if !ok || first.Before(before) || first.After(time.Now().Add(time.Second)) {
		t.Fatalf("oldest = %v, %v; want about now", first, ok)
	}
	// A repeated push keeps the run's first place and time.
	if _, err := s.FairPush(ctx, "ages", "a", "a1", []byte("task of a1")); err != nil {
		t.Fatal(err)
	}
	if again, _ := oldest(); !again.Equal(first) {
		t.Errorf("a repeated push moved the oldest from %v to %v", first, again)
	}
	e, _, err := s.FairClaim(ctx, "ages", time.Minute)
	if err != nil || e.RunID != "a1" {
		t.Fatalf("claim = %+v, %v; want a1", e, err)
	}
	if again, _ := oldest(); !again.Equal(first) {
		t.Error("a claimed run no longer counts as waiting")
	}
	if err := s.FairAck(ctx, "ages", "a", "a1"); err != nil {
		t.Fatal(err)
	}
	second, ok := oldest()
	if !ok || !second.After(first) {
		t.Fatalf("after a1 left, oldest = %v, %v; want after %v", second, ok, first)
	}
	if _, err := s.FairRemove(ctx, "ages", "b", "b1"); err != nil {
		t.Fatal(err)
	}
	third, ok := oldest()
	if !ok || !third.After(second) {
		t.Fatalf("after b1 left, oldest = %v, %v; want after %v", third, ok, second)
	}
	// A run whose task vanished is dropped by the next claim.
	if err := s.rdb.HDel(ctx, s.fairTasksKey("ages"), "a2").Err(); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.FairClaim(ctx, "ages", time.Minute); ok || err != nil {
		t.Fatalf("claim of a run without its task = %v, %v", ok, err)
	}
	if _, ok := oldest(); ok {
		t.Error("the line is empty but still has an oldest run")
	}
}
