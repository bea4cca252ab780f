package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

const (
	agentID   = "00112233445566778899aabbccddeeff"
	agentHash = "1111111111111111111111111111111111111111111111111111111111111111"
)

func openTestAgent(t *testing.T, s *Store, ttl time.Duration) {
	t.Helper()
	created, err := s.OpenAgent(context.Background(), agentID, []byte(`{"run_id":"x"}`), agentHash, ttl)
	if err != nil || !created {
		t.Fatalf("OpenAgent = %v, %v; want true, nil", created, err)
	}
}

func TestAgentOpenIsIdempotent(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	openTestAgent(t, s, time.Hour)
	other := strings.Repeat("2", 64)
	created, err := s.OpenAgent(ctx, agentID, []byte(`{"run_id":"y"}`), other, time.Hour)
	if err != nil || created {
		t.Fatalf("second OpenAgent = %v, %v; want false, nil", created, err)
	}
	// The second caller's token must not let anyone in, and the first
	// session must be as it was.
	if _, err := s.AgentByToken(ctx, other); !errors.Is(err, ErrNoAgent) {
		t.Errorf("AgentByToken(second token) err = %v, want ErrNoAgent", err)
	}
	got, err := s.AgentByToken(ctx, agentHash)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != agentID || string(got.Job) != `{"run_id":"x"}` || got.TokenHash != agentHash || got.Done || got.LogBytes != 0 {
		t.Errorf("session = %+v, want the first one, fresh", got)
	}
	if d := time.Until(got.Expires); d <= 59*time.Minute || d > time.Hour {
		t.Errorf("session expires in %v, want about an hour", d)
	}
}

func TestAgentLogAppendByOffset(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	openTestAgent(t, s, time.Hour)
	steps := []struct {
		offset  int64
		chunk   string
		want    int64
		mismach bool
	}{
		{0, "hello ", 6, false},
		{0, "hello ", 6, true},   // a resend of what is there already
		{12, "world\n", 6, true}, // a gap
		{6, "world\n", 12, false},
		{12, "", 12, false},
	}
	for i, st := range steps {
		n, err := s.AppendAgentLog(ctx, agentID, st.offset, []byte(st.chunk))
		var oe *AgentOffsetError
		switch {
		case st.mismach && (!errors.As(err, &oe) || oe.Have != st.want):
			t.Fatalf("step %d: AppendAgentLog(%d) = %d, %v; want an offset error with %d", i, st.offset, n, err, st.want)
		case !st.mismach && (err != nil || n != st.want):
			t.Fatalf("step %d: AppendAgentLog(%d) = %d, %v; want %d", i, st.offset, n, err, st.want)
		}
	}
	got, err := s.ReadAgentLog(ctx, agentID, 3, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Data) != "lo world\n" || got.Stored != 12 || got.Total != 12 {
		t.Errorf("ReadAgentLog(3) = %q stored %d total %d, want %q 12 12", got.Data, got.Stored, got.Total, "lo world\n")
	}
}

// TestAgentCopiedMarkOnlyMovesForward: the mark of what a runner copied
// starts at zero, moves forward only (a late write of an older offset,
// from a worker that was slow to die, must not make the next one copy
// again), and is refused for a session that is gone.
func TestAgentCopiedMarkOnlyMovesForward(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	openTestAgent(t, s, time.Hour)
	for _, tc := range []struct{ set, want int64 }{{0, 0}, {120, 120}, {80, 120}, {121, 121}} {
		if err := s.SetAgentCopied(ctx, agentID, tc.set); err != nil {
			t.Fatalf("SetAgentCopied(%d): %v", tc.set, err)
		}
		got, err := s.GetAgent(ctx, agentID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Copied != tc.want {
			t.Errorf("after SetAgentCopied(%d): Copied = %d, want %d", tc.set, got.Copied, tc.want)
		}
	}
	if err := s.CloseAgent(ctx, agentID); err != nil {
		t.Fatal(err)
	}
	if err := s.SetAgentCopied(ctx, agentID, 200); !errors.Is(err, ErrNoAgent) {
		t.Errorf("SetAgentCopied on a closed session: %v, want ErrNoAgent", err)
	}
	if n, _ := s.rdb.Exists(ctx, s.agentKey(agentID, "session")).Result(); n != 0 {
		t.Errorf("SetAgentCopied recreated the closed session")
	}
}

func TestAgentLogCapCountsButDoesNotStore(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	openTestAgent(t, s, time.Hour)
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	var off int64
	for off < MaxAgentLogBytes+3<<20/2 {
		n, err := s.AppendAgentLog(ctx, agentID, off, chunk)
		if err != nil {
			t.Fatalf("AppendAgentLog at %d: %v", off, err)
		}
		if n != off+int64(len(chunk)) {
			t.Fatalf("AppendAgentLog at %d = %d, want %d", off, n, off+int64(len(chunk)))
		}
		off = n
	}
	got, err := s.ReadAgentLog(ctx, agentID, MaxAgentLogBytes-4, 100)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Data) != "cdef" || got.Stored != MaxAgentLogBytes || got.Total != off {
		t.Errorf("end of log = %q stored %d total %d, want %q %d %d", got.Data, got.Stored, got.Total, "cdef", MaxAgentLogBytes, off)
	}
	sess, err := s.GetAgent(ctx, agentID)
	if err != nil || sess.LogBytes != off {
		t.Errorf("GetAgent = %+v, %v; want LogBytes %d", sess, err, off)
	}
}

