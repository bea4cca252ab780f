package github

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gh "github.com/google/go-github/v60/github"

	"github.com/mlbot/mlbot/bot"
)

// newSimGH starts a simulator and a plain go-github client for it, to
// exercise the endpoints mlbot's Client does not wrap.
func newSimGH(t *testing.T) (*Simulator, *httptest.Server, *gh.Client) {
	t.Helper()
	sim := NewSimulator()
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	cl, err := gh.NewClient(nil).WithAuthToken("anything").WithEnterpriseURLs(srv.URL+"/", srv.URL+"/")
	if err != nil {
		t.Fatal(err)
	}
	return sim, srv, cl
}

// do sends a raw request to the simulator and decodes a JSON answer.
func do(t *testing.T, method, url, token, body string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "token "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(data, &m)
	return resp, m
}

func TestSimulatorHTTP(t *testing.T) {
	sim := NewSimulator()
	sim.AddToken("good")
	srv := httptest.NewServer(sim)
	defer srv.Close()
	c := sim.AddComment("acme/model", 1, "alice", "hi")
	commentURL := srv.URL + "/repos/acme/model/issues/comments/" + strconv.FormatInt(c.ID, 10)

	tests := []struct {
		name, method, path, token, body string
		status                          int
		message                         string
	}{
		{"unknown endpoint", "GET", "/repos/acme/model/releases", "good", "", 404, "Not Found"},
		{"unknown method", "DELETE", "/repos/acme/model/statuses/abc", "good", "", 404, "Not Found"},
		{"missing token", "POST", "/repos/acme/model/statuses/abc", "", `{"state":"success"}`, 401, "Requires authentication"},
		{"unknown token", "POST", "/repos/acme/model/statuses/abc", "bad", `{"state":"success"}`, 401, "Bad credentials"},
		{"invalid state", "POST", "/repos/acme/model/statuses/abc", "good", `{"state":"running"}`, 422, "Validation Failed"},
		{"long description", "POST", "/repos/acme/model/statuses/abc", "good", `{"state":"success","description":"` + strings.Repeat("d", 141) + `"}`, 422, "Validation Failed"},
		{"status", "POST", "/repos/acme/model/statuses/abc", "good", `{"state":"success","context":"mlbot/train-eval"}`, 201, ""},
		{"bad JSON", "POST", "/repos/acme/model/issues/1/comments", "good", `{`, 400, "Problems parsing JSON"},
		{"empty comment", "POST", "/repos/acme/model/issues/1/comments", "good", `{"body":""}`, 422, "Validation Failed"},
		{"comment 65535", "POST", "/repos/acme/model/issues/1/comments", "good", `{"body":"` + strings.Repeat("x", 65535) + `"}`, 201, ""},
		{"comment 65536", "POST", "/repos/acme/model/issues/1/comments", "good", `{"body":"` + strings.Repeat("x", 65536) + `"}`, 422, "Validation Failed"},
		{"edit unknown comment", "PATCH", "/repos/acme/model/issues/comments/1", "good", `{"body":"x"}`, 404, "Not Found"},
		{"comment of another repo", "GET", "/repos/acme/other/issues/comments/" + strconv.FormatInt(c.ID, 10), "good", "", 404, "Not Found"},
		{"get comment", "GET", strings.TrimPrefix(commentURL, srv.URL), "good", "", 200, ""},
		{"bad reaction", "POST", strings.TrimPrefix(commentURL, srv.URL) + "/reactions", "good", `{"content":"tada"}`, 422, "Validation Failed"},
		{"unknown user permission", "GET", "/repos/acme/model/collaborators/nobody/permission", "good", "", 404, "Not Found"},
		{"bad page", "GET", "/repos/acme/model/issues/1/comments?page=0", "good", "", 422, "page must be a positive integer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, m := do(t, tt.method, srv.URL+tt.path, tt.token, tt.body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (%v)", resp.StatusCode, tt.status, m)
			}
			if tt.message != "" && m["message"] != tt.message {
				t.Errorf("message %q, want %q", m["message"], tt.message)
			}
			if tt.status >= 400 && m["documentation_url"] == nil {
				t.Errorf("error answer %v lacks documentation_url", m)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			for _, h := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "X-RateLimit-Used", "X-RateLimit-Resource"} {
				if resp.Header.Get(h) == "" {
					t.Errorf("answer lacks %s", h)
				}
			}
		})
	}
	if n := len(sim.Comments("acme/model", 1)); n != 2 {
		t.Errorf("thread holds %d comments, want 2 (the seeded one and the 65,535-character one)", n)
	}
	if n := len(sim.Rec.Calls()); n != len(tests) {
		t.Errorf("recorder holds %d calls, want %d", n, len(tests))
	}
}

