package registry

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/mlbot/mlbot/internal/workspace"
)

// A file that grows after its size was checked is cut off at the limit
// while it is copied, and its partial copy is removed.
func TestStageCutsOffAGrowingFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "model.bin")
	os.WriteFile(p, []byte("1234"), 0o644)
	ws, err := workspace.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	f, err := ws.Open("model.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := checkLimits("model.bin", f.Size(), 0, 4, 4); err != nil {
		t.Fatalf("checkLimits before growth: %v", err)
	}
	os.WriteFile(p, []byte("1234 and then some more"), 0o644) // the training's leftover process
	s := &ArtifactStore{Dir: t.TempDir()}
	st, err := s.stage(context.Background(), f.Reader(context.Background(), 4))
	if tl := (*workspace.TooLargeError)(nil); !errors.As(err, &tl) {
		t.Fatalf("stage = %+v, %v; want a TooLargeError", st, err)
	}
	if left, _ := os.ReadDir(filepath.Join(s.Dir, "tmp")); len(left) != 0 {
		t.Fatalf("partial copies left: %v", left)
	}
	if blobs, _ := os.ReadDir(filepath.Join(s.Dir, "sha256")); len(blobs) != 0 {
		t.Fatalf("blobs stored: %v", blobs)
	}
}
