package git

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// Checkout is a workspace for one repository: where to fetch from, the
// credential to fetch with, and the local directory.
type Checkout struct {
	// URL is the repository's clone URL from the webhook payload. It must
	// not carry credentials: they would end up in .git/config.
	URL string
	// Auth is the value of an HTTP Authorization header ("Basic …",
	// "Bearer …"), or "" for a public repository. It is given to git only
	// in a private configuration file that exists while git runs (see
	// credentialFile): it is in no environment, argument list, error or
	// file of the workspace.
	Auth string
	// Dir is the main work tree; Fetch creates it.
	Dir string
}

// commitRef is where Fetch keeps each fetched commit, so that nothing
// (gc, a later fetch) can drop it while runs still need it.
func commitRef(sha string) string { return "refs/mlbot/commits/" + sha }

// cmd returns the setting for git commands in dir that may contact the
// remote: a fetch, or a checkout that lazily fetches the blobs a partial
// clone left out. The caller must call done when its git commands have
// finished: it removes the credential file.
func (c Checkout) cmd(dir string) (git command, done func(), err error) {
	git = command{dir: dir, secrets: secretsOf(c.Auth)}
	if c.Auth == "" {
		return git, func() {}, nil
	}
	path, done, err := credentialFile(c.URL, c.Auth)
	if err != nil {
		return command{}, nil, err
	}
	git.config = [][2]string{{"include.path", path}}
	return git, done, nil
}

// Fetch makes the given commits available in Dir, initialising the
// repository if needed. It asks for them by SHA with blobs filtered out
// (history and trees arrive now, file contents when checked out); if the
// server refuses requests for commits by SHA, it fetches every branch
// instead and checks that the commits are among them.
func (c Checkout) Fetch(ctx context.Context, shas ...string) error {
	if len(shas) == 0 {
		return errors.New("git: fetch: no commits given")
	}
	for _, sha := range shas {
		if err := checkSHA(sha); err != nil {
			return err
		}
	}
	if err := c.checkURL(); err != nil {
		return err
	}
	if err := c.init(ctx); err != nil {
		return err
	}
	git, done, err := c.cmd(c.Dir)
	if err != nil {
		return err
	}
	defer done()
	if _, err := git.run(ctx, "config", "remote.origin.url", c.URL); err != nil {
		return fmt.Errorf("git: set remote: %w", err)
	}
	out, _ := git.run(ctx, "config", "--get", "remote.origin.promisor")
	wasPartial := strings.TrimSpace(string(out)) == "true"

	args := []string{"fetch", "--no-tags", "--no-recurse-submodules", "--filter=blob:none", "origin"}
	for _, sha := range shas {
		args = append(args, "+"+sha+":"+commitRef(sha))
	}
	bySHA := "nothing"
	if _, err := git.run(ctx, args...); err == nil {
		return nil
	} else if ctx.Err() != nil {
		return fmt.Errorf("git: fetch from %s: %w", c.redactedURL(), err)
	} else if isAuthError(err) {
		return fmt.Errorf("git: fetch from %s: %w (the credential is missing, wrong or lacks access to the repository): %w", c.redactedURL(), ErrAuth, err)
	} else {
		bySHA = err.Error()
	}

	// The refusing server is typically protocol v0 without
	// uploadpack.allowAnySHA1InWant. It would refuse the blob requests of a
	// partial clone just the same, so this fetch must be complete; undo the
	// promisor setting the failed --filter fetch recorded.
	if !wasPartial {
		git.run(ctx, "config", "--unset", "remote.origin.promisor")
		git.run(ctx, "config", "--unset", "remote.origin.partialclonefilter")
	}
	if _, err := git.run(ctx, "fetch", "--no-tags", "--no-recurse-submodules", "origin", "+refs/heads/*:refs/remotes/origin/*"); err != nil {
		if isAuthError(err) {
			err = fmt.Errorf("%w: %w", ErrAuth, err)
		}
		return fmt.Errorf("git: fetch from %s: by SHA failed (%s), then fetching all branches failed: %w", c.redactedURL(), bySHA, err)
	}
	for _, sha := range shas {
		if _, err := git.run(ctx, "cat-file", "-e", sha+"^{commit}"); err != nil {
			return fmt.Errorf("git: commit %s is not on any branch of %s (fetching it by SHA failed: %s): %w", sha, c.redactedURL(), bySHA, err)
		}
		if _, err := git.run(ctx, "update-ref", commitRef(sha), sha); err != nil {
			return fmt.Errorf("git: keep commit %s: %w", sha, err)
		}
	}
	return nil
}

// init creates Dir as a git repository unless it already is one.
func (c Checkout) init(ctx context.Context) error {
	if c.Dir == "" {
		return errors.New("git: checkout has no Dir")
	}
	if _, err := os.Stat(filepath.Join(c.Dir, ".git")); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("git: %w", err)
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return fmt.Errorf("git: create work tree: %w", err)
	}
	// The unborn branch is never used; naming it silences git's hint.
	git := command{dir: c.Dir, config: [][2]string{{"init.defaultBranch", "main"}}}
	if _, err := git.run(ctx, "init", "--quiet"); err != nil {
		return fmt.Errorf("git: init %s: %w", c.Dir, err)
	}
	return nil
}

