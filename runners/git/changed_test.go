package git_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mlbot/mlbot/runners/git"
)

// TestChangedSince asks what a head changed since it parted from a base,
// in the source repository and in a partial clone made by Fetch, which
// must answer the same; and that a history which cannot say (a shallow
// clone, unrelated commits) is reported as such, not as "nothing changed".
func TestChangedSince(t *testing.T) {
	f := newFixture(t)
	srv := f.bare(t, t.TempDir(), "repo.git")
	ctx := context.Background()
	co := git.Checkout{URL: "file://" + srv, Dir: filepath.Join(t.TempDir(), "w")}
	if err := co.Fetch(ctx, f.merge, f.c4); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{f.dir, co.Dir} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			for _, tt := range []struct {
				name, base, head, mergeBase string
				want                        []string
			}{
				// The feature branch against main, which moved on since:
				// main's own change (configs/lr.txt) is not the branch's, and
				// the rename README.md -> docs/README.md lists both names.
				{"pull request", f.c5, f.c4, f.c2, []string{"README.md", "data/with space.csv", "docs/README.md", "model/train.py"}},
				{"fast-forward push", f.c4, f.merge, f.c4, []string{"configs/lr.txt"}},
				{"head behind base", f.merge, f.c4, f.c4, nil},
				{"same commit", f.c4, f.c4, f.c4, nil},
			} {
				files, mb, err := git.ChangedSince(ctx, dir, tt.base, tt.head)
				if err != nil || mb != tt.mergeBase || !slices.Equal(files, tt.want) {
					t.Errorf("%s: ChangedSince(%.7s, %.7s) = %q, %.7s, %v; want %q, %.7s", tt.name, tt.base, tt.head, files, mb, err, tt.want, tt.mergeBase)
				}
			}
		})
	}

	t.Run("unrelated histories", func(t *testing.T) {
		tree := gitIn(t, f.dir, "rev-parse", "HEAD^{tree}")
		orphan := gitIn(t, f.dir, "commit-tree", "-m", "orphan", tree)
		_, _, err := git.ChangedSince(ctx, f.dir, f.c5, orphan)
		if !errors.Is(err, git.ErrNoHistory) {
			t.Errorf("ChangedSince of unrelated commits: error = %v, want ErrNoHistory", err)
		}
	})
	t.Run("shallow clone", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "shallow")
		gitIn(t, filepath.Dir(dir), "clone", "--quiet", "--depth", "1", "--no-single-branch", "file://"+srv, dir)
		// Both commits are present, and git would name a "merge base" in
		// the cut history; ChangedSince must not trust it.
		gitIn(t, dir, "fetch", "--quiet", "--depth", "1", "origin", f.c5)
		_, _, err := git.ChangedSince(ctx, dir, f.c5, f.merge)
		if !errors.Is(err, git.ErrNoHistory) {
			t.Errorf("ChangedSince in a shallow clone: error = %v, want ErrNoHistory", err)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		for _, tt := range []struct{ base, head, want string }{
			{strings.Repeat("0", 40), f.c4, "merge base"},
			{"--output=/tmp/x", f.c4, "invalid revision"},
			{f.c4, "-p", "invalid revision"},
		} {
			_, _, err := git.ChangedSince(ctx, f.dir, tt.base, tt.head)
			if err == nil || !strings.Contains(err.Error(), tt.want) || errors.Is(err, git.ErrNoHistory) {
				t.Errorf("ChangedSince(%q, %q) error = %v, want %q", tt.base, tt.head, err, tt.want)
			}
		}
	})
}
