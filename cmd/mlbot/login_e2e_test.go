package main

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path"
	"regexp"
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
			e.chartImage()
		})
	}
}

// chartImage opens a pull request and fetches the chart its comment
// embeds as the host's image proxy does: with no session, though the
// pages need a login. The signed URL works; the same URL with its
// signature or its run changed gets 403 and no picture.
func (e *e2e) chartImage() {
	t := e.t
	t.Helper()
	h := e.commit("feature", map[string]string{"params": "0.92\n"}, "better")
	e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
	e.final(h)
	e.settle()
	cs := e.mlbotComments(1)
	if len(cs) != 1 {
		t.Fatalf("%d mlbot comments, want 1", len(cs))
	}
	m := regexp.MustCompile(`!\[[^\]]*\]\((` + regexp.QuoteMeta(e.url) + `/charts/runs/[0-9a-f]{32}\.svg\?[^)]+)\)`).FindStringSubmatch(cs[0].Body)
	if m == nil {
		t.Fatalf("the comment embeds no chart of %s:\n%s", e.url, cs[0].Body)
	}
	get := func(u string) (int, string, string) {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	status, ctype, body := get(m[1])
	if status != http.StatusOK || ctype != "image/svg+xml" || !strings.Contains(body, `data-points="2"`) {
		t.Fatalf("the chart answered %d %s:\n%s", status, ctype, body)
	}
	u, _ := url.Parse(m[1])
	q := u.Query()
	forged := *u
	q.Set("sig", strings.Repeat("A", len(q.Get("sig"))))
	forged.RawQuery = q.Encode()
	other := *u
	other.Path = "/charts/runs/" + path.Base(e.final(e.mainSHA).TargetURL) + ".svg"
	for _, bad := range []string{forged.String(), other.String()} {
		if status, _, body := get(bad); status != http.StatusForbidden || strings.Contains(body, "<svg") {
			t.Errorf("%s answered %d:\n%s", bad, status, body)
		}
	}
}