func TestSimulatorCommentValidationMessage(t *testing.T) {
	_, srv, cl := newSimGH(t)
	_ = srv
	_, _, err := cl.Issues.CreateComment(context.Background(), "acme", "model", 1, &gh.IssueComment{Body: gh.String(strings.Repeat("é", 65536))})
	er, ok := err.(*gh.ErrorResponse)
	if !ok || er.Response.StatusCode != 422 || len(er.Errors) != 1 || !strings.Contains(er.Errors[0].Message, "is too long (maximum is 65536 characters)") {
		t.Errorf("CreateComment(65,536 characters) = %v", err)
	}
}

func TestSimulatorStatuses(t *testing.T) {
	sim, _, cl := newSimGH(t)
	ctx := context.Background()
	sha := strings.Repeat("c", 40)
	steps := []struct{ context, state string }{
		{"mlbot/train-eval", "pending"},
		{"mlbot/deploy/staging", "success"},
		{"mlbot/train-eval", "success"},
	}
	for _, s := range steps {
		if _, _, err := cl.Repositories.CreateStatus(ctx, "acme", "model", sha, &gh.RepoStatus{State: gh.String(s.state), Context: gh.String(s.context)}); err != nil {
			t.Fatal(err)
		}
	}
	got := sim.Statuses("ACME/Model", sha)
	if len(got) != 3 || got[0].State != "pending" || got[2].State != "success" || got[2].Creator != "mlbot[bot]" {
		t.Errorf("Statuses = %+v", got)
	}

	list, resp, err := cl.Repositories.ListStatuses(ctx, "acme", "model", sha, &gh.ListOptions{PerPage: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].GetID() != got[2].ID || resp.NextPage != 2 || resp.LastPage != 2 {
		t.Errorf("ListStatuses page 1 = %d items (first id %d), next %d, last %d", len(list), list[0].GetID(), resp.NextPage, resp.LastPage)
	}

	comb, _, err := cl.Repositories.GetCombinedStatus(ctx, "acme", "model", sha, nil)
	if err != nil {
		t.Fatal(err)
	}
	if comb.GetState() != "success" || comb.GetTotalCount() != 2 {
		t.Errorf("combined = %s with %d statuses, want success with 2", comb.GetState(), comb.GetTotalCount())
	}
	cl.Repositories.CreateStatus(ctx, "acme", "model", sha, &gh.RepoStatus{State: gh.String("failure"), Context: gh.String("mlbot/deploy/staging")})
	if comb, _, _ = cl.Repositories.GetCombinedStatus(ctx, "acme", "model", sha, nil); comb.GetState() != "failure" {
		t.Errorf("combined after a failure = %s", comb.GetState())
	}
	if comb, _, _ = cl.Repositories.GetCombinedStatus(ctx, "acme", "model", "unknown", nil); comb.GetState() != "pending" {
		t.Errorf("combined without statuses = %s, want pending", comb.GetState())
	}
}

func TestSimulatorCommentsAndReactions(t *testing.T) {
	sim, _, cl := newSimGH(t)
	ctx := context.Background()
	for i := range 45 {
		sim.AddComment("acme/model", 2, "alice", "c"+strconv.Itoa(i))
	}
	// Default page size is 30, like GitHub's.
	page, resp, err := cl.Issues.ListComments(ctx, "acme", "model", 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 30 || resp.NextPage != 2 || resp.LastPage != 2 || page[0].GetBody() != "c0" {
		t.Errorf("first page: %d comments, next %d, last %d", len(page), resp.NextPage, resp.LastPage)
	}
	if page, resp, _ = cl.Issues.ListComments(ctx, "acme", "model", 2, &gh.IssueListCommentsOptions{ListOptions: gh.ListOptions{Page: 2}}); len(page) != 15 || resp.NextPage != 0 || resp.PrevPage != 1 || resp.FirstPage != 1 {
		t.Errorf("second page: %d comments, next %d, prev %d", len(page), resp.NextPage, resp.PrevPage)
	}

	id := sim.Comments("acme/model", 2)[0].ID
	for i, want := range []int{201, 200} {
		r, resp, err := cl.Reactions.CreateIssueCommentReaction(ctx, "acme", "model", id, "eyes")
		if err != nil || resp.StatusCode != want || r.GetContent() != "eyes" {
			t.Errorf("reaction %d: %v, status %d", i, err, resp.StatusCode)
		}
	}
	if got := sim.Comments("acme/model", 2)[0].Reactions; len(got) != 1 || got[0] != "eyes" {
		t.Errorf("Reactions = %v", got)
	}
	if _, _, err := cl.Reactions.CreateIssueCommentReaction(ctx, "acme", "model", 1, "eyes"); err == nil {
		t.Error("reaction on an unknown comment succeeded")
	}

	c, _, err := cl.Issues.GetComment(ctx, "acme", "model", id)
	if err != nil || c.GetUser().GetLogin() != "alice" || !strings.HasSuffix(c.GetHTMLURL(), "/acme/model/pull/2#issuecomment-"+strconv.FormatInt(id, 10)) {
		t.Errorf("GetComment = %+v, %v", c, err)
	}
}

func TestSimulatorPermissions(t *testing.T) {
	sim, _, cl := newSimGH(t)
	tests := []struct{ role, permission string }{
		{"admin", "admin"}, {"maintain", "write"}, {"write", "write"}, {"triage", "read"}, {"read", "read"}, {"none", "none"},
	}
	for _, tt := range tests {
		user := "user-" + tt.role
		sim.SetPermission("acme/model", user, tt.role)
		// go-github v60 does not decode role_name, so decode it here.
		req, err := cl.NewRequest("GET", "repos/Acme/Model/collaborators/"+strings.ToUpper(user)+"/permission", nil)
		if err != nil {
			t.Fatal(err)
		}
		var p struct {
			Permission string `json:"permission"`
			RoleName   string `json:"role_name"`
		}
		if _, err := cl.Do(context.Background(), req, &p); err != nil {
			t.Fatalf("%s: %v", tt.role, err)
		}
		if p.Permission != tt.permission || p.RoleName != tt.role {
			t.Errorf("%s: permission %q role %q", tt.role, p.Permission, p.RoleName)
		}
	}
}

func TestSimulatorRateLimit(t *testing.T) {
	sim, srv, _ := newSimGH(t)
	reset := time.Now().Add(time.Hour)
	sim.SetRateLimit(1, reset)
	resp, _ := do(t, "GET", srv.URL+"/repos/a/b/issues/1/comments", "t", "")
	if resp.StatusCode != 200 || resp.Header.Get("X-RateLimit-Remaining") != "0" || resp.Header.Get("X-RateLimit-Used") != "5000" {
		t.Errorf("last call: %d, remaining %q, used %q", resp.StatusCode, resp.Header.Get("X-RateLimit-Remaining"), resp.Header.Get("X-RateLimit-Used"))
	}
	resp, m := do(t, "GET", srv.URL+"/repos/a/b/issues/1/comments", "t", "")
	if resp.StatusCode != 403 || resp.Header.Get("X-RateLimit-Remaining") != "0" ||
		resp.Header.Get("X-RateLimit-Reset") != strconv.FormatInt(reset.Unix(), 10) || !strings.Contains(m["message"].(string), "rate limit") {
		t.Errorf("exhausted: %d, headers %v, %v", resp.StatusCode, resp.Header, m)
	}
	sim.SetRateLimit(0, time.Now().Add(-time.Second))
	if resp, _ := do(t, "GET", srv.URL+"/repos/a/b/issues/1/comments", "t", ""); resp.StatusCode != 200 || resp.Header.Get("X-RateLimit-Remaining") != "4999" {
		t.Errorf("after reset: %d, remaining %q", resp.StatusCode, resp.Header.Get("X-RateLimit-Remaining"))
	}
}

// TestSimulatorInstallationScope checks that an installation token only
// reaches its installation's repositories, as on GitHub.
func TestSimulatorInstallationScope(t *testing.T) {
	key := testKey(t)
	sim := NewSimulator()
	sim.AddApp(1, &key.PublicKey, 10, "acme/model")
	sim.AddApp(1, &key.PublicKey, 11, "acme/other")
	srv := httptest.NewServer(sim)
	defer srv.Close()
	c, err := New(Options{BaseURL: srv.URL, AppID: 1, PrivateKey: keyPEM(key)})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := c.CloneAuth(context.Background(), testRepo)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(auth, "Basic "))
	token := strings.TrimPrefix(string(raw), "x-access-token:")
	if resp, _ := do(t, "GET", srv.URL+"/repos/acme/model/issues/1/comments", token, ""); resp.StatusCode != 200 {
		t.Errorf("own repository: %d", resp.StatusCode)
	}
	if resp, _ := do(t, "GET", srv.URL+"/repos/acme/other/issues/1/comments", token, ""); resp.StatusCode != 404 {
		t.Errorf("other installation's repository: %d, want 404", resp.StatusCode)
	}
	if resp, _ := do(t, "POST", srv.URL+"/app/installations/10/access_tokens", token, ""); resp.StatusCode != 401 {
		t.Errorf("access_tokens with an installation token: %d, want 401", resp.StatusCode)
	}
}

// TestAppAuthConcurrent drives two installations from many goroutines so
// that the race detector sees the installation cache and token refresh.
func TestAppAuthConcurrent(t *testing.T) {
	key := testKey(t)
	sim := NewSimulator()
	sim.AddApp(5, &key.PublicKey, 50, "acme/a")
	sim.AddApp(5, &key.PublicKey, 51, "acme/b")
	srv := httptest.NewServer(sim)
	defer srv.Close()
	c, err := New(Options{BaseURL: srv.URL, AppID: 5, PrivateKey: keyPEM(key)})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			repo := bot.Repo{FullName: []string{"acme/a", "acme/b"}[i%2]}
			if _, err := c.CreateComment(context.Background(), repo, 1, "x"); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(sim.Comments("acme/a", 1)) + len(sim.Comments("acme/b", 1)); n != 20 {
		t.Errorf("%d comments, want 20", n)
	}
}

// TestSimulatorGit clones a real bare repository through the simulator's
// git endpoint with the credential CloneAuth returns.
func TestSimulatorGit(t *testing.T) {
	root := t.TempDir()
	work := t.TempDir()
	git := func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1", "HOME="+work)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	bare := filepath.Join(root, "acme", "model.git")
	git(root, "init", "--bare", "-b", "main", bare)
	src := filepath.Join(work, "src")
	git(work, "init", "-b", "main", src)
	os.WriteFile(filepath.Join(src, "train.py"), []byte("print('hi')\n"), 0o644)
	git(src, "add", ".")
	git(src, "commit", "-m", "init")
	git(src, "push", bare, "main")
	sha := git(src, "rev-parse", "HEAD")

	sim := NewSimulator()
	sim.AddToken(testToken)
	sim.ServeGit(root)
	srv := httptest.NewServer(sim)
	defer srv.Close()
	url := GitURL(srv.URL, "acme/model")
	if want := srv.URL + "/acme/model.git"; url != want {
		t.Errorf("GitURL = %q, want %q", url, want)
	}

	c, err := New(Options{BaseURL: srv.URL, Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	// The simulator's clone URL is where mlbot expects the repository.
	auth, err := c.CloneAuth(context.Background(), bot.Repo{Forge: "github", FullName: "acme/model", CloneURL: url})
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(work, "dst")
	git(work, "-c", "http.extraHeader=Authorization: "+auth, "clone", url, dst)
	if got := git(dst, "rev-parse", "HEAD"); got != sha {
		t.Errorf("cloned HEAD %s, want %s", got, sha)
	}

	cmd := exec.Command("git", "ls-remote", url)
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=true")
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("ls-remote without credentials succeeded: %s", out)
	}
	if calls := sim.Rec.Find("GET", "/acme/model.git/info/refs"); len(calls) < 2 {
		t.Errorf("recorded %d git calls", len(calls))
	}
}
