package bot

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ErrForeignCloneHost is wrapped by CloneAuth when a payload's clone URL is
// not the URL of the event's repository on the configured host; retrying
// cannot help, and no credential was sent anywhere.
var ErrForeignCloneHost = errors.New("clone URL refused")

// CheckCloneURL returns nil when cloneURL is the clone URL of the
// repository repoPath ("owner/name", or GitLab's "group/sub/project") on
// the host whose repositories live under gitBase ("https://github.com/",
// "https://gitlab.example.com/gitlab/"), and otherwise an error wrapping
// ErrForeignCloneHost that says what is wrong.
//
// A webhook payload names the clone URL, and mlbot sends it the host's
// token; a sender that knows the webhook secret must not be able to point
// that token at a host, a port, a scheme or a repository of its choosing.
// So the URL must be:
//   - https, or http only when gitBase itself is http (a simulator);
//   - exactly gitBase's host and port (the scheme's default port when none
//     is written);
//   - exactly the path gitBase's path + "/" + repoPath, with or without
//     ".git", compared case-insensitively as the hosts compare names;
//   - nothing else: no user information, query, fragment, percent-escape,
//     backslash, white space or "." and ".." segments.
func CheckCloneURL(cloneURL, gitBase, repoPath string) error {
	refuse := func(why string) error {
		return fmt.Errorf("%w: %q %s", ErrForeignCloneHost, cloneURL, why)
	}
	base, err := url.Parse(gitBase)
	if err != nil || base.Host == "" || (base.Scheme != "https" && base.Scheme != "http") {
		return fmt.Errorf("%w: the configured host URL %q is not http(s)://host[:port][/path]", ErrForeignCloneHost, gitBase)
	}
	if err := checkRepoPath(repoPath); err != nil {
		return fmt.Errorf("%w: %v", ErrForeignCloneHost, err)
	}
	if strings.ContainsAny(cloneURL, "%@\\#?") || strings.ContainsFunc(cloneURL, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return refuse("has user information, a query, a fragment, an escape or a character no clone URL has")
	}
	u, err := url.Parse(cloneURL)
	if err != nil {
		return refuse("is not a URL")
	}
	if u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return refuse("has user information, a query or a fragment")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && !(scheme == "http" && base.Scheme == "http") {
		return refuse("is not https")
	}
	if !strings.EqualFold(u.Hostname(), base.Hostname()) || portOf(scheme, u.Port()) != portOf(base.Scheme, base.Port()) {
		return refuse("is not on " + base.Host)
	}
	want := strings.TrimSuffix(base.Path, "/") + "/" + repoPath
	if !strings.EqualFold(u.Path, want) && !strings.EqualFold(u.Path, want+".git") {
		return refuse("is not the repository " + repoPath + " (want " + base.Scheme + "://" + base.Host + want + ".git)")
	}
	return nil
}

// checkRepoPath accepts the names hosts allow for namespaces and
// repositories: at least two segments of letters, digits, '.', '-' and
// '_', none of them "." or "..".
func checkRepoPath(p string) error {
	segs := strings.Split(p, "/")
	if len(segs) < 2 {
		return fmt.Errorf("repository %q is not owner/name", p)
	}
	for _, s := range segs {
		if s == "" || s == "." || s == ".." || strings.ContainsFunc(s, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_')
		}) {
			return fmt.Errorf("repository %q is not a path of names", p)
		}
	}
	return nil
}

// portOf resolves an absent port to the scheme's default.
func portOf(scheme, port string) string {
	if port != "" {
		return port
	}
	if strings.EqualFold(scheme, "http") {
		return "80"
	}
	return "443"
}
