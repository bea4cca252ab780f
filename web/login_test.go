package web

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/bot/forgesim"
	"github.com/mlbot/mlbot/bot/github"
	"github.com/mlbot/mlbot/bot/gitlab"
	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/jobs/store"
)

// loginFixture serves the pages of a repository's history with the login
// on, against the GitHub and GitLab simulators: maria may read both
// repositories, mallory neither.
type loginFixture struct {
	*fixture
	gh, gl       *forgeSim
	srv          *httptest.Server
	glRun        *store.Run
	sessions     *store.Store
	publicScheme string
}

// forgeSim is a simulator served over HTTP.
type forgeSim struct {
	srv *httptest.Server
	rec *forgesim.Recorder
}

const (
	ghRepo = "Acme/Model"
	glRepo = "group/private-model"
)

func newLoginFixture(t *testing.T) *loginFixture {
	t.Helper()
	lf := &loginFixture{fixture: newFixture(t)}
	lf.sessions = lf.runs

	ghSim := github.NewSimulator()
	ghSim.AddToken("bot-token")
	ghSim.SetPermission(ghRepo, "maria", "read")
	ghSim.SetPermission(ghRepo, "wendy", "write")
	lf.gh = &forgeSim{srv: httptest.NewServer(ghSim), rec: ghSim.Rec}
	t.Cleanup(lf.gh.srv.Close)

	glSim := gitlab.NewSimulator()
	glSim.AddToken("bot-token")
	glSim.AddProject(4242, glRepo)
	glSim.SetMember(glRepo, "maria", gitlab.AccessReporter)
	lf.gl = &forgeSim{srv: httptest.NewServer(glSim), rec: glSim.Rec}
	t.Cleanup(lf.gl.srv.Close)

	// A run of a private GitLab project beside the GitHub history.
	lf.glRun = &store.Run{ID: store.NewID(), Kind: store.KindBaseline, Repo: bot.Repo{Forge: "gitlab", ID: 4242, FullName: glRepo,
		WebURL: "https://gitlab.example.com/" + glRepo}, SHA: strings.Repeat("e", 40), Branch: "main",
		State: store.RunFinished, Outcome: report.OutcomePassed, Metrics: map[string]float64{"accuracy": 0.97}, Created: time.Now().UTC()}
	if err := lf.runs.SaveRun(context.Background(), lf.glRun); err != nil {
		t.Fatal(err)
	}

	mux := http.NewServeMux()
	lf.srv = httptest.NewServer(mux)
	t.Cleanup(lf.srv.Close)
	ghSim.AddOAuthApp("gh-client", "gh-secret", lf.srv.URL+"/login/github/callback")
	glSim.AddOAuthApp("gl-client", "gl-secret", lf.srv.URL+"/login/gitlab/callback")
	ghLogin, err := github.NewOAuth(github.OAuthOptions{APIURL: lf.gh.srv.URL + "/", ClientID: "gh-client", ClientSecret: "gh-secret"})
	if err != nil {
		t.Fatal(err)
	}
	glLogin, err := gitlab.NewOAuth(gitlab.OAuthOptions{BaseURL: lf.gl.srv.URL, ClientID: "gl-client", ClientSecret: "gl-secret"})
	if err != nil {
		t.Fatal(err)
	}
	ghClient, err := github.New(github.Options{BaseURL: lf.gh.srv.URL + "/", Token: "bot-token"})
	if err != nil {
		t.Fatal(err)
	}
	glClient, err := gitlab.New(gitlab.Options{BaseURL: lf.gl.srv.URL, Token: "bot-token"})
	if err != nil {
		t.Fatal(err)
	}
	New(Options{Runs: lf.runs, Logs: lf.runs, Deploys: lf.reg, Models: lf.reg, Sweeps: lf.runs, DataDir: t.TempDir(),
		Auth: AuthOAuth, PublicURL: lf.srv.URL, Logins: []bot.OAuth{ghLogin, glLogin}, Sessions: lf.sessions,
		Hosts:  map[string]PermissionAsker{"github": ghClient, "gitlab": glClient},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}).Register(mux)
	return lf
}

