package git

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"path"
	"strconv"
	"strings"
)

// These functions only read the repository in dir. They need no
// credential because Fetch brings all commits and trees; only file
// contents may be missing from a partial clone (see Checkout.ShowFile).

// Head returns the commit checked out in the work tree dir.
func Head(ctx context.Context, dir string) (string, error) {
	out, err := command{dir: dir}.run(ctx, "rev-parse", "--verify", "HEAD^{commit}")
	if err != nil {
		return "", fmt.Errorf("git: head of %s: %w", dir, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// MergeBase returns the best common ancestor of a and b: the commit a pull
// request's changes are measured from.
func MergeBase(ctx context.Context, dir, a, b string) (string, error) {
	if err := checkRevs(a, b); err != nil {
		return "", err
	}
	out, err := command{dir: dir}.run(ctx, "merge-base", "--end-of-options", a, b)
	if err != nil {
		return "", fmt.Errorf("git: merge base of %s and %s: %w", a, b, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// FirstParents returns up to max commits (all when max <= 0) along the
// first-parent chain from sha, newest first, sha included: the history of
// the main branch as merges made it, where a base with results is found.
func FirstParents(ctx context.Context, dir, sha string, max int) ([]string, error) {
	if err := checkRev(sha); err != nil {
		return nil, err
	}
	args := []string{"rev-list", "--first-parent"}
	if max > 0 {
		args = append(args, "-n", strconv.Itoa(max))
	}
	out, err := command{dir: dir}.run(ctx, append(args, "--end-of-options", sha)...)
	if err != nil {
		return nil, fmt.Errorf("git: first parents of %s: %w", sha, err)
	}
	return lines(out), nil
}

// ChangedFiles returns the paths that differ between the trees of base and
// head, sorted. Rename detection is off, so a moved file lists both its old
// and new path (both matter to path filters) and no file contents are
// needed.
func ChangedFiles(ctx context.Context, dir, base, head string) ([]string, error) {
	if err := checkRevs(base, head); err != nil {
		return nil, err
	}
	out, err := command{dir: dir}.run(ctx, "diff", "--name-only", "--no-renames", "--no-ext-diff", "-z", "--end-of-options", base, head, "--")
	if err != nil {
		return nil, fmt.Errorf("git: changed files %s..%s: %w", base, head, err)
	}
	var files []string
	for _, f := range bytes.Split(out, []byte{0}) {
		if len(f) > 0 {
			files = append(files, string(f))
		}
	}
	return files, nil
}

// ErrNoHistory is wrapped by ChangedSince when the history does not say
// what changed: a shallow clone, or commits without a common ancestor.
var ErrNoHistory = errors.New("the history does not say what changed")

// ChangedSince returns the paths head changed since it parted from base:
// ChangedFiles from the merge base of base and head (returned too) to
// head, which is what a pull request's "Files changed" shows. A rename
// lists its old and its new path. In a shallow repository, or when base
// and head share no commit, it returns an error wrapping ErrNoHistory:
// whatever merge base git found there would not be the real one.
func ChangedSince(ctx context.Context, dir, base, head string) (files []string, mergeBase string, err error) {
	if err := checkRevs(base, head); err != nil {
		return nil, "", err
	}
	out, err := command{dir: dir}.run(ctx, "rev-parse", "--is-shallow-repository")
	if err != nil {
		return nil, "", fmt.Errorf("git: changed since %s: %w", base, err)
	}
	if strings.TrimSpace(string(out)) == "true" {
		return nil, "", fmt.Errorf("git: changed since %s: shallow clone: %w", base, ErrNoHistory)
	}
	out, err = command{dir: dir}.run(ctx, "merge-base", "--end-of-options", base, head)
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 1 && len(bytes.TrimSpace(out)) == 0 {
			return nil, "", fmt.Errorf("git: %s and %s share no commit: %w", base, head, ErrNoHistory)
		}
		return nil, "", fmt.Errorf("git: merge base of %s and %s: %w", base, head, err)
	}
	mergeBase = strings.TrimSpace(string(out))
	files, err = ChangedFiles(ctx, dir, mergeBase, head)
	return files, mergeBase, err
}

// ShowFile returns the content of path (relative to the repository root)
// at commit sha. A path absent from that commit gives an error wrapping
// fs.ErrNotExist, so callers can tell "no .mlbot.yml" from a broken
// checkout. In a partial clone, read files of commits not checked out with
// Checkout.ShowFile, which may fetch them.
func ShowFile(ctx context.Context, dir, sha, path string) ([]byte, error) {
	return showFile(ctx, command{dir: dir}, sha, path)
}

func showFile(ctx context.Context, git command, sha, name string) ([]byte, error) {
	if err := checkRev(sha); err != nil {
		return nil, err
	}
	clean := path.Clean("/" + name)[1:]
	if clean == "" {
		return nil, fmt.Errorf("git: show %s: %q is not a file path", sha, name)
	}
	out, err := git.run(ctx, "rev-parse", "--verify", "--end-of-options", sha+"^{commit}")
	if err != nil {
		return nil, fmt.Errorf("git: show %s: unknown commit: %w", sha, err)
	}
	commit := strings.TrimSpace(string(out))
	// The tree entry says whether the path exists and what it is without
	// reading the file, which a partial clone may not have yet.
	out, err = git.run(ctx, "--literal-pathspecs", "ls-tree", "-z", "--full-tree", commit, "--", clean)
	if err != nil {
		return nil, fmt.Errorf("git: show %s:%s: %w", sha, clean, err)
	}
	entry, _, _ := bytes.Cut(out, []byte{0})
	meta, entryPath, _ := strings.Cut(string(entry), "\t")
	fields := strings.Fields(meta)
	if len(fields) != 3 || entryPath != clean {
		return nil, fmt.Errorf("git: show %s:%s: %w", sha, clean, fs.ErrNotExist)
	}
	if fields[1] != "blob" {
		return nil, fmt.Errorf("git: show %s:%s: is a %s, not a file", sha, clean, fields[1])
	}
	content, err := git.run(ctx, "cat-file", "blob", fields[2])
	if err != nil {
		var ge *gitError
		if errors.As(err, &ge) && strings.Contains(ge.stderr, "promisor remote") {
			return nil, fmt.Errorf("git: show %s:%s: content not fetched yet and could not be (Checkout.ShowFile fetches with the credential): %w", sha, clean, err)
		}
		return nil, fmt.Errorf("git: show %s:%s: %w", sha, clean, err)
	}
	return content, nil
}

func checkRevs(revs ...string) error {
	for _, r := range revs {
		if err := checkRev(r); err != nil {
			return err
		}
	}
	return nil
}
