package git_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlbot/mlbot/runners/git"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestFetchCheckoutFileURL runs the pipeline's sequence against a
// file:// remote: fetch head and base, check out head, base in a second
// work tree.
func TestFetchCheckoutFileURL(t *testing.T) {
	f := newFixture(t)
	srv := f.bare(t, t.TempDir(), "repo.git")
	ctx := context.Background()
	tests := []struct {
		name       string
		head, base string
		wantHead   string // content of model/train.py at head
		wantBase   string
	}{
		{"feature tip against main", f.c4, f.c5, "print('v2')\n", "print('v1')\n"},
		{"commit inside a branch", f.c3, f.c1, "print('v2')\n", "print('v1')\n"},
		{"merge commit", f.merge, f.c2, "print('v2')\n", "print('v1')\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			co := git.Checkout{URL: "file://" + srv, Dir: filepath.Join(root, "head")}
			if err := co.Fetch(ctx, tt.head, tt.base); err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			// Before any checkout, contents come from the remote on demand.
			if got, err := co.ShowFile(ctx, tt.base, "model/train.py"); err != nil || string(got) != tt.wantBase {
				t.Errorf("Checkout.ShowFile(base) = %q, %v; want %q", got, err, tt.wantBase)
			}
			if err := co.Checkout(ctx, tt.head); err != nil {
				t.Fatalf("Checkout: %v", err)
			}
			baseDir := filepath.Join(root, "base")
			if err := co.Worktree(ctx, tt.base, baseDir); err != nil {
				t.Fatalf("Worktree: %v", err)
			}
			if got := readFile(t, filepath.Join(co.Dir, "model/train.py")); got != tt.wantHead {
				t.Errorf("head model/train.py = %q, want %q", got, tt.wantHead)
			}
			if got := readFile(t, filepath.Join(baseDir, "model/train.py")); got != tt.wantBase {
				t.Errorf("base model/train.py = %q, want %q", got, tt.wantBase)
			}
			for dir, want := range map[string]string{co.Dir: tt.head, baseDir: tt.base} {
				if got, err := git.Head(ctx, dir); err != nil || got != want {
					t.Errorf("Head(%s) = %q, %v; want %q", dir, got, err, want)
				}
			}
			// Idempotent: asynq may run the task again in the same place.
			if err := co.Fetch(ctx, tt.head, tt.base); err != nil {
				t.Errorf("second Fetch: %v", err)
			}
			if err := co.Checkout(ctx, tt.head); err != nil {
				t.Errorf("second Checkout: %v", err)
			}
			if err := co.Worktree(ctx, tt.head, baseDir); err != nil {
				t.Errorf("Worktree again: %v", err)
			}
			if got, _ := git.Head(ctx, baseDir); got != tt.head {
				t.Errorf("reused work tree at %s, want %s", got, tt.head)
			}
			if err := os.RemoveAll(baseDir); err != nil {
				t.Fatal(err)
			}
			if err := co.Worktree(ctx, tt.base, baseDir); err != nil {
				t.Errorf("Worktree after its directory was deleted: %v", err)
			}
		})
	}
}

// TestFetchPartial checks that Fetch leaves file contents on the server:
// a model repository's history of data files must not be downloaded.
func TestFetchPartial(t *testing.T) {
	f := newFixture(t)
	srv := f.bare(t, t.TempDir(), "repo.git")
	co := git.Checkout{URL: "file://" + srv, Dir: filepath.Join(t.TempDir(), "w")}
	if err := co.Fetch(context.Background(), f.c4); err != nil {
		t.Fatal(err)
	}
	missing := gitIn(t, co.Dir, "rev-list", "--objects", "--missing=print", f.c4)
	if !strings.Contains(missing, "\n?") {
		t.Errorf("all objects fetched; want blobs left out:\n%s", missing)
	}
}

// TestFetchFallback makes the server refuse requests for commits by SHA,
// as protocol v0 does without uploadpack.allowAnySHA1InWant: Fetch must
// fall back to fetching branches, and fetch completely.
func TestFetchFallback(t *testing.T) {
	home := t.TempDir()
	writeFile(t, home, ".gitconfig", "[protocol]\n\tversion = 0\n")
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	f := newFixture(t)
	srv := f.bare(t, t.TempDir(), "repo.git")
	ctx := context.Background()
	tests := []struct {
		name    string
		shas    []string
		wantErr string
	}{
		{"commits on branches", []string{f.c3, f.c5}, ""},
		{"commit on no branch", []string{f.c3, f.dangling}, "is not on any branch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			co := git.Checkout{URL: "file://" + srv, Dir: filepath.Join(t.TempDir(), "w")}
			err := co.Fetch(ctx, tt.shas...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Fetch error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if out := gitIn(t, co.Dir, "rev-list", "--objects", "--missing=print", "--all"); strings.Contains(out, "\n?") {
				t.Errorf("objects missing after fallback fetch:\n%s", out)
			}
			if err := co.Checkout(ctx, tt.shas[0]); err != nil {
				t.Fatalf("Checkout: %v", err)
			}
			if got := readFile(t, filepath.Join(co.Dir, "model/train.py")); got != "print('v2')\n" {
				t.Errorf("model/train.py = %q", got)
			}
		})
	}
}

func TestFetchRejectsBadInput(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "w")
	good := strings.Repeat("a", 40)
	tests := []struct {
		name string
		co   git.Checkout
		shas []string
		want string
	}{
		{"option as sha", git.Checkout{URL: "file:///x", Dir: dir}, []string{"--upload-pack=touch /tmp/pwned"}, "not a full commit SHA"},
		{"short sha", git.Checkout{URL: "file:///x", Dir: dir}, []string{"abc123"}, "not a full commit SHA"},
		{"no commits", git.Checkout{URL: "file:///x", Dir: dir}, nil, "no commits"},
		{"password in URL", git.Checkout{URL: "https://u:hunter22@example.com/r.git", Dir: dir}, []string{good}, "carries a password"},
		{"option as URL", git.Checkout{URL: "--upload-pack=x", Dir: dir}, []string{good}, "invalid URL"},
		{"newline in URL", git.Checkout{URL: "https://example.com/r.git\"]\n[core]\n\tsshCommand = x", Dir: dir}, []string{good}, "control characters"},
		{"newline in credential", git.Checkout{URL: "https://example.com/r.git", Auth: "Basic x\"\n[core]\n\thunter22 = x", Dir: dir}, []string{good}, "control characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.co.Fetch(context.Background(), tt.shas...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Fetch error = %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter22") {
				t.Errorf("error shows the password: %v", err)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("bad input still created the work tree")
			}
		})
	}
}
