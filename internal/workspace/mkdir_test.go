package workspace

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMkdirParents makes missing parents and refuses the parents an
// archive or upload could plant to escape: a symbolic link to a directory
// outside, a link within, and a regular file in a directory's place.
func TestMkdirParents(t *testing.T) {
	outside := t.TempDir()
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string)
		rel     string
		wantErr string
		wantDir string
	}{
		{name: "file at the top", rel: "model.pt"},
		{name: "missing parents made", rel: "out/ckpt/model.pt", wantDir: "out/ckpt"},
		{name: "existing parents kept", setup: func(t *testing.T, dir string) { mkdir(t, filepath.Join(dir, "out")) }, rel: "out/model.pt", wantDir: "out"},
		{name: "link to outside", setup: func(t *testing.T, dir string) { symlink(t, outside, filepath.Join(dir, "out")) }, rel: "out/model.pt",
			wantErr: "out is a symbolic link"},
		{name: "deeper link", setup: func(t *testing.T, dir string) {
			mkdir(t, filepath.Join(dir, "a"))
			symlink(t, outside, filepath.Join(dir, "a", "b"))
		}, rel: "a/b/c/model.pt", wantErr: "a/b is a symbolic link"},
		{name: "link within", setup: func(t *testing.T, dir string) {
			mkdir(t, filepath.Join(dir, "real"))
			symlink(t, "real", filepath.Join(dir, "out"))
		}, rel: "out/model.pt", wantErr: "out is a symbolic link"},
		{name: "file in a directory's place", setup: func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "out"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}, rel: "out/model.pt", wantErr: "out is not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.setup != nil {
				tt.setup(t, dir)
			}
			root, err := os.OpenRoot(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			err = MkdirParents(root, tt.rel)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("MkdirParents = %v, want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if tt.wantDir != "" {
				if st, err := os.Lstat(filepath.Join(dir, tt.wantDir)); err != nil || !st.IsDir() {
					t.Fatalf("%s not made: %v", tt.wantDir, err)
				}
			}
			if entries, _ := os.ReadDir(outside); len(entries) > 0 {
				t.Fatalf("something was made outside: %v", entries)
			}
		})
	}
}

func mkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, p string) {
	t.Helper()
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}
