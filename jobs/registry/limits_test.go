package registry_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlbot/mlbot/jobs/registry"
	"github.com/mlbot/mlbot/jobs/registry/registrytest"
	"github.com/mlbot/mlbot/jobs/store"
)

// sparse makes a file of size bytes that takes no disk space.
func sparse(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

// storedFiles lists every regular file under the store's directory.
func storedFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// An artifact over a limit fails the record before a byte is copied,
// naming the file, its size and the limit, and stores nothing at all, not
// even the files of the run that fit.
func TestRecordArtifactLimits(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name             string
		perFile, perRun  int64
		files            map[string]int64 // path → sparse size
		names            []string
		wantErr          string // empty: must succeed
		wantPerRun       bool
		wantSize, wantAt int64
	}{
		{name: "a 1 GiB sparse model over a 1 MiB per-file limit", perFile: mib, perRun: 10 * mib,
			files: map[string]int64{"a.txt": 10, "model.bin": 1 << 30}, names: []string{"a.txt", "model.bin"},
			wantErr:  "artifact model.bin is 1.0 GiB (1073741824 bytes), over the per-file artifact limit of 1.0 MiB (1048576 bytes)",
			wantSize: 1 << 30, wantAt: mib},
		{name: "files that fit alone but not together", perFile: mib, perRun: mib + mib/2,
			files: map[string]int64{"ckpt/1.bin": mib, "ckpt/2.bin": mib}, names: []string{"ckpt/*.bin"},
			wantErr:    "artifact ckpt/2.bin brings the run's artifacts to 2.0 MiB (2097152 bytes), over the per-run artifact limit of 1.5 MiB (1572864 bytes)",
			wantPerRun: true, wantSize: 2 * mib, wantAt: mib + mib/2},
		{name: "the defaults refuse a 3 GiB sparse file", files: map[string]int64{"huge.bin": 3 << 30}, names: []string{"huge.bin"},
			wantErr: "over the per-file artifact limit of 2.0 GiB", wantSize: 3 << 30, wantAt: registry.DefaultMaxFileBytes},
		{name: "exactly at both limits", perFile: mib, perRun: 2 * mib,
			files: map[string]int64{"ckpt/1.bin": mib, "ckpt/2.bin": mib}, names: []string{"ckpt"}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			rdb, prefix := registrytest.Redis(t)
			artifacts := &registry.ArtifactStore{Dir: t.TempDir(), MaxFileBytes: tc.perFile, MaxRunBytes: tc.perRun}
			r := registry.New(store.New(rdb, prefix), artifacts)
			dir := t.TempDir()
			for p, size := range tc.files {
				sparse(t, filepath.Join(dir, filepath.FromSlash(p)), size)
			}
			start := time.Now()
			v, err := r.Record(ctx, registry.Version{Repo: repo, RunID: "run" + string(rune('a'+i))}, dir, tc.names)
			if tc.wantErr == "" {
				if err != nil || len(v.Artifacts) != len(tc.files) {
					t.Fatalf("Record = %+v, %v", v, err)
				}
				return
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("Record took %s: it read the file instead of refusing it by its size", took)
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Record error %v, want one containing %q", err, tc.wantErr)
			}
			var le *registry.LimitError
			if !errors.As(err, &le) || !errors.Is(err, registry.ErrBadArtifact) {
				t.Fatalf("Record error %v is not a LimitError wrapping ErrBadArtifact", err)
			}
			if le.PerRun != tc.wantPerRun || le.Size != tc.wantSize || le.Limit != tc.wantAt {
				t.Errorf("LimitError %+v, want per-run %v size %d limit %d", le, tc.wantPerRun, tc.wantSize, tc.wantAt)
			}
			if got := storedFiles(t, artifacts.Dir); len(got) != 0 {
				t.Errorf("the store holds %v after a refused run", got)
			}
			if list, _ := r.List(ctx, repo); len(list) != 0 {
				t.Errorf("a refused run left versions %+v", list)
			}
		})
	}
}

// Blobs are read-only in directories closed to others.
func TestArtifactStoreModes(t *testing.T) {
	store := &registry.ArtifactStore{Dir: filepath.Join(t.TempDir(), "artifacts")}
	src := filepath.Join(t.TempDir(), "model.pt")
	os.WriteFile(src, []byte("weights"), 0o644)
	_, d, err := store.Put(src)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]fs.FileMode{
		filepath.Join(store.Dir, "sha256", d): 0o444,
		filepath.Join(store.Dir, "sha256"):    fs.ModeDir | 0o750,
		filepath.Join(store.Dir, "tmp"):       fs.ModeDir | 0o750,
	} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != want {
			t.Errorf("%s has mode %s, want %s", p, st.Mode(), want)
		}
	}
}

// Put applies the per-file limit too.
func TestArtifactPutLimit(t *testing.T) {
	store := &registry.ArtifactStore{Dir: t.TempDir(), MaxFileBytes: 1 << 20}
	src := filepath.Join(t.TempDir(), "model.bin")
	sparse(t, src, 1<<30)
	var le *registry.LimitError
	if _, _, err := store.Put(src); !errors.As(err, &le) {
		t.Fatalf("Put error %v, want a LimitError", err)
	}
}

// A blob swapped for a FIFO or a link makes a restore fail, never hang.
func TestArtifactRestoreRefusesOddBlobs(t *testing.T) {
	store := &registry.ArtifactStore{Dir: t.TempDir()}
	src := filepath.Join(t.TempDir(), "model.pt")
	os.WriteFile(src, []byte("the evaluated weights"), 0o644)
	size, d, err := store.Put(src)
	if err != nil {
		t.Fatal(err)
	}
	blob := filepath.Join(store.Dir, "sha256", d)
	for _, tc := range []struct {
		name    string
		replace func() error
	}{
		{"fifo", func() error { return syscall.Mkfifo(blob, 0o644) }},
		{"link out of the store", func() error { return os.Symlink(src, blob) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(blob)
			if err := tc.replace(); err != nil {
				t.Skip(err)
			}
			done := make(chan error, 1)
			go func() { done <- store.Restore(registry.Artifact{Path: "m.pt", Size: size, SHA256: d}, t.TempDir()) }()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("Restore succeeded")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Restore blocked")
			}
		})
	}
}
