package main

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"

	"github.com/mlbot/mlbot/bot/forgesim"
	"github.com/mlbot/mlbot/configs"
)

// withLogin makes the pages of an e2e fixture need a login through its
// host's simulator (MLBOT_UI_AUTH=oauth); the fixture registers mlbot's
// callback once it knows its URL (e2e.enableLogin).
func withLogin(forge string) func(*configs.Server) {
	return func(cfg *configs.Server) {
		cfg.UIAuth = configs.UIAuthOAuth
		switch forge {
		case "github":
			cfg.GitHubOAuthClientID, cfg.GitHubOAuthClientSecret = fakeOAuthClientID, fakeOAuthSecret
		case "gitlab":
			cfg.GitLabOAuthClientID, cfg.GitLabOAuthClientSecret = fakeOAuthClientID, fakeOAuthSecret
		}
	}
}

// enableLogin registers mlbot as an OAuth application of the simulator.
func (e *e2e) enableLogin() { e.sb.registerLogin(e.url) }

// visitAs opens u in a fresh browser of login, signing in on the
// simulator's page when sent there, and returns where it ended.
func visitAs(t *testing.T, login, u string) (status int, body string, hops []string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for range 10 {
		hops = append(hops, u)
		if strings.Contains(u, "/oauth/authorize") {
			next, err := forgesim.SignIn(c, u, login)
			if err != nil {
				t.Fatal(err)
			}
			u = next.String()
			continue
		}
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		loc, err := resp.Location()
		if err != nil {
			return resp.StatusCode, string(b), hops
		}
		u = loc.String()
	}
	t.Fatalf("too many redirects: %v", hops)
	return 0, "", nil
}

// TestLoginEndToEnd opens the run page a status links to, through the
// whole mlbot serve: someone not logged in is sent to log in with the
// host and comes back to it; a reader of the repository sees it, and a
// stranger to the private repository is refused.
func TestLoginEndToEnd(t *testing.T) {
	for _, forge := range []string{"github", "gitlab"} {
		t.Run(forge, func(t *testing.T) {
			e := newE2E(t, forge, withLogin(forge))
			e.enableLogin()
			sha := e.baseline("0.9")
			page := e.final(sha).TargetURL

			status, body, hops := visitAs(t, "rita", page)
			if status != http.StatusOK || !strings.Contains(body, sha) {
				t.Fatalf("rita (read) ended at %d after %v:\n%s", status, hops, body)
			}
			if len(hops) != 5 || !strings.Contains(hops[1], "/login/"+forge+"?next=") || !strings.Contains(hops[2], e.sb.srv.URL) || hops[4] != page {
				t.Errorf("rita went %v", hops)
			}
			status, body, hops = visitAs(t, "mallory", page)
			if status != http.StatusNotFound || strings.Contains(body, sha) {
				t.Errorf("mallory (no access) ended at %d after %v:\n%s", status, hops, body)
			}
			// The overview shows mallory nothing of the repository.
			if status, body, _ := visitAs(t, "mallory", e.url+"/login/"+forge+"?next=%2F"); status != http.StatusOK ||
				!strings.Contains(body, "<h1>Repositories</h1>") || strings.Contains(body, "acme/model") {
				t.Errorf("mallory's overview (%d) lists the repository:\n%s", status, body)
			}
		})
	}
}
