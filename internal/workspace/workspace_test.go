package workspace_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlbot/mlbot/internal/workspace"
)

// setup makes root/work (the workspace) and root/secret.txt beside it.
func setup(t *testing.T) (root, dir string) {
	t.Helper()
	root = t.TempDir()
	dir = filepath.Join(root, "work")
	for p, body := range map[string]string{
		"work/metrics.json":    `{"accuracy": 0.9}`,
		"work/eval/extra.json": `{"f1": 0.8}`,
		"secret.txt":           "do not read",
		"outside/passwd":       "root:x:0:0",
	} {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root, dir
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Skipf("symlinks unavailable: %v", err)
	}
}

func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := mkfifoErr(path); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
}

// TestReadFile attacks the reader the way a training can shape its
// checkout: links and ".." out of it, FIFOs, directories and huge files.
func TestReadFile(t *testing.T) {
	root, dir := setup(t)
	symlink(t, "/etc/passwd", filepath.Join(dir, "passwd.json"))
	symlink(t, filepath.Join(root, "secret.txt"), filepath.Join(dir, "abs-escape.json"))
	symlink(t, "../secret.txt", filepath.Join(dir, "rel-escape.json"))
	symlink(t, "metrics.json", filepath.Join(dir, "inside.json"))
	symlink(t, filepath.Join(root, "outside"), filepath.Join(dir, "linkdir"))
	symlink(t, "../../outside", filepath.Join(dir, "eval", "up"))
	symlink(t, "eval", filepath.Join(dir, "evallink"))
	mkfifo(t, filepath.Join(dir, "fifo.json"))
	symlink(t, "fifo.json", filepath.Join(dir, "to-fifo.json"))
	sparse := filepath.Join(dir, "model.bin")
	if err := os.WriteFile(sparse, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(sparse, 1<<30); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		file    string
		want    string
		wantErr error  // also checked: every error here wraps ErrRefused
		errText string // a part of the message
	}{
		{name: "regular file", file: "metrics.json", want: `{"accuracy": 0.9}`},
		{name: "nested file", file: "eval/extra.json", want: `{"f1": 0.8}`},
		{name: "symlink inside", file: "inside.json", want: `{"accuracy": 0.9}`},
		{name: "symlinked directory inside", file: "evallink/extra.json", want: `{"f1": 0.8}`},
		{name: "symlink to /etc/passwd", file: "passwd.json", errText: "escapes"},
		{name: "symlink out by absolute target", file: "abs-escape.json", errText: "escapes"},
		{name: "symlink out by relative target", file: "rel-escape.json", errText: "escapes"},
		{name: "dot dot", file: "../../etc/passwd", errText: "inside the workspace"},
		{name: "dot dot inside a path", file: "eval/../../secret.txt", errText: "inside the workspace"},
		{name: "absolute path", file: "/etc/passwd", errText: "inside the workspace"},
		{name: "symlinked intermediate directory out", file: "linkdir/passwd", errText: "escapes"},
		{name: "relative symlinked intermediate directory out", file: "eval/up/passwd", errText: "escapes"},
		{name: "fifo", file: "fifo.json", wantErr: workspace.ErrNotRegular, errText: "FIFO"},
		{name: "symlink to a fifo", file: "to-fifo.json", wantErr: workspace.ErrNotRegular},
		{name: "directory", file: "eval", wantErr: workspace.ErrNotRegular, errText: "directory"},
		{name: "missing", file: "nope.json", wantErr: fs.ErrNotExist},
		{name: "sparse file over the limit", file: "model.bin", errText: "1073741824 bytes, more than the 1048576-byte limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			got, err := workspace.ReadFile(ctx, dir, tt.file, 1<<20)
			if time.Since(start) > 5*time.Second {
				t.Fatalf("ReadFile took %s", time.Since(start))
			}
			if tt.wantErr == nil && tt.errText == "" {
				if err != nil || string(got) != tt.want {
					t.Fatalf("ReadFile = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ReadFile = %q, want an error", got)
			}
			if !errors.Is(err, workspace.ErrRefused) {
				t.Errorf("error %v does not wrap ErrRefused", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.errText) {
				t.Errorf("error %q does not contain %q", err, tt.errText)
			}
		})
	}
}

// A training's leftover process swaps the metrics file between a regular
// file and a FIFO while mlbot reads it: every read must end, with the
// file's bytes or a refusal, and never wait for a FIFO writer.
func TestReadFileFIFORace(t *testing.T) {
	_, dir := setup(t)
	p := filepath.Join(dir, "metrics.json")
	tmp := filepath.Join(dir, "metrics.tmp")
	if err := mkfifoErr(filepath.Join(dir, "probe")); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	stop := make(chan struct{})
	swapped := make(chan struct{})
	go func() {
		defer close(swapped)
		for {
			select {
			case <-stop:
				return
			default:
			}
			os.WriteFile(tmp, []byte(`{"accuracy": 0.9}`), 0o644)
			os.Rename(tmp, p)
			os.Remove(p)
			mkfifoErr(p)
			os.Remove(p)
		}
	}()
	defer func() { close(stop); <-swapped }()

	done := make(chan [2]int, 1)
	go func() {
		var files, fifos int
		deadline := time.Now().Add(3 * time.Second)
		for i := 0; i < 100000 && (time.Now().Before(deadline) || files == 0 || fifos == 0); i++ {
			data, err := workspace.ReadFile(context.Background(), dir, "metrics.json", 1<<20)
			switch {
			case err == nil && string(data) == `{"accuracy": 0.9}`:
				files++
			case errors.Is(err, workspace.ErrNotRegular):
				fifos++
			}
		}
		done <- [2]int{files, fifos}
	}()
	select {
	case n := <-done:
		t.Logf("%d reads of the file, %d FIFOs refused", n[0], n[1])
		if n[1] == 0 {
			t.Error("the race never put a FIFO in front of the reader")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("a read blocked on a FIFO swapped in for the metrics file")
	}
}

// A file that grows past its limit while it is copied is cut off with a
// TooLargeError, after exactly limit bytes.
func TestReaderFileGrows(t *testing.T) {
	_, dir := setup(t)
	p := filepath.Join(dir, "model.bin")
	if err := os.WriteFile(p, []byte("1234"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := workspace.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	f, err := d.Open("model.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Size() != 4 {
		t.Fatalf("Size = %d, want 4", f.Size())
	}
	if err := os.WriteFile(p, []byte("123456789"), 0o644); err != nil { // grows after the size check
		t.Fatal(err)
	}
	got, err := io.ReadAll(f.Reader(context.Background(), 4))
	var tl *workspace.TooLargeError
	if !errors.As(err, &tl) || string(got) != "1234" {
		t.Fatalf("read %q, %v; want 1234 and a TooLargeError", got, err)
	}
}

// A read under an ended context returns the context's error.
func TestReadFileContext(t *testing.T) {
	_, dir := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := workspace.ReadFile(ctx, dir, "metrics.json", 1<<20); !errors.Is(err, context.Canceled) {
		t.Fatalf("ReadFile error %v, want context.Canceled", err)
	}
}

// FS serves globs and walks; a FIFO in the tree is refused, not waited on.
func TestFS(t *testing.T) {
	root, dir := setup(t)
	mkfifo(t, filepath.Join(dir, "eval", "pipe"))
	symlink(t, filepath.Join(root, "outside"), filepath.Join(dir, "linkdir"))
	d, err := workspace.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fsys := d.FS()
	matches, err := fs.Glob(fsys, "eval/*")
	if err != nil || strings.Join(matches, ",") != "eval/extra.json,eval/pipe" {
		t.Fatalf("Glob = %v, %v", matches, err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := fs.ReadFile(fsys, "eval/pipe")
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, workspace.ErrNotRegular) {
			t.Fatalf("reading a FIFO through FS: %v, want ErrNotRegular", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("FS blocked on a FIFO")
	}
	if _, err := fs.Stat(fsys, "linkdir/passwd"); !errors.Is(err, workspace.ErrRefused) {
		t.Fatalf("Stat through a symlinked directory out of the workspace: %v, want a refusal", err)
	}
	if b, err := fs.ReadFile(fsys, "eval/extra.json"); err != nil || string(b) != `{"f1": 0.8}` {
		t.Fatalf("ReadFile = %q, %v", b, err)
	}
}
