package store

import (
	"bytes"
	"context"
	"testing"
)

func TestRunLogAppendsAndReadsByOffset(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	const id = "runlog-test-1"
	s.rdb.Del(ctx, s.runLogKey(id))
	if b, n, err := s.ReadRunLog(ctx, id, 0, 100); err != nil || n != 0 || len(b) != 0 {
		t.Fatalf("unknown run: %q, %d, %v; want empty", b, n, err)
	}
	for _, p := range []string{"epoch 1\n", "epoch 2\n", "done\n"} {
		if _, err := s.AppendRunLog(ctx, id, []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	b, n, err := s.ReadRunLog(ctx, id, 8, 8)
	if err != nil || n != 21 || string(b) != "epoch 2\n" {
		t.Fatalf("ReadRunLog(8, 8) = %q, %d, %v; want \"epoch 2\\n\", 21", b, n, err)
	}
	if b, _, _ := s.ReadRunLog(ctx, id, 21, 10); len(b) != 0 {
		t.Errorf("read past the end = %q, want nothing", b)
	}
	if ttl := s.rdb.PTTL(ctx, s.runLogKey(id)).Val(); ttl <= 0 || ttl > RunTTL {
		t.Errorf("TTL %s, want within RunTTL", ttl)
	}
	// The cap holds: a chunk that would pass it is not stored.
	big := bytes.Repeat([]byte("x"), MaxRunLogBytes)
	if n, err := s.AppendRunLog(ctx, id, big); err != nil || n != 21 {
		t.Errorf("append past the cap = %d, %v; want 21 (refused)", n, err)
	}
	s.rdb.Del(ctx, s.runLogKey(id))
}
