package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/internal/redistest"
	"github.com/mlbot/mlbot/jobs/report"
)

// storeRedisDB is the store package's own Redis database (see redistest).
const storeRedisDB = 5

// testStore returns a Store on an empty database. Tests sharing the
// database must not run in parallel.
func testStore(t *testing.T) *Store {
	t.Helper()
	c := redis.NewClient(redistest.Options(t, storeRedisDB))
	t.Cleanup(func() { c.Close() })
	return New(c, "mlbot:")
}

var storeRepo = bot.Repo{Forge: "github", FullName: "Acme/Model", DefaultBranch: "main", Host: "github.com"}

func TestStoreCreateRunIsIdempotent(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	first := &Run{ID: "0123456789abcdef0123", Kind: KindBaseline, Repo: storeRepo, SHA: "aaa", State: RunQueued, Created: time.Now().UTC()}
	created, err := s.CreateRun(ctx, first)
	if err != nil || !created {
		t.Fatalf("first CreateRun = %v, %v; want true, nil", created, err)
	}
	// A second create with the same id, as a redelivered event makes, must
	// neither report creation nor overwrite what the first one stored.
	second := *first
	second.State, second.SHA = RunRunning, "bbb"
	created, err = s.CreateRun(ctx, &second)
	if err != nil || created {
		t.Fatalf("second CreateRun = %v, %v; want false, nil", created, err)
	}
	got, err := s.GetRun(ctx, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != RunQueued || got.SHA != "aaa" {
		t.Errorf("stored run = %s %s, want the first one (queued aaa)", got.State, got.SHA)
	}
}

func TestStoreGetRunUnknown(t *testing.T) {
	s := testStore(t)
	_, err := s.GetRun(context.Background(), "ffffffffffffffffffff")
	if !errors.Is(err, ErrNoRun) {
		t.Fatalf("GetRun of an unknown id: err = %v, want ErrNoRun", err)
	}
}

func TestStoreSaveRunRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	want := &Run{
		ID: "00112233445566778899", Kind: KindPullRequest, Repo: storeRepo, SHA: "abc",
		PR: &bot.PullRequest{Number: 7, HeadSHA: "abc"}, State: RunFinished, Outcome: report.OutcomePassed,
		Metrics: map[string]float64{"accuracy": 0.93}, Train: 3 * time.Second, Created: time.Now().UTC().Truncate(time.Second),
	}
	if err := s.SaveRun(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetRun(ctx, want.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.PR == nil || got.PR.Number != 7 || got.Metrics["accuracy"] != 0.93 || got.Train != want.Train ||
		!got.Created.Equal(want.Created) || got.Outcome != report.OutcomePassed {
		t.Errorf("round trip = %+v, want %+v", got, want)
	}
}

func TestStoreFindBaseline(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	// Runs of the default branch, indexed by commit: c2 passed, c3 failed a
	// gate (both have metrics), c4 failed its step and c5 is still running
	// (neither has metrics), c6 is indexed but its run record is gone.
	runs := []*Run{
		{ID: "0000000000000000000c", SHA: "c2", State: RunFinished, Outcome: report.OutcomePassed},
		{ID: "0000000000000000000d", SHA: "c3", State: RunFinished, Outcome: report.OutcomeGateFailed},
		{ID: "0000000000000000000e", SHA: "c4", State: RunFinished, Outcome: report.OutcomeStepFailed},
		{ID: "0000000000000000000f", SHA: "c5", State: RunRunning},
	}
	for _, r := range runs {
		r.Kind, r.Repo = KindBaseline, storeRepo
		if err := s.SaveRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		if err := s.AddBaseline(ctx, storeRepo, r.SHA, r.ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddBaseline(ctx, storeRepo, "c6", "00000000000000000010"); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		repo bot.Repo
		shas []string
		want string // the SHA of the run found, "" for none
	}{
		{"first with metrics wins", storeRepo, []string{"c2", "c3"}, "c2"},
		{"order is the caller's", storeRepo, []string{"c3", "c2"}, "c3"},
		{"commits without a run are skipped", storeRepo, []string{"c0", "c1", "c3"}, "c3"},
		{"runs without metrics are skipped", storeRepo, []string{"c4", "c5", "c2"}, "c2"},
		{"a missing run record is skipped", storeRepo, []string{"c6", "c3"}, "c3"},
		{"nothing with metrics", storeRepo, []string{"c4", "c5", "c6", "c9"}, ""},
		{"no commits", storeRepo, nil, ""},
		{"the repository name is case-insensitive", bot.Repo{Forge: "github", FullName: "acme/model"}, []string{"c2"}, "c2"},
		{"another forge's repository of that name", bot.Repo{Forge: "gitlab", FullName: "Acme/Model"}, []string{"c2"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.FindBaseline(ctx, tc.repo, tc.shas)
			if err != nil {
				t.Fatal(err)
			}
			gotSHA := ""
			if got != nil {
				gotSHA = got.SHA
			}
			if gotSHA != tc.want {
				t.Errorf("FindBaseline(%v) found %q, want %q", tc.shas, gotSHA, tc.want)
			}
		})
	}
}

func TestStoreHead(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	if got, err := s.Head(ctx, storeRepo, 3); err != nil || got != "" {
		t.Fatalf("Head before AdvanceHead = %q, %v; want \"\", nil", got, err)
	}
	for _, sha := range []string{"aaa", "bbb"} {
		if _, err := s.AdvanceHead(ctx, storeRepo, 3, sha, time.Now()); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Head(ctx, storeRepo, 3); err != nil || got != sha {
			t.Fatalf("Head = %q, %v; want %q", got, err, sha)
		}
	}
	if got, _ := s.Head(ctx, storeRepo, 4); got != "" {
		t.Errorf("Head of another pull request = %q, want \"\"", got)
	}
}

func TestStoreCommentID(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	steps := []struct {
		set  int64
		want int64
	}{
		{set: 42, want: 42},
		{set: 43, want: 43},
		{set: 0, want: 0}, // 0 forgets the comment
	}
	if got, err := s.CommentID(ctx, storeRepo, 5); err != nil || got != 0 {
		t.Fatalf("CommentID before any = %d, %v; want 0, nil", got, err)
	}
	for _, st := range steps {
		if err := s.SetCommentID(ctx, storeRepo, 5, st.set); err != nil {
			t.Fatal(err)
		}
		if got, err := s.CommentID(ctx, storeRepo, 5); err != nil || got != st.want {
			t.Fatalf("after SetCommentID(%d): CommentID = %d, %v; want %d", st.set, got, err, st.want)
		}
	}
	if n, _ := s.rdb.Exists(ctx, s.commentKey(RepoKey(storeRepo), "5")).Result(); n != 0 {
		t.Errorf("forgetting a comment id left its key in Redis")
	}
}

func TestStoreCancelRequest(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	if got, err := s.CancelReason(ctx, "0123456789abcdef0123"); err != nil || got != "" {
		t.Fatalf("CancelReason before a request = %q, %v; want \"\", nil", got, err)
	}
	if err := s.RequestCancel(ctx, "0123456789abcdef0123", "superseded"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.CancelReason(ctx, "0123456789abcdef0123"); err != nil || got != "superseded" {
		t.Fatalf("CancelReason = %q, %v; want superseded", got, err)
	}
}

func TestStoreLock(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	release, ok, err := s.Lock(ctx, "comment:x", time.Minute)
	if err != nil || !ok {
		t.Fatalf("first Lock = %v, %v; want true, nil", ok, err)
	}
	// While held, a second taker is refused, and its release is harmless.
	release2, ok, err := s.Lock(ctx, "comment:x", time.Minute)
	if err != nil || ok {
		t.Fatalf("second Lock while held = %v, %v; want false, nil", ok, err)
	}
	release2()
	if _, ok, _ := s.Lock(ctx, "comment:x", time.Minute); ok {
		t.Fatalf("the refused taker's release freed the holder's lease")
	}
	// Another name is independent.
	if r, ok, _ := s.Lock(ctx, "comment:y", time.Minute); !ok {
		t.Errorf("Lock of another name refused")
	} else {
		r()
	}
	release()
	release3, ok, err := s.Lock(ctx, "comment:x", time.Minute)
	if err != nil || !ok {
		t.Fatalf("Lock after release = %v, %v; want true, nil", ok, err)
	}
	release3()
}

func TestStoreLockExpiredLeaseIsNotReleasedByItsOldHolder(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	release, ok, err := s.Lock(ctx, "short", time.Minute)
	if err != nil || !ok {
		t.Fatalf("Lock = %v, %v", ok, err)
	}
	// The lease runs out (deleted here rather than waited for, so that the
	// test does not depend on time) and a new holder takes it. The first
	// holder's late release must not delete the new holder's lease.
	if err := s.rdb.Del(ctx, s.lockKey("short")).Err(); err != nil {
		t.Fatal(err)
	}
	release2, ok, err := s.Lock(ctx, "short", time.Minute)
	if err != nil || !ok {
		t.Fatalf("Lock after expiry = %v, %v; want true, nil", ok, err)
	}
	release()
	if _, ok, _ := s.Lock(ctx, "short", time.Minute); ok {
		t.Errorf("an expired holder's release freed the new holder's lease")
	}
	release2()
}

// TestClaimIDKeepsItsIDAsLongAsRuns checks the mapping outlives a finished
// run's asynq task id and lives as long as the run record, so that a late
// redelivery finds the run instead of training again.
func TestClaimIDKeepsItsIDAsLongAsRuns(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	// A dedupe key as jobs derives them: a SHA-256 in hex.
	const deployKey = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
	if _, err := s.ClaimID(ctx, "deploy", deployKey); err != nil {
		t.Fatal(err)
	}
	ttl, err := s.rdb.TTL(ctx, s.idKey("deploy", deployKey)).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl < RunTTL-time.Minute || ttl > RunTTL {
		t.Errorf("the id mapping lives %s, want %s", ttl, RunTTL)
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
	for i := range HeadHistory + 20 {
		if err := s.RecordHead(ctx, storeRepo, 1, "sha"+string(rune('a'+i%26)), t0.Add(time.Duration(i)*time.Minute), t0.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	k := s.prHeadsKey(RepoKey(storeRepo), "1")
	if n, err := s.rdb.ZCard(ctx, k).Result(); err != nil || n != HeadHistory {
		t.Errorf("%d observations kept (%v), want %d", n, err, HeadHistory)
	}
	// The oldest were dropped: a comment from then can no longer be placed.
	if _, err := s.HeadAt(ctx, storeRepo, 1, t0.Add(time.Minute)); !errors.Is(err, ErrBeforeHeads) {
		t.Errorf("HeadAt before the kept history = %v, want ErrBeforeHeads", err)
	}
}

// TestStoreOnce checks the at-least-once work Once guards: a failed act
// is tried again, a succeeded one never, and the mark lasts its ttl.
func TestStoreOnce(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	calls := 0
	fail := errors.New("host answered 502")
	act := func(err error) func() error {
		return func() error { calls++; return err }
	}
	if err := s.Once(ctx, "k", time.Hour, act(fail)); !errors.Is(err, fail) {
		t.Fatalf("Once with a failing act = %v, want its error", err)
	}
	if done, _ := s.Done(ctx, "k"); done {
		t.Fatal("a failed act was marked done: its retry would never act")
	}
	for i := 0; i < 3; i++ {
		if err := s.Once(ctx, "k", time.Hour, act(nil)); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 2 {
		t.Errorf("act ran %d times, want 2 (the failure, then one success)", calls)
	}
	if ttl := s.rdb.TTL(ctx, s.doneKey("k")).Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("done mark ttl = %v, want at most an hour", ttl)
	}
	if err := s.Once(ctx, "other", time.Hour, act(nil)); err != nil || calls != 3 {
		t.Errorf("another key: err %v, %d calls; want it to act", err, calls)
	}
}
