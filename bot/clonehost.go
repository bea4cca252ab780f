package bot

import (
	"errors"
	"net"
	"net/url"
	"strings"
)

// ErrForeignCloneHost is wrapped by CloneAuth when a payload's clone URL is
// not on the configured host; retrying cannot help.
var ErrForeignCloneHost = errors.New("clone URL is not on the configured host")

// CloneHostMatches reports whether cloneURL is served by the host whose API
// is at apiURL, so that a token is sent to git only where it belongs. A
// webhook payload names the clone URL; a sender that knows the webhook
// secret must not be able to point mlbot's token at a host of its choosing.
// GitHub.com's API lives on api.github.com while git lives on github.com;
// Enterprise and GitLab serve both from one host. Callers skip the check
// when there is no clone URL at all: then nothing will be fetched.
func CloneHostMatches(cloneURL, apiURL string) bool {
	c, err := url.Parse(cloneURL)
	if err != nil || c.Host == "" {
		return false
	}
	a, err := url.Parse(apiURL)
	if err != nil || a.Host == "" {
		return false
	}
	ch, ah := strings.ToLower(c.Host), strings.ToLower(a.Host)
	if ch == ah || "api."+hostOnly(ch) == hostOnly(ah) {
		return true
	}
	return false
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}