// Checkout makes the work tree in Dir a detached checkout of sha, which
// Fetch must have fetched. Local changes are discarded: a workspace holds
// exactly the commit under test.
func (c Checkout) Checkout(ctx context.Context, sha string) error {
	if err := checkSHA(sha); err != nil {
		return err
	}
	git, done, err := c.cmd(c.Dir)
	if err != nil {
		return err
	}
	defer done()
	if _, err := git.run(ctx, "checkout", "--quiet", "--force", "--detach", sha); err != nil {
		return fmt.Errorf("git: check out %s: %w", sha, err)
	}
	return nil
}

// Worktree checks sha out, detached, in a second work tree at dir sharing
// Dir's objects: the base commit of a pull request, evaluated beside the
// head. Calling it again for the same dir checks out sha there.
func (c Checkout) Worktree(ctx context.Context, sha, dir string) error {
	if err := checkSHA(sha); err != nil {
		return err
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("git: worktree: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
		git, done, err := c.cmd(dir)
		if err != nil {
			return err
		}
		defer done()
		if _, err := git.run(ctx, "checkout", "--quiet", "--force", "--detach", sha); err != nil {
			return fmt.Errorf("git: check out %s in %s: %w", sha, dir, err)
		}
		return nil
	}
	git, done, err := c.cmd(c.Dir)
	if err != nil {
		return err
	}
	defer done()
	// Forget work trees whose directory was deleted, so dir can be reused.
	if _, err := git.run(ctx, "worktree", "prune"); err != nil {
		return fmt.Errorf("git: worktree prune: %w", err)
	}
	if _, err := git.run(ctx, "worktree", "add", "--quiet", "--force", "--detach", dir, sha); err != nil {
		return fmt.Errorf("git: add work tree %s at %s: %w", dir, sha, err)
	}
	return nil
}

// ShowFile is like the package's ShowFile but may fetch the file's
// content from the remote, with the credential: after a Fetch, the
// contents of commits not yet checked out are still on the server.
func (c Checkout) ShowFile(ctx context.Context, sha, path string) ([]byte, error) {
	git, done, err := c.cmd(c.Dir)
	if err != nil {
		return nil, err
	}
	defer done()
	return showFile(ctx, git, sha, path)
}

// checkURL refuses a URL with a password in it: git would store it in
// .git/config and print it in messages. It also refuses control
// characters in the URL or the credential, which could add lines to the
// credential file.
func (c Checkout) checkURL() error {
	if c.URL == "" {
		return errors.New("git: checkout has no URL")
	}
	if strings.ContainsFunc(c.URL, isControl) {
		return fmt.Errorf("git: URL %q contains control characters", c.URL)
	}
	if strings.ContainsFunc(c.Auth, isControl) {
		return errors.New("git: the credential contains control characters")
	}
	if strings.HasPrefix(c.URL, "-") {
		return fmt.Errorf("git: invalid URL %q", c.URL)
	}
	if u, err := url.Parse(c.URL); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return fmt.Errorf("git: URL %s carries a password; pass credentials in Auth", u.Redacted())
		}
	}
	return nil
}

// redactedURL is the URL fit for an error message.
func (c Checkout) redactedURL() string {
	if u, err := url.Parse(c.URL); err == nil {
		return u.Redacted()
	}
	return c.URL
}

// isAuthError reports whether git failed because the server wanted other
// credentials. With prompts disabled, git reports a 401 as being unable to
// read a username.
func isAuthError(err error) bool {
	var ge *gitError
	if !errors.As(err, &ge) {
		return false
	}
	for _, s := range []string{
		"could not read Username", "could not read Password", "terminal prompts disabled",
		"Authentication failed", "HTTP Basic: Access denied",
		"requested URL returned error: 401", "requested URL returned error: 403",
	} {
		if strings.Contains(ge.stderr, s) {
			return true
		}
	}
	return false
}

// FetchBranch fetches the tip of branch from the remote, initialising the
// repository if needed, and returns its commit. It serves hosts whose
// webhooks name a merge request's target branch but not its commit.
func (c Checkout) FetchBranch(ctx context.Context, branch string) (string, error) {
	if err := checkRev(branch); err != nil {
		return "", err
	}
	if strings.ContainsAny(branch, " ~^:?*[\\") {
		return "", fmt.Errorf("git: invalid branch name %q", branch)
	}
	if err := c.checkURL(); err != nil {
		return "", err
	}
	if err := c.init(ctx); err != nil {
		return "", err
	}
	git, done, err := c.cmd(c.Dir)
	if err != nil {
		return "", err
	}
	defer done()
	if _, err := git.run(ctx, "config", "remote.origin.url", c.URL); err != nil {
		return "", fmt.Errorf("git: set remote: %w", err)
	}
	ref := "refs/mlbot/branches/" + branch
	if _, err := git.run(ctx, "fetch", "--no-tags", "--no-recurse-submodules", "--filter=blob:none", "origin", "+refs/heads/"+branch+":"+ref); err != nil {
		return "", fmt.Errorf("git: fetch branch %s from %s: %w", branch, c.redactedURL(), err)
	}
	out, err := git.run(ctx, "rev-parse", "--verify", ref+"^{commit}")
	if err != nil {
		return "", fmt.Errorf("git: resolve %s: %w", branch, err)
	}
	return strings.TrimSpace(string(out)), nil
}
