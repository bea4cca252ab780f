package git_test

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mlbot/mlbot/runners/git"
)

// TestQueries runs each question against the source repository and
// against a partial clone made by Fetch, which must answer the same.
func TestQueries(t *testing.T) {
	f := newFixture(t)
	srv := f.bare(t, t.TempDir(), "repo.git")
	ctx := context.Background()
	co := git.Checkout{URL: "file://" + srv, Dir: filepath.Join(t.TempDir(), "w")}
	if err := co.Fetch(ctx, f.merge, f.c4); err != nil {
		t.Fatal(err)
	}
	if err := co.Checkout(ctx, f.merge); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{f.dir, co.Dir} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Run("MergeBase", func(t *testing.T) {
				for _, tt := range []struct{ a, b, want string }{
					{f.c4, f.c5, f.c2},
					{f.c5, f.c4, f.c2},
					{f.c3, f.c4, f.c3},
					{f.merge, f.c4, f.c4},
				} {
					if got, err := git.MergeBase(ctx, dir, tt.a, tt.b); err != nil || got != tt.want {
						t.Errorf("MergeBase(%.7s, %.7s) = %.7s, %v; want %.7s", tt.a, tt.b, got, err, tt.want)
					}
				}
			})
			t.Run("FirstParents", func(t *testing.T) {
				for _, tt := range []struct {
					sha  string
					max  int
					want []string
				}{
					{f.merge, 0, []string{f.merge, f.c5, f.c2, f.c1}},
					{f.merge, 2, []string{f.merge, f.c5}},
					{f.c4, 10, []string{f.c4, f.c3, f.c2, f.c1}},
					{f.c1, 1, []string{f.c1}},
				} {
					if got, err := git.FirstParents(ctx, dir, tt.sha, tt.max); err != nil || !slices.Equal(got, tt.want) {
						t.Errorf("FirstParents(%.7s, %d) = %.7s, %v; want %.7s", tt.sha, tt.max, got, err, tt.want)
					}
				}
			})
			t.Run("ChangedFiles", func(t *testing.T) {
				for _, tt := range []struct {
					base, head string
					want       []string
				}{
					// A rename lists both paths; odd names come back verbatim.
					{f.c2, f.c4, []string{"README.md", "data/with space.csv", "docs/README.md", "model/train.py"}},
					{f.c5, f.merge, []string{"README.md", "data/with space.csv", "docs/README.md", "model/train.py"}},
					{f.c1, f.c2, []string{"README.md", "data/old.bin"}},
					{f.c4, f.c4, nil},
				} {
					if got, err := git.ChangedFiles(ctx, dir, tt.base, tt.head); err != nil || !slices.Equal(got, tt.want) {
						t.Errorf("ChangedFiles(%.7s, %.7s) = %q, %v; want %q", tt.base, tt.head, got, err, tt.want)
					}
				}
			})
			t.Run("ShowFile", func(t *testing.T) {
				for _, tt := range []struct {
					sha, path   string
					want        string
					wantErr     string
					wantMissing bool
				}{
					{sha: f.merge, path: ".mlbot.yml", want: "version: 1\n"},
					{sha: f.merge, path: "./model/train.py", want: "print('v2')\n"},
					{sha: f.merge, path: "data/with space.csv", want: "a,b\n"},
					{sha: f.merge, path: "README.md", wantMissing: true},
					{sha: f.merge, path: "data/*.csv", wantMissing: true}, // paths are literal
					{sha: f.merge, path: "model", wantErr: "is a tree"},
					{sha: f.merge, path: "", wantErr: "not a file path"},
					{sha: strings.Repeat("0", 40), path: ".mlbot.yml", wantErr: "unknown commit"},
					{sha: "--output=/tmp/x", path: ".mlbot.yml", wantErr: "invalid revision"},
				} {
					got, err := git.ShowFile(ctx, dir, tt.sha, tt.path)
					switch {
					case tt.wantMissing:
						if !errors.Is(err, fs.ErrNotExist) {
							t.Errorf("ShowFile(%q) error = %v, want fs.ErrNotExist", tt.path, err)
						}
					case tt.wantErr != "":
						if err == nil || !strings.Contains(err.Error(), tt.wantErr) || errors.Is(err, fs.ErrNotExist) {
							t.Errorf("ShowFile(%.7s, %q) error = %v, want %q", tt.sha, tt.path, err, tt.wantErr)
						}
					case err != nil || string(got) != tt.want:
						t.Errorf("ShowFile(%q) = %q, %v; want %q", tt.path, got, err, tt.want)
					}
				}
			})
		})
	}
	if got, err := git.Head(ctx, f.dir); err != nil || got != f.merge {
		t.Errorf("Head = %q, %v; want %q", got, err, f.merge)
	}
	if _, err := git.Head(ctx, t.TempDir()); err == nil {
		t.Error("Head of a non-repository succeeded")
	}
}