// browser is a person's browser: it keeps cookies and follows the
// pages' redirects, signing in on a simulator's page as login.
type browser struct {
	t     *testing.T
	c     *http.Client
	login string
	// hops are the URLs of the last visit, in order.
	hops []string
}

// signIn begins a login in b that returns to next, signs in on the host,
// and returns the host's answer: the callback URL with a code and the
// state.
func (lf *loginFixture) signIn(t *testing.T, b *browser, next string) string {
	t.Helper()
	resp, err := b.c.Get(lf.srv.URL + "/login/github?next=" + url.QueryEscape(next))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("GET /login/github = %d, no redirect", resp.StatusCode)
	}
	back, err := forgesim.SignIn(b.c, loc.String(), b.login)
	if err != nil {
		t.Fatal(err)
	}
	return back.String()
}

func (lf *loginFixture) browser(t *testing.T, login string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, login: login, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// visit opens u and follows where it leads, through a sign-in page if
// it comes to one, and returns the last answer.
func (b *browser) visit(u string) (*http.Response, string) {
	b.t.Helper()
	b.hops = nil
	for range 10 {
		b.hops = append(b.hops, u)
		if strings.Contains(u, "/login/oauth/authorize") || strings.Contains(u, "/oauth/authorize") {
			next, err := forgesim.SignIn(b.c, u, b.login)
			if err != nil {
				b.t.Fatal(err)
			}
			u = next.String()
			continue
		}
		resp, err := b.c.Get(u)
		if err != nil {
			b.t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		loc, err := resp.Location()
		if err != nil {
			return resp, string(body)
		}
		u = loc.String()
	}
	b.t.Fatalf("more than 10 redirects: %v", b.hops)
	return nil, ""
}

// TestLoginRedirectsAndComesBack opens a run page linked from a status as
// someone not logged in: mlbot sends them to log in with the run's host,
// the host sends them back, and they land on the run page.
func TestLoginRedirectsAndComesBack(t *testing.T) {
	lf := newLoginFixture(t)
	for _, tc := range []struct {
		forge, path, want string
	}{
		{"github", "/runs/" + lf.pr.ID, "Train for one epoch"},
		{"gitlab", "/runs/" + lf.glRun.ID, glRepo},
	} {
		t.Run(tc.forge, func(t *testing.T) {
			b := lf.browser(t, "maria")
			resp, body := b.visit(lf.srv.URL + tc.path)
			if resp.StatusCode != http.StatusOK || !strings.Contains(body, tc.want) {
				t.Fatalf("ended at %d after %v:\n%s", resp.StatusCode, b.hops, body)
			}
			want := []string{lf.srv.URL + tc.path, lf.srv.URL + "/login/" + tc.forge + "?next=" + url.QueryEscape(tc.path), "/authorize?",
				lf.srv.URL + "/login/" + tc.forge + "/callback?code=", lf.srv.URL + tc.path}
			if len(b.hops) != len(want) {
				t.Fatalf("hops %v, want %d", b.hops, len(want))
			}
			for i, w := range want {
				if !strings.Contains(b.hops[i], w) {
					t.Errorf("hop %d is %s, want %s", i, b.hops[i], w)
				}
			}
			// The authorization request carries a state and a PKCE
			// challenge.
			auth, _ := url.Parse(b.hops[2])
			if q := auth.Query(); q.Get("state") == "" || q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256" ||
				q.Get("redirect_uri") != lf.srv.URL+"/login/"+tc.forge+"/callback" {
				t.Errorf("authorization request %s", auth)
			}
			if !strings.Contains(body, `id="logout"`) || !strings.Contains(body, ">maria <small>") {
				t.Errorf("the page does not show who is logged in")
			}
		})
	}
}

// TestSessionCookie checks the session cookie's attributes, Secure
// following the public URL.
func TestSessionCookie(t *testing.T) {
	for _, public := range []string{"http://mlbot.example.com", "https://mlbot.example.com"} {
		t.Run(public, func(t *testing.T) {
			s := New(Options{Auth: AuthOAuth, PublicURL: public})
			rec := httptest.NewRecorder()
			s.setCookie(rec, sessionCookie, "value", "/", store.SessionTTL)
			c := rec.Result().Cookies()[0]
			if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.MaxAge != int(store.SessionTTL.Seconds()) {
				t.Errorf("cookie %+v", c)
			}
			if c.Secure != strings.HasPrefix(public, "https") {
				t.Errorf("cookie Secure = %v for %s", c.Secure, public)
			}
		})
	}
	// The cookie a real login sets.
	lf := newLoginFixture(t)
	b := lf.browser(t, "maria")
	b.visit(lf.srv.URL + "/login/github?next=%2F")
	u, _ := url.Parse(lf.srv.URL)
	var got *http.Cookie
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == sessionCookie {
			got = c
		}
	}
	if got == nil || len(got.Value) < 40 {
		t.Fatalf("no session cookie after the login: %v", b.c.Jar.Cookies(u))
	}
	if _, ok, _ := lf.sessions.Session(context.Background(), got.Value); !ok {
		t.Errorf("the session cookie names no session")
	}
}

// TestPagesOnlyForReaders logs in as people the hosts let read a
// repository and as people they do not: the latter get what a missing
// page gets, on every page of the repository.
func TestPagesOnlyForReaders(t *testing.T) {
	lf := newLoginFixture(t)
	ghPages := []string{"/runs/" + lf.pr.ID, "/runs/" + lf.pr.ID + "?format=json", "/runs/" + lf.pr.ID + "/log/stream",
		"/repos/github/acme/model", "/models/github/acme/model/1", "/deploys/" + lf.deployV2.ID}
	glPages := []string{"/runs/" + lf.glRun.ID, "/repos/gitlab/" + glRepo}
	tests := []struct {
		forge, login string
		pages        []string
		want         int
	}{
		{"github", "maria", ghPages[:1], http.StatusOK},
		{"github", "wendy", ghPages[3:], http.StatusOK},
		{"github", "mallory", ghPages, http.StatusNotFound},
		{"gitlab", "maria", glPages, http.StatusOK},
		{"gitlab", "mallory", glPages, http.StatusNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.forge+"/"+tc.login, func(t *testing.T) {
			b := lf.browser(t, tc.login)
			b.visit(lf.srv.URL + "/login/" + tc.forge + "?next=%2F")
			for _, p := range tc.pages {
				resp, body := b.visit(lf.srv.URL + p)
				if len(b.hops) != 1 {
					t.Errorf("GET %s went through %v", p, b.hops)
				}
				if resp.StatusCode != tc.want {
					t.Errorf("GET %s = %d, want %d", p, resp.StatusCode, tc.want)
				}
				if tc.want == http.StatusNotFound && (strings.Contains(body, "accuracy") || strings.Contains(body, "Train for one epoch")) {
					t.Errorf("GET %s refused, but shows the repository's data:\n%s", p, body)
				}
			}
			// The overview lists what the person may read, and only that.
			_, body := b.visit(lf.srv.URL + "/")
			name := map[string]string{"github": ghRepo, "gitlab": glRepo}[tc.forge]
			if got := strings.Contains(body, `>`+name+`</a>`); got != (tc.want == http.StatusOK) {
				t.Errorf("the overview lists %s: %v, want %v", name, got, tc.want == http.StatusOK)
			}
		})
	}

	// What the host said is remembered briefly: maria's many page loads
	// asked GitHub once.
	calls := lf.gh.rec.Find(http.MethodGet, "/collaborators/maria/permission")
	if len(calls) != 1 {
		t.Errorf("GitHub was asked about maria %d times, want once (cached for %s)", len(calls), store.PermissionTTL)
	}
}

// TestAnonymous opens the pages without logging in.
func TestAnonymous(t *testing.T) {
	lf := newLoginFixture(t)
	tests := []struct {
		path     string
		wantCode int
		wantLoc  string // prefix of the redirect
	}{
		{"/", http.StatusFound, "/login?next=%2F"},
		{"/runs/" + lf.pr.ID, http.StatusFound, "/login/github?next="},
		{"/runs/" + lf.glRun.ID, http.StatusFound, "/login/gitlab?next="},
		{"/runs/0123456789abcdef0123456789abcdef", http.StatusFound, "/login?next="},
		{"/repos/github/acme/model", http.StatusFound, "/login/github?next="},
		{"/repos/github/acme/does-not-exist", http.StatusFound, "/login/github?next="},
		{"/models/github/acme/model/1", http.StatusFound, "/login/github?next="},
		{"/deploys/" + lf.deployV2.ID, http.StatusFound, "/login/github?next="},
		{"/runs/" + lf.pr.ID + "/log/stream", http.StatusUnauthorized, ""},
		{"/runs/" + lf.pr.ID + "?format=json", http.StatusUnauthorized, ""},
		{"/login/bitbucket", http.StatusNotFound, ""},
		{"/assets/mlbot.css", http.StatusOK, ""},
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range tests {
		resp, err := c.Get(lf.srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.wantCode {
			t.Errorf("GET %s = %d, want %d", tc.path, resp.StatusCode, tc.wantCode)
			continue
		}
		if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, tc.wantLoc) {
			t.Errorf("GET %s sends to %q, want %s…", tc.path, loc, tc.wantLoc)
		}
		if strings.Contains(string(body), "Train for one epoch") {
			t.Errorf("GET %s shows a run to someone not logged in", tc.path)
		}
	}
}

// TestLoginRefusals tries what an attacker would: a code sent to another
// browser, a state used twice, a login the user cancelled, and a login
// that would send the person to another site afterwards.
func TestLoginRefusals(t *testing.T) {
	lf := newLoginFixture(t)

	start := func(b *browser, next string) string { return lf.signIn(t, b, next) }
	get := func(b *browser, u string) (*http.Response, string) {
		t.Helper()
		resp, err := b.c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(body)
	}
	loggedIn := func(b *browser) bool {
		resp, _ := get(b, lf.srv.URL+"/runs/"+lf.pr.ID)
		return resp.StatusCode == http.StatusOK
	}

	t.Run("a code sent to another browser", func(t *testing.T) {
		victim, attacker := lf.browser(t, "maria"), lf.browser(t, "mallory")
		// The attacker starts a login and lures the victim to its end.
		callback := start(attacker, "/")
		resp, body := get(victim, callback)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "not started in this browser") {
			t.Errorf("callback in another browser = %d:\n%s", resp.StatusCode, body)
		}
		if loggedIn(victim) {
			t.Errorf("the victim's browser was logged in")
		}
	})
	t.Run("a state used twice", func(t *testing.T) {
		b := lf.browser(t, "maria")
		callback := start(b, "/")
		// The browser keeps its login cookie for a replay.
		u, _ := url.Parse(lf.srv.URL + "/login/")
		cookies := b.c.Jar.Cookies(u)
		if resp, _ := get(b, callback); resp.StatusCode != http.StatusFound {
			t.Fatalf("first callback = %d", resp.StatusCode)
		}
		b2 := lf.browser(t, "maria")
		b2.c.Jar.SetCookies(u, cookies)
		if resp, _ := get(b2, callback); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("replayed callback = %d, want 400", resp.StatusCode)
		}
		if loggedIn(b2) {
			t.Errorf("a replayed callback logged in")
		}
	})
	t.Run("the user cancels", func(t *testing.T) {
		b := lf.browser(t, "")
		resp, body := get(b, start(b, "/"))
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "GitHub did not log you in (access_denied)") {
			t.Errorf("cancelled login = %d:\n%s", resp.StatusCode, body)
		}
	})
	for _, next := range []string{"https://evil.example.com/", "//evil.example.com/x", "/\\evil.example.com", "javascript:alert(1)"} {
		t.Run("next "+next, func(t *testing.T) {
			b := lf.browser(t, "maria")
			resp, _ := get(b, start(b, next))
			if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != "/" {
				t.Errorf("after the login: %d to %q, want 302 to /", resp.StatusCode, loc)
			}
		})
	}
	t.Run("logout", func(t *testing.T) {
		b := lf.browser(t, "maria")
		b.visit(lf.srv.URL + "/login/github?next=%2F")
		if !loggedIn(b) {
			t.Fatal("not logged in")
		}
		u, _ := url.Parse(lf.srv.URL)
		var token string
		for _, c := range b.c.Jar.Cookies(u) {
			if c.Name == sessionCookie {
				token = c.Value
			}
		}
		resp, err := b.c.PostForm(lf.srv.URL+"/logout", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			t.Errorf("POST /logout = %d", resp.StatusCode)
		}
		if loggedIn(b) {
			t.Errorf("still logged in after logging out")
		}
		if _, ok, _ := lf.sessions.Session(context.Background(), token); ok {
			t.Errorf("the session outlived the logout")
		}
	})
}