func TestAgentFilesStepsAndDone(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	openTestAgent(t, s, time.Hour)
	for i := range MaxAgentFiles {
		if err := s.PutAgentMetric(ctx, agentID, fmt.Sprintf("m/%d.json", i), []byte(`{"a":1}`)); err != nil {
			t.Fatalf("metric %d: %v", i, err)
		}
		if err := s.AddAgentArtifact(ctx, agentID, fmt.Sprintf("a/%d.bin", i), AgentArtifact{Digest: "sha256:ab", Size: int64(i)}); err != nil {
			t.Fatalf("artifact %d: %v", i, err)
		}
	}
	if err := s.PutAgentMetric(ctx, agentID, "one/too/many.json", []byte(`{}`)); !errors.Is(err, ErrAgentLimit) {
		t.Errorf("metric %d: err = %v, want ErrAgentLimit", MaxAgentFiles+1, err)
	}
	if err := s.AddAgentArtifact(ctx, agentID, "one/too/many.bin", AgentArtifact{Digest: "sha256:ab"}); !errors.Is(err, ErrAgentLimit) {
		t.Errorf("artifact %d: err = %v, want ErrAgentLimit", MaxAgentFiles+1, err)
	}
	// Replacing a file already there is within the limit.
	if err := s.PutAgentMetric(ctx, agentID, "m/0.json", []byte(`{"a":2}`)); err != nil {
		t.Errorf("replacing a metric file: %v", err)
	}
	if err := s.PutAgentMetric(ctx, agentID, "m/0.json", make([]byte, MaxAgentMetricBytes+1)); !errors.Is(err, ErrAgentLimit) {
		t.Errorf("metric file over the size limit: err = %v, want ErrAgentLimit", err)
	}
	metrics, err := s.AgentMetrics(ctx, agentID)
	if err != nil || len(metrics) != MaxAgentFiles || string(metrics["m/0.json"]) != `{"a":2}` {
		t.Errorf("AgentMetrics = %d files, m/0.json %q, %v; want %d, {\"a\":2}", len(metrics), metrics["m/0.json"], err, MaxAgentFiles)
	}
	arts, err := s.AgentArtifacts(ctx, agentID)
	if err != nil || len(arts) != MaxAgentFiles || arts["a/7.bin"] != (AgentArtifact{Digest: "sha256:ab", Size: 7}) {
		t.Errorf("AgentArtifacts = %d, a/7.bin %+v, %v", len(arts), arts["a/7.bin"], err)
	}

	for i, r := range []string{`{"name":"train"}`, `{"name":"evaluate"}`} {
		if added, err := s.AddAgentStep(ctx, agentID, i, []byte(r)); err != nil || !added {
			t.Fatalf("AddAgentStep(%d) = %v, %v; want true, nil", i, added, err)
		}
	}
	// A retried report is ignored; one that skips an index is refused.
	if added, err := s.AddAgentStep(ctx, agentID, 1, []byte(`{"name":"again"}`)); err != nil || added {
		t.Errorf("AddAgentStep of step 1 again = %v, %v; want false, nil", added, err)
	}
	if _, err := s.AddAgentStep(ctx, agentID, 3, []byte(`{}`)); !errors.Is(err, ErrAgentStepGap) {
		t.Errorf("AddAgentStep(3) after 0 and 1: err = %v, want ErrAgentStepGap", err)
	}
	steps, err := s.AgentSteps(ctx, agentID)
	if err != nil || len(steps) != 2 || string(steps[0]) != `{"name":"train"}` || string(steps[1]) != `{"name":"evaluate"}` {
		t.Errorf("AgentSteps = %q, %v; want train, evaluate in order", steps, err)
	}

	if err := s.FinishAgent(ctx, agentID, "upload failed"); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishAgent(ctx, agentID, ""); err != nil {
		t.Fatal(err)
	}
	sess, err := s.GetAgent(ctx, agentID)
	if err != nil || !sess.Done || sess.Error != "upload failed" {
		t.Errorf("after two ends: %+v, %v; want done with the first end's error", sess, err)
	}
}

