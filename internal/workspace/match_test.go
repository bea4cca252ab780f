package workspace_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mlbot/mlbot/internal/workspace"
)

// TestExpandArtifactsAndCovers expands artifact names in a real directory
// and checks that ArtifactCovers, which the agent server uses to accept
// uploads without the directory, accepts exactly what the expansion names
// (and nothing outside the names).
func TestExpandArtifactsAndCovers(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"model.pt", "out/a.bin", "out/sub/b.bin", "ckpt/1/w.pt", "ckpt/2/deep/w.pt", "ckpt/2/notes.txt", "other.txt"} {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ws, err := workspace.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	tests := []struct {
		names   []string
		want    []string
		notWant []string
	}{
		{[]string{"model.pt"}, []string{"model.pt"}, []string{"other.txt", "model.ptx", "model"}},
		{[]string{"out"}, []string{"out/a.bin", "out/sub/b.bin"}, []string{"outx/a.bin", "other.txt"}},
		{[]string{"out/*"}, []string{"out/a.bin", "out/sub/b.bin"}, []string{"out", "model.pt"}},
		{[]string{"ckpt/**/*.pt"}, []string{"ckpt/1/w.pt", "ckpt/2/deep/w.pt"}, []string{"model.pt"}},
		{[]string{"./model.pt ", "out/sub"}, []string{"model.pt", "out/sub/b.bin"}, []string{"out/a.bin"}},
	}
	for _, tt := range tests {
		got, err := workspace.ExpandArtifacts(ws.FS(), tt.names)
		if err != nil {
			t.Errorf("ExpandArtifacts(%q): %v", tt.names, err)
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("ExpandArtifacts(%q) = %q, want %q", tt.names, got, tt.want)
		}
		for _, p := range got {
			if !workspace.ArtifactCovers(tt.names, p) {
				t.Errorf("ArtifactCovers(%q, %q) = false for a file the expansion names", tt.names, p)
			}
		}
		for _, p := range tt.notWant {
			if workspace.ArtifactCovers(tt.names, p) {
				t.Errorf("ArtifactCovers(%q, %q) = true, want false", tt.names, p)
			}
		}
	}
	for _, bad := range []string{"", ".", "../model.pt", "/model.pt", "out/../model.pt", "out//a.bin", "out/a.bin/"} {
		if workspace.ArtifactCovers([]string{"**", "model.pt", "out"}, bad) {
			t.Errorf("ArtifactCovers(%q) = true for a path that is not clean and relative", bad)
		}
	}
	if _, err := workspace.ExpandArtifacts(ws.FS(), []string{"missing/*.pt"}); err == nil {
		t.Error("ExpandArtifacts of a pattern matching nothing: no error")
	}
}
