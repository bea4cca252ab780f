package store

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

const testDigest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

// TestBlobGuards shows the two guards excluding each other: a pinned blob
// cannot be claimed for deletion, a claimed one cannot be pinned, and
// each lapses on its own (the pin by expiry, the claim by release).
func TestBlobGuards(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// steps run in order; each is an operation and the ok it must give.
		steps []struct {
			op   string // "pin a", "unpin a", "claim c", "release c", "expired pin a"
			want bool
		}
	}{
		{"a pin refuses a claim", steps("pin a", true, "claim c", false)},
		{"a claim refuses a pin until released", steps("claim c", true, "pin a", false, "release c", true, "pin a", true)},
		{"unpinned, the blob may be claimed", steps("pin a", true, "unpin a", true, "claim c", true)},
		{"one writer's unpin leaves the other's pin", steps("pin a", true, "pin b", true, "unpin a", true, "claim c", false, "unpin b", true, "claim c", true)},
		// b's pin keeps the key alive past a's expiry, as a writer that died
		// beside a live one leaves it.
		{"an expired pin does not hold the blob", steps("pin b", true, "expired pin a", true, "unpin b", true, "claim c", true)},
		{"a second claim is refused", steps("claim c", true, "claim d", false)},
		{"a claim released by another token stays", steps("claim c", true, "release d", true, "pin a", false)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testStore(t)
			for i, st := range tt.steps {
				op, token, _ := strings.Cut(st.op, " ")
				var ok bool
				var err error
				switch op {
				case "pin":
					ok, err = s.PinBlob(ctx, testDigest, token, time.Minute)
				case "expired":
					ok, err = s.PinBlob(ctx, testDigest, strings.TrimPrefix(token, "pin "), -time.Second)
				case "unpin":
					ok, err = true, s.UnpinBlob(ctx, testDigest, token)
				case "claim":
					ok, err = s.ClaimBlobDeletion(ctx, testDigest, token, time.Minute)
				case "release":
					ok, err = true, s.ReleaseBlobDeletion(ctx, testDigest, token)
				default:
					t.Fatalf("unknown step %q", st.op)
				}
				if err != nil {
					t.Fatalf("step %d %q: %v", i, st.op, err)
				}
				if ok != st.want {
					t.Fatalf("step %d %q: ok = %v, want %v", i, st.op, ok, st.want)
				}
			}
		})
	}
}

// steps pairs operations with the ok each must give.
func steps(pairs ...any) []struct {
	op   string
	want bool
} {
	var out []struct {
		op   string
		want bool
	}
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, struct {
			op   string
			want bool
		}{pairs[i].(string), pairs[i+1].(bool)})
	}
	return out
}

func TestBlobPinnedAndKeyTTL(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	if p, err := s.BlobPinned(ctx, testDigest); err != nil || p {
		t.Fatalf("BlobPinned of an unpinned blob = %v, %v", p, err)
	}
	if _, err := s.PinBlob(ctx, testDigest, "a", time.Hour); err != nil {
		t.Fatal(err)
	}
	if p, err := s.BlobPinned(ctx, testDigest); err != nil || !p {
		t.Fatalf("BlobPinned of a pinned blob = %v, %v", p, err)
	}
	// The pins key must not outlive its pins, or a writer that died would
	// leave a key behind for ever.
	ttl, err := s.rdb.PTTL(ctx, s.blobPinsKey(testDigest)).Result()
	if err != nil || ttl <= 0 || ttl > time.Hour {
		t.Errorf("pins key TTL = %s, %v; want within an hour", ttl, err)
	}
}

func TestDropModelVersion(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	const repo = "github:acme/model"
	for _, run := range []string{"run-1", "run-2"} {
		n, err := s.ClaimModelVersion(ctx, repo, run)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.AddModelVersion(ctx, repo, n, []byte(`{"number":`+string(rune('0'+n))+`}`)); err != nil {
			t.Fatal(err)
		}
		r := &Run{ID: run, Kind: KindBaseline, Repo: storeRepo, SHA: "abc", State: RunFinished, ModelVersion: n,
			Metrics: map[string]float64{"accuracy": 0.123456789012345678}, Created: time.Now().UTC()}
		if err := s.SaveRun(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	// A run record shortened to expire soon must keep that TTL.
	if err := s.rdb.Expire(ctx, s.runKey("run-1"), time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	before, _ := s.rdb.Get(ctx, s.runKey("run-1")).Bytes()

	if err := s.DropModelVersion(ctx, repo, 1, "run-1"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.ModelVersion(ctx, repo, 1); err != nil || ok {
		t.Errorf("version 1 after the drop: ok = %v, %v", ok, err)
	}
	if _, ok, err := s.ModelVersionOfRun(ctx, repo, "run-1"); err != nil || ok {
		t.Errorf("run-1's claim after the drop: ok = %v, %v", ok, err)
	}
	if _, ok, _ := s.ModelVersion(ctx, repo, 2); !ok {
		t.Error("version 2 was dropped with version 1")
	}
	if n, ok, _ := s.ModelVersionOfRun(ctx, repo, "run-2"); !ok || n != 2 {
		t.Errorf("run-2's claim = %d, %v; want 2", n, ok)
	}
	r1, err := s.GetRun(ctx, "run-1")
	if err != nil {
		t.Fatal(err)
	}
	if r1.ModelVersion != 0 || r1.SHA != "abc" || r1.Metrics["accuracy"] != 0.123456789012345678 {
		t.Errorf("run-1 after the drop: version %d, sha %q, metrics %v", r1.ModelVersion, r1.SHA, r1.Metrics)
	}
	if ttl := s.rdb.TTL(ctx, s.runKey("run-1")).Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("run-1's TTL after the drop = %s, want at most the hour it had", ttl)
	}
	// Every other field kept its bytes.
	var was, now map[string]json.RawMessage
	after, _ := s.rdb.Get(ctx, s.runKey("run-1")).Bytes()
	json.Unmarshal(before, &was)
	json.Unmarshal(after, &now)
	delete(was, "model_version")
	for k, v := range was {
		if string(now[k]) != string(v) {
			t.Errorf("field %s changed: %s → %s", k, v, now[k])
		}
	}
	if r2, _ := s.GetRun(ctx, "run-2"); r2.ModelVersion != 2 {
		t.Errorf("run-2's version = %d, want 2", r2.ModelVersion)
	}
	// A run that recorded another number (the version was re-recorded)
	// keeps it.
	if err := s.DropModelVersion(ctx, repo, 7, "run-2"); err != nil {
		t.Fatal(err)
	}
	if r2, _ := s.GetRun(ctx, "run-2"); r2.ModelVersion != 2 {
		t.Errorf("dropping v7 changed run-2's version to %d", r2.ModelVersion)
	}
	if n, ok, _ := s.ModelVersionOfRun(ctx, repo, "run-2"); !ok || n != 2 {
		t.Errorf("dropping v7 removed run-2's claim on v2")
	}
	// Numbers are not reused.
	if n, _ := s.ClaimModelVersion(ctx, repo, "run-3"); n != 3 {
		t.Errorf("next number after a drop = %d, want 3", n)
	}
}