// TestLoginNeverSendsElsewhere attacks the page a login returns to (next)
// the way an attacker would: with a path that http.Redirect cleans into
// "/\evil.example.com", which browsers read as "//evil.example.com", a
// site of the attacker's. Neither the end of a login nor /login without
// the login on (which redirects at once) may send a browser off the site.
func TestLoginNeverSendsElsewhere(t *testing.T) {
	lf := newLoginFixture(t)
	off := lf.fixture.serve(t, Options{})
	// leaves reports whether a browser following loc from base ends up on
	// another host: browsers treat a backslash in an http URL's path as a
	// slash.
	leaves := func(base, loc string) bool {
		b, _ := url.Parse(base)
		u, err := b.Parse(strings.ReplaceAll(loc, `\`, "/"))
		return err != nil || u.Host != b.Host
	}
	attacks := []string{
		`/runs/../\evil.example.com`,
		`/a/b/../../\evil.example.com/x`,
		`/./\evil.example.com`,
		`/x/..\/evil.example.com`,
		"/runs/../\\\\evil.example.com",
	}
	for _, next := range attacks {
		t.Run("after a login, next "+next, func(t *testing.T) {
			b := lf.browser(t, "maria")
			resp, err := b.c.Get(lf.signIn(t, b, next))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || leaves(lf.srv.URL, got) {
				t.Errorf("after the login: %d to %q, which leaves the site", resp.StatusCode, got)
			}
		})
		t.Run("login off, next "+next, func(t *testing.T) {
			c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := c.Get(off.URL + "/login?next=" + url.QueryEscape(next))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || leaves(off.URL, got) {
				t.Errorf("GET /login: %d to %q, which leaves the site", resp.StatusCode, got)
			}
		})
	}
}

// TestPagesDoNotTellWhichRepositoriesExist asks, as someone logged in who
// may not read acme/model, for its pages and for those of repositories and
// versions mlbot does not know: every answer must be the same, or the
// difference tells an outsider which private repositories mlbot serves.
func TestPagesDoNotTellWhichRepositoriesExist(t *testing.T) {
	lf := newLoginFixture(t)
	b := lf.browser(t, "mallory")
	b.visit(lf.srv.URL + "/login/github?next=%2F")
	message := func(p string) string {
		t.Helper()
		resp, body := b.visit(lf.srv.URL + p)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, resp.StatusCode)
		}
		_, msg, _ := strings.Cut(body, `<p class="error">`)
		msg, _, _ = strings.Cut(msg, "</p>")
		return msg
	}
	for _, pair := range [][2]string{
		{"/repos/github/acme/model", "/repos/github/acme/no-such-model"},
		{"/models/github/acme/model/1", "/models/github/acme/no-such-model/1"},
		{"/models/github/acme/model/1", "/models/github/acme/model/99"},
	} {
		if known, unknown := message(pair[0]), message(pair[1]); known != unknown {
			t.Errorf("%s and %s answer differently:\n%s\n%s", pair[0], pair[1], known, unknown)
		}
	}
}