func TestAgentStepLimit(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	openTestAgent(t, s, time.Hour)
	for i := range MaxAgentSteps {
		if _, err := s.AddAgentStep(ctx, agentID, i, []byte(`{}`)); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if _, err := s.AddAgentStep(ctx, agentID, MaxAgentSteps, []byte(`{}`)); !errors.Is(err, ErrAgentLimit) {
		t.Errorf("step %d: err = %v, want ErrAgentLimit", MaxAgentSteps+1, err)
	}
}

// TestAgentKeysExpireWithTheSession checks that every key a session
// writes carries the session's expiry, so nothing outlives it.
func TestAgentKeysExpireWithTheSession(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	const ttl = 10 * time.Minute
	openTestAgent(t, s, ttl)
	if _, err := s.AppendAgentLog(ctx, agentID, 0, []byte("log")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAgentMetric(ctx, agentID, "m.json", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := s.AddAgentArtifact(ctx, agentID, "model.pt", AgentArtifact{Digest: "sha256:00", Size: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddAgentStep(ctx, agentID, 0, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	for _, k := range append(s.agentKeys(agentID), s.agentTokenKey(agentHash)) {
		d, err := s.rdb.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if d <= ttl-time.Minute || d > ttl {
			t.Errorf("%s: TTL %v, want about %v", k, d, ttl)
		}
	}
}

func TestAgentCloseDeletesEverything(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	openTestAgent(t, s, time.Hour)
	if _, err := s.AppendAgentLog(ctx, agentID, 0, []byte("log")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAgentMetric(ctx, agentID, "m.json", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := s.AddAgentArtifact(ctx, agentID, "model.pt", AgentArtifact{Digest: "sha256:00", Size: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddAgentStep(ctx, agentID, 0, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseAgent(ctx, agentID); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseAgent(ctx, agentID); err != nil {
		t.Errorf("closing a closed session: %v", err)
	}
	n, err := s.rdb.Exists(ctx, append(s.agentKeys(agentID), s.agentTokenKey(agentHash))...).Result()
	if err != nil || n != 0 {
		t.Errorf("after CloseAgent %d keys of the session exist (%v), want none", n, err)
	}
	if _, err := s.AgentByToken(ctx, agentHash); !errors.Is(err, ErrNoAgent) {
		t.Errorf("AgentByToken after close: err = %v, want ErrNoAgent", err)
	}
	// Whatever arrives late is refused, not written into keys without TTL.
	writes := map[string]error{}
	_, writes["log"] = s.AppendAgentLog(ctx, agentID, 3, []byte("late"))
	writes["metric"] = s.PutAgentMetric(ctx, agentID, "m.json", []byte("{}"))
	writes["artifact"] = s.AddAgentArtifact(ctx, agentID, "model.pt", AgentArtifact{Digest: "sha256:00"})
	_, writes["step"] = s.AddAgentStep(ctx, agentID, 1, []byte("{}"))
	writes["done"] = s.FinishAgent(ctx, agentID, "")
	_, writes["read"] = s.ReadAgentLog(ctx, agentID, 0, 10)
	for what, err := range writes {
		if !errors.Is(err, ErrNoAgent) {
			t.Errorf("%s after close: err = %v, want ErrNoAgent", what, err)
		}
	}
	if n, _ := s.rdb.Exists(ctx, s.agentKeys(agentID)...).Result(); n != 0 {
		t.Errorf("late writes created %d keys", n)
	}
}
