package git

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// credentialFile writes a git configuration file that sends the HTTP
// header "Authorization: <auth>" to url (and nothing else) into a private
// temporary directory, and returns its path and a function that removes
// it.
//
// git learns the file's path through include.path in its environment;
// the credential itself is in no process's environment or argument list,
// where any process of the same user could read it (/proc/<pid>/environ
// of git and git-remote-http), and in no file of the workspace, where the
// training would find it. The directory is mode 0700 and the file 0600,
// created for one operation (a fetch, a checkout) and removed after it.
func credentialFile(url, auth string) (string, func(), error) {
	if strings.ContainsFunc(auth, isControl) {
		return "", nil, errors.New("git: the credential contains control characters")
	}
	if strings.ContainsFunc(url, isControl) {
		return "", nil, errors.New("git: the URL contains control characters")
	}
	dir, err := os.MkdirTemp("", "mlbot-git-")
	if err != nil {
		return "", nil, fmt.Errorf("git: credential file: %w", err)
	}
	remove := func() { os.RemoveAll(dir) }
	// MkdirTemp makes the directory 0700 whatever the umask; the file is
	// created 0600 and never existed with wider permissions.
	path := filepath.Join(dir, "config")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		remove()
		return "", nil, fmt.Errorf("git: credential file: %w", err)
	}
	// Scoped to the clone URL: a submodule or alternate on another host
	// must not receive the token.
	_, werr := fmt.Fprintf(f, "[http \"%s\"]\n\textraHeader = \"%s\"\n", configQuote(url), configQuote("Authorization: "+auth))
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		remove()
		return "", nil, fmt.Errorf("git: credential file: %w", werr)
	}
	return path, remove, nil
}

// configQuote escapes s for a double-quoted subsection name or value of a
// git configuration file. s holds no control characters.
func configQuote(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
