package git_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// gitIn runs git for building test fixtures, isolated from the user's
// configuration and with fixed identities so commits are reproducible.
func gitIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "init.defaultBranch=main"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com",
		"GIT_AUTHOR_DATE=2024-01-01T00:00:00Z", "GIT_COMMITTER_DATE=2024-01-01T00:00:00Z",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fixture is a repository with this history:
//
//	main:     c1 ── c2 ── c5 ── merge
//	                  \          /
//	feature:           c3 ── c4
//
// plus dangling, a commit no branch reaches.
type fixture struct {
	dir                       string // work tree of the source repository
	c1, c2, c3, c4, c5, merge string
	dangling                  string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	f := fixture{dir: filepath.Join(t.TempDir(), "src")}
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	git := func(args ...string) string { return gitIn(t, f.dir, args...) }
	commit := func(msg string) string {
		git("add", "-A")
		git("commit", "--quiet", "-m", msg)
		return git("rev-parse", "HEAD")
	}
	git("init", "--quiet")
	writeFile(t, f.dir, ".mlbot.yml", "version: 1\n")
	writeFile(t, f.dir, "model/train.py", "print('v1')\n")
	writeFile(t, f.dir, "data/old.bin", "only in c1\n")
	f.c1 = commit("c1")
	writeFile(t, f.dir, "README.md", "readme\n")
	if err := os.Remove(filepath.Join(f.dir, "data/old.bin")); err != nil {
		t.Fatal(err)
	}
	f.c2 = commit("c2")
	git("checkout", "--quiet", "-b", "feature")
	writeFile(t, f.dir, "model/train.py", "print('v2')\n")
	f.c3 = commit("c3")
	if err := os.Mkdir(filepath.Join(f.dir, "docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	git("mv", "README.md", "docs/README.md")
	writeFile(t, f.dir, "data/with space.csv", "a,b\n")
	f.c4 = commit("c4")
	git("checkout", "--quiet", "main")
	writeFile(t, f.dir, "configs/lr.txt", "3e-4\n")
	f.c5 = commit("c5")
	git("merge", "--quiet", "--no-ff", "-m", "merge feature", "feature")
	f.merge = git("rev-parse", "HEAD")
	tree := git("rev-parse", "HEAD^{tree}")
	f.dangling = git("commit-tree", "-p", "HEAD", "-m", "dangling", tree)
	return f
}

// bare makes a bare copy of the fixture at root/name, as a host serves it,
// with the dangling commit copied too and partial clones allowed.
func (f fixture) bare(t *testing.T, root, name string) string {
	t.Helper()
	dst := filepath.Join(root, name)
	gitIn(t, root, "clone", "--quiet", "--bare", "--no-local", f.dir, dst)
	gitIn(t, dst, "fetch", "--quiet", f.dir, f.dangling)
	// As GitHub and GitLab do; without it git ignores --filter, with a
	// warning.
	gitIn(t, dst, "config", "uploadpack.allowFilter", "true")
	return dst
}
