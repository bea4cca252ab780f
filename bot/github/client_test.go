package github

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/bot/forgesim"
)

const testToken = "ghp_testtoken0123456789"

var testRepo = bot.Repo{Forge: "github", FullName: "acme/model"}

// newTestClient starts a simulator accepting testToken and a client
// using it.
func newTestClient(t *testing.T) (*Client, *Simulator, *httptest.Server) {
	t.Helper()
	sim := NewSimulator()
	sim.AddToken(testToken)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	c, err := New(Options{BaseURL: srv.URL, Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	return c, sim, srv
}

func TestNewOptions(t *testing.T) {
	key := testKeyPEM(t)
	tests := []struct {
		name    string
		opts    Options
		wantErr bool
		base    string
	}{
		{"default", Options{}, false, "https://api.github.com/"},
		{"enterprise", Options{BaseURL: "https://ghe.example.com/api/v3"}, false, "https://ghe.example.com/api/v3/"},
		{"token", Options{Token: "t"}, false, "https://api.github.com/"},
		{"app", Options{AppID: 1, PrivateKey: key}, false, "https://api.github.com/"},
		{"token and app", Options{Token: "t", AppID: 1, PrivateKey: key}, true, ""},
		{"app without key", Options{AppID: 1}, true, ""},
		{"app with bad key", Options{AppID: 1, PrivateKey: []byte("not a key")}, true, ""},
		{"relative URL", Options{BaseURL: "api.github.com"}, true, ""},
		{"bad scheme", Options{BaseURL: "ftp://x/"}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.opts)
			if tt.wantErr {
				if err == nil {
					t.Fatal("New succeeded, want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.baseURL.String() != tt.base || c.Name() != "github" {
				t.Errorf("base %q, name %q", c.baseURL, c.Name())
			}
		})
	}
}

func TestCreateStatus(t *testing.T) {
	long := strings.Repeat("é", 200)
	tests := []struct {
		name      string
		in        bot.Status
		wantState string
		wantDesc  string
	}{
		{"pending", bot.Status{Context: "mlbot/train-eval", State: bot.StatePending, Description: "queued"}, "pending", "queued"},
		{"running", bot.Status{Context: "mlbot/train-eval", State: bot.StateRunning, Description: "training", TargetURL: "https://mlbot.example.com/runs/1"}, "pending", "training"},
		{"success", bot.Status{Context: "mlbot/train-eval", State: bot.StateSuccess, Description: "accuracy 0.93"}, "success", "accuracy 0.93"},
		{"failure", bot.Status{Context: "mlbot/train-eval", State: bot.StateFailure}, "failure", ""},
		{"error", bot.Status{Context: "mlbot/deploy/production", State: bot.StateError, Description: "boom"}, "error", "boom"},
		{"canceled", bot.Status{Context: "mlbot/train-eval", State: bot.StateCanceled, Description: "by /cancel"}, "error", "cancelled: by /cancel"},
		{"long description", bot.Status{Context: "mlbot/train-eval", State: bot.StateSuccess, Description: long}, "success", strings.Repeat("é", 139) + "…"},
	}
	c, sim, _ := newTestClient(t)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sha := strings.Repeat(string(rune('a'+i)), 40)
			if err := c.CreateStatus(context.Background(), testRepo, sha, tt.in); err != nil {
				t.Fatal(err)
			}
			got := sim.Statuses("acme/model", sha)
			if len(got) != 1 {
				t.Fatalf("simulator holds %d statuses, want 1", len(got))
			}
			st := got[0]
			if st.State != tt.wantState || st.Description != tt.wantDesc || st.Context != tt.in.Context || st.TargetURL != tt.in.TargetURL {
				t.Errorf("status = %+v, want state %q description %q", st, tt.wantState, tt.wantDesc)
			}
		})
	}
	if err := c.CreateStatus(context.Background(), testRepo, "abc", bot.Status{State: "weird"}); err == nil {
		t.Error("CreateStatus with an unknown state succeeded")
	}
	if err := c.CreateStatus(context.Background(), bot.Repo{FullName: "noslash"}, "abc", bot.Status{State: bot.StateSuccess}); err == nil {
		t.Error("CreateStatus on a repository without owner succeeded")
	}
}

func TestListCommentsPagination(t *testing.T) {
	c, sim, _ := newTestClient(t)
	for i := range 250 {
		sim.AddComment("acme/model", 7, "alice", "comment "+string(rune('A'+i%26)))
	}
	sim.AddComment("acme/model", 8, "bob", "elsewhere")
	got, err := c.ListComments(context.Background(), testRepo, 7)
	if err != nil {
		t.Fatal(err)
	}
	want := sim.Comments("acme/model", 7)
	if len(got) != 250 {
		t.Fatalf("ListComments returned %d comments, want 250", len(got))
	}
	for i := range got {
		if got[i].ID != want[i].ID || got[i].Body != want[i].Body || got[i].Author != "alice" || !got[i].OnPullRequest {
			t.Fatalf("comment %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	calls := sim.Rec.Find(http.MethodGet, "/issues/7/comments")
	if len(calls) != 3 {
		t.Fatalf("%d list calls, want 3", len(calls))
	}
	for i, call := range calls {
		q, _ := url.ParseQuery(call.Query)
		if q.Get("per_page") != "100" || (i > 0 && q.Get("page") != string(rune('1'+i))) {
			t.Errorf("call %d query %q", i, call.Query)
		}
	}
}

func TestCreateAndUpdateComment(t *testing.T) {
	c, sim, _ := newTestClient(t)
	ctx := context.Background()
	got, err := c.CreateComment(ctx, testRepo, 3, "<!-- mlbot:report -->\nfirst")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID == 0 || got.Author != "mlbot[bot]" || got.Body != "<!-- mlbot:report -->\nfirst" {
		t.Errorf("CreateComment = %+v", got)
	}
	if err := c.UpdateComment(ctx, testRepo, 3, got.ID, "<!-- mlbot:report -->\nsecond"); err != nil {
		t.Fatal(err)
	}
	cs := sim.Comments("acme/model", 3)
	if len(cs) != 1 || cs[0].Body != "<!-- mlbot:report -->\nsecond" || cs[0].Edits != 1 {
		t.Errorf("simulator comments = %+v", cs)
	}
	if calls := sim.Rec.Find(http.MethodPatch, "/issues/comments/"); len(calls) != 1 {
		t.Errorf("%d PATCH calls, want 1", len(calls))
	}

	err = c.UpdateComment(ctx, testRepo, 3, 999999, "x")
	var he *bot.HostError
	if !errors.As(err, &he) || he.StatusCode != http.StatusNotFound || !errors.Is(err, bot.ErrNotFound) {
		t.Errorf("UpdateComment(unknown id) = %v, want a 404 HostError", err)
	}
}

func TestClientErrors(t *testing.T) {
	reset := time.Now().Add(90 * time.Second).Truncate(time.Second)
	tests := []struct {
		name       string
		setup      func(sim *Simulator)
		call       func(c *Client) error
		wantStatus int           // HostError status, 0 when not a HostError
		temporary  bool          // HostError.Temporary
		retryAfter time.Duration // RateLimitError, -1 when not one
		msg        string        // substring of the error
	}{
		{
			name:       "502 is temporary",
			setup:      func(sim *Simulator) { sim.Faults.Add(forgesim.Fault{Status: http.StatusBadGateway}) },
			call:       createStatus,
			wantStatus: http.StatusBadGateway, temporary: true, retryAfter: -1,
		},
		{
			name: "429 with Retry-After",
			setup: func(sim *Simulator) {
				sim.Faults.Add(forgesim.Fault{Status: http.StatusTooManyRequests, Header: map[string]string{"Retry-After": "17"}})
			},
			call:       createComment,
			retryAfter: 17 * time.Second,
		},
		{
			name: "403 primary limit from headers",
			setup: func(sim *Simulator) {
				sim.Faults.Add(forgesim.Fault{Status: http.StatusForbidden, Header: map[string]string{
					"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": formatUnix(reset),
				}})
			},
			call:       listComments,
			retryAfter: time.Until(reset),
		},
		{
			name:       "403 primary limit from the simulator",
			setup:      func(sim *Simulator) { sim.SetRateLimit(0, reset) },
			call:       createStatus,
			retryAfter: time.Until(reset),
			msg:        "API rate limit exceeded",
		},
		{
			name: "403 secondary limit",
			setup: func(sim *Simulator) {
				sim.Faults.Add(forgesim.Fault{
					Status: http.StatusForbidden, Header: map[string]string{"Retry-After": "30"},
					Body: `{"message":"You have exceeded a secondary rate limit.","documentation_url":"https://docs.github.com/rest/overview/resources-in-the-rest-api#secondary-rate-limits"}`,
				})
			},
			call:       createComment,
			retryAfter: 30 * time.Second,
			msg:        "secondary rate limit",
		},
		{
			// GitHub's documentation promises only "an error message that
			// indicates that you exceeded a secondary rate limit", and says
			// to wait at least a minute when no header says how long.
			name: "403 secondary limit without headers",
			setup: func(sim *Simulator) {
				sim.Faults.Add(forgesim.Fault{
					Status: http.StatusForbidden,
					Body:   `{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again.","documentation_url":"https://docs.github.com/rest/using-the-rest-api/troubleshooting-the-rest-api"}`,
				})
			},
			call:       createStatus,
			retryAfter: time.Minute,
			msg:        "secondary rate limit",
		},
		{
			name: "plain 403 is a host error",
			setup: func(sim *Simulator) {
				sim.Faults.Add(forgesim.Fault{Status: http.StatusForbidden, Body: `{"message":"Resource not accessible by integration"}`})
			},
			call:       createComment,
			wantStatus: http.StatusForbidden, retryAfter: -1, msg: "Resource not accessible by integration",
		},
		{
			name: "too long comment",
			call: func(c *Client) error {
				_, err := c.CreateComment(context.Background(), testRepo, 1, strings.Repeat("x", 65536))
				return err
			},
			wantStatus: http.StatusUnprocessableEntity, retryAfter: -1, msg: "Body is too long",
		},
		{
			name: "bad credentials",
			call: func(c *Client) error {
				c, _ = New(Options{BaseURL: c.baseURL.String(), Token: testToken + "-revoked"})
				return createStatus(c)
			},
			wantStatus: http.StatusUnauthorized, retryAfter: -1, msg: "Bad credentials",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, sim, _ := newTestClient(t)
			if tt.setup != nil {
				tt.setup(sim)
			}
			err := tt.call(c)
			if err == nil {
				t.Fatal("call succeeded, want an error")
			}
			if strings.Contains(err.Error(), testToken) {
				t.Errorf("error %q contains the token", err)
			}
			if tt.msg != "" && !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
			var rle *bot.RateLimitError
			if tt.retryAfter >= 0 {
				if !errors.As(err, &rle) {
					t.Fatalf("error %v (%T) is not a *bot.RateLimitError", err, err)
				}
				if d := rle.RetryAfter - tt.retryAfter; d < -2*time.Second || d > 2*time.Second {
					t.Errorf("RetryAfter = %v, want %v", rle.RetryAfter, tt.retryAfter)
				}
				return
			}
			var he *bot.HostError
			if !errors.As(err, &he) {
				t.Fatalf("error %v (%T) is not a *bot.HostError", err, err)
			}
			if he.StatusCode != tt.wantStatus || he.Temporary() != tt.temporary || he.Forge != "github" || he.Method == "" || !strings.HasPrefix(he.Path, "/repos/acme/model/") {
				t.Errorf("HostError = %+v", he)
			}
		})
	}
}

func createStatus(c *Client) error {
	return c.CreateStatus(context.Background(), testRepo, strings.Repeat("a", 40), bot.Status{Context: "mlbot/train-eval", State: bot.StateSuccess})
}

func createComment(c *Client) error {
	_, err := c.CreateComment(context.Background(), testRepo, 1, "hello")
	return err
}

func listComments(c *Client) error {
	_, err := c.ListComments(context.Background(), testRepo, 1)
	return err
}

func formatUnix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

func TestTransportError(t *testing.T) {
	srv := httptest.NewServer(NewSimulator())
	srv.Close()
	c, err := New(Options{BaseURL: srv.URL, Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	err = createStatus(c)
	var ue *url.Error
	if !errors.As(err, &ue) {
		t.Fatalf("error %v (%T) does not wrap the transport's *url.Error", err, err)
	}
	var he *bot.HostError
	if errors.As(err, &he) || strings.Contains(err.Error(), testToken) {
		t.Errorf("transport error %q is a HostError or names the token", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c, _, _ = newTestClient(t)
	if err := c.CreateStatus(ctx, testRepo, "abc", bot.Status{State: bot.StateSuccess}); !errors.Is(err, context.Canceled) {
		t.Errorf("CreateStatus(cancelled ctx) = %v, want context.Canceled", err)
	}
}

func TestCloneAuth(t *testing.T) {
	ctx := context.Background()
	c, _, _ := newTestClient(t)
	got, err := c.CloneAuth(ctx, testRepo)
	if err != nil {
		t.Fatal(err)
	}
	if want := "Basic " + base64.StdEncoding.EncodeToString([]byte("x-access-token:"+testToken)); got != want {
		t.Errorf("CloneAuth = %q, want %q", got, want)
	}
	anon, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := anon.CloneAuth(ctx, testRepo); got != "" || err != nil {
		t.Errorf("CloneAuth without credentials = %q, %v", got, err)
	}
}

// TestEnterpriseBaseURL checks that a base URL with a path is used as
// given, pagination included.
func TestEnterpriseBaseURL(t *testing.T) {
	sim := NewSimulator()
	srv := httptest.NewServer(sim)
	defer srv.Close()
	c, err := New(Options{BaseURL: srv.URL + "/api/v3", Token: "any", UserAgent: "mlbot-test/1"})
	if err != nil {
		t.Fatal(err)
	}
	for range 120 {
		sim.AddComment("acme/model", 1, "alice", "hi")
	}
	got, err := c.ListComments(context.Background(), testRepo, 1)
	if err != nil || len(got) != 120 {
		t.Fatalf("ListComments = %d comments, %v", len(got), err)
	}
	calls := sim.Rec.Find(http.MethodGet, "/api/v3/repos/acme/model/issues/1/comments")
	if len(calls) != 2 {
		t.Fatalf("%d calls under /api/v3, want 2", len(calls))
	}
	if ua := calls[0].Header.Get("User-Agent"); ua != "mlbot-test/1" {
		t.Errorf("User-Agent = %q", ua)
	}
	if auth := calls[0].Header.Get("Authorization"); auth != "Bearer any" {
		t.Errorf("Authorization = %q", auth)
	}
}

func testKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func keyPEM(key *rsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
}

func testKeyPEM(t testing.TB) []byte { return keyPEM(testKey(t)) }

// TestAppAuth runs the GitHub App flow end to end: the App's JWT finds
// each repository's installation, each installation mints its own token,
// and every repository's calls carry its own installation's token.
func TestAppAuth(t *testing.T) {
	key := testKey(t)
	sim := NewSimulator()
	sim.AddApp(42, &key.PublicKey, 7, "acme/model")
	sim.AddApp(42, &key.PublicKey, 8, "Other/Repo")
	srv := httptest.NewServer(sim)
	defer srv.Close()
	c, err := New(Options{BaseURL: srv.URL, AppID: 42, PrivateKey: keyPEM(key)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	other := bot.Repo{FullName: "other/repo"}
	for range 2 {
		if err := createStatus(c); err != nil {
			t.Fatal(err)
		}
		if _, err := c.CreateComment(ctx, other, 1, "hi"); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(sim.Rec.Find(http.MethodGet, "/installation")); n != 2 {
		t.Errorf("%d installation lookups, want 2 (one per repository)", n)
	}
	tokens := sim.Rec.Find(http.MethodPost, "/access_tokens")
	if len(tokens) != 2 || !strings.Contains(tokens[0].Path, "/7/") || !strings.Contains(tokens[1].Path, "/8/") {
		t.Errorf("token calls = %+v, want one for installation 7, one for 8", tokens)
	}
	byRepo := map[string]string{}
	for _, call := range sim.Rec.Calls() {
		if strings.Contains(call.Path, "/check-runs") || strings.Contains(call.Path, "/comments") {
			auth := call.Header.Get("Authorization")
			if !strings.HasPrefix(auth, "token ghs_") {
				t.Errorf("%s %s used %q, want an installation token", call.Method, call.Path, auth)
			}
			repo := strings.Join(strings.Split(call.Path, "/")[2:4], "/")
			if prev, ok := byRepo[repo]; ok && prev != auth {
				t.Errorf("%s used two tokens", repo)
			}
			byRepo[repo] = auth
		}
	}
	if len(byRepo) != 2 || byRepo["acme/model"] == byRepo["other/repo"] {
		t.Errorf("tokens by repository = %v, want a distinct one for each", byRepo)
	}

	// CloneAuth hands out the cached installation token.
	auth, err := c.CloneAuth(ctx, testRepo)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(auth, "Basic "))
	if string(raw) != "x-access-token:"+strings.TrimPrefix(byRepo["acme/model"], "token ") {
		t.Errorf("CloneAuth = %q, want the installation token of acme/model", raw)
	}
	if !sim.authorizeGit(auth) {
		t.Error("the simulator's git endpoint refuses the CloneAuth credential")
	}
	if n := len(sim.Rec.Find(http.MethodPost, "/access_tokens")); n != 2 {
		t.Errorf("CloneAuth minted a new token (%d token calls)", n)
	}

	// A repository the App is not installed on is a 404 from the lookup.
	err = createStatusOn(c, bot.Repo{FullName: "acme/elsewhere"})
	if !errors.Is(err, bot.ErrNotFound) {
		t.Errorf("CreateStatus on an uninstalled repository = %v, want ErrNotFound", err)
	}
}

func TestAppAuthWrongKey(t *testing.T) {
	key := testKey(t)
	sim := NewSimulator()
	sim.AddApp(42, &key.PublicKey, 7, "acme/model")
	srv := httptest.NewServer(sim)
	defer srv.Close()
	c, err := New(Options{BaseURL: srv.URL, AppID: 42, PrivateKey: testKeyPEM(t)})
	if err != nil {
		t.Fatal(err)
	}
	err = createStatus(c)
	var he *bot.HostError
	if !errors.As(err, &he) || he.StatusCode != http.StatusUnauthorized {
		t.Errorf("CreateStatus with a foreign key = %v, want a 401 HostError", err)
	}
	if _, err := c.CloneAuth(context.Background(), testRepo); err == nil {
		t.Error("CloneAuth with a foreign key succeeded")
	}
}

func createStatusOn(c *Client, repo bot.Repo) error {
	return c.CreateStatus(context.Background(), repo, strings.Repeat("a", 40), bot.Status{Context: "mlbot/train-eval", State: bot.StateSuccess})
}

// TestAppAuthRecovery checks the installation-token failure paths: a
// failed token mint is a HostError like any other answer, and a token
// GitHub refuses is dropped so that the next call mints a new one.
func TestAppAuthRecovery(t *testing.T) {
	key := testKey(t)
	sim := NewSimulator()
	sim.AddApp(42, &key.PublicKey, 7, "acme/model")
	srv := httptest.NewServer(sim)
	defer srv.Close()
	c, err := New(Options{BaseURL: srv.URL, AppID: 42, PrivateKey: keyPEM(key)})
	if err != nil {
		t.Fatal(err)
	}

	sim.Faults.Add(forgesim.Fault{Method: http.MethodPost, PathSubstr: "/access_tokens", Status: http.StatusBadGateway})
	err = createStatus(c)
	var he *bot.HostError
	if !errors.As(err, &he) || he.StatusCode != http.StatusBadGateway || !he.Temporary() || !strings.HasSuffix(he.Path, "/app/installations/7/access_tokens") {
		t.Fatalf("CreateStatus with a failing token mint = %v (%T)", err, err)
	}
	if err := createStatus(c); err != nil {
		t.Fatalf("CreateStatus after the mint recovered = %v", err)
	}

	// An App sets check runs; the first call of one is the lookup of the
	// commit's existing check run.
	sim.Faults.Add(forgesim.Fault{PathSubstr: "/check-runs", Status: http.StatusUnauthorized, Body: `{"message":"Bad credentials"}`})
	if err := createStatus(c); !errors.As(err, &he) || he.StatusCode != http.StatusUnauthorized {
		t.Fatalf("CreateStatus with a refused token = %v", err)
	}
	if err := createStatus(c); err != nil {
		t.Fatal(err)
	}
	if n := len(sim.Rec.Find(http.MethodGet, "/installation")); n != 2 {
		t.Errorf("%d installation lookups, want 2 (the first, and one after the refused token)", n)
	}
	if n := len(sim.Rec.Find(http.MethodPost, "/access_tokens")); n != 3 {
		t.Errorf("%d token mints, want 3 (failed, first, after the refused token)", n)
	}
}

// TestListCommentsFollowsCursorLinks pages through comments the way GitHub's
// guide says: by the Link header's next URL, even when it carries a cursor
// rather than a page number.
func TestListCommentsFollowsCursorLinks(t *testing.T) {
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("after") == "" {
			w.Header().Set("Link", `<`+srv.URL+`/repos/acme/model/issues/1/comments?per_page=100&after=abc>; rel="next"`)
			io.WriteString(w, `[{"id":1,"body":"first"}]`)
			return
		}
		io.WriteString(w, `[{"id":2,"body":"<!-- mlbot:train-eval -->"}]`)
	}))
	defer srv.Close()
	c, err := New(Options{BaseURL: srv.URL + "/", Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.ListComments(context.Background(), bot.Repo{Forge: "github", FullName: "acme/model"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].ID != 2 {
		t.Fatalf("comments = %+v, want both pages", got)
	}
}

// TestListCommentsRefusesForeignLinks keeps the token from following a
// Link to another host.
func TestListCommentsRefusesForeignLinks(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", `<http://evil.example/steal?page=2>; rel="next"`)
		io.WriteString(w, `[{"id":1,"body":"first"}]`)
	}))
	defer srv.Close()
	c, err := New(Options{BaseURL: srv.URL + "/", Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListComments(context.Background(), bot.Repo{Forge: "github", FullName: "acme/model"}, 1); err == nil {
		t.Fatal("followed a Link to another host")
	}
}

// TestCloneAuthRefusesForeignHosts keeps the token from a clone URL that a
// signed payload pointed at another host.
func TestCloneAuthRefusesForeignHosts(t *testing.T) {
	c, err := New(Options{BaseURL: "https://api.github.com/", Token: "secret-token"})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := c.CloneAuth(context.Background(), bot.Repo{FullName: "acme/model", CloneURL: "https://evil.example/acme/model.git"})
	if err == nil || auth != "" {
		t.Fatalf("CloneAuth = %q, %v; want a refusal", auth, err)
	}
	if strings.Contains(err.Error(), "secret-token") {
		t.Errorf("the refusal names the token: %v", err)
	}
	if auth, err := c.CloneAuth(context.Background(), bot.Repo{FullName: "acme/model", CloneURL: "https://github.com/acme/model.git"}); err != nil || auth == "" {
		t.Errorf("CloneAuth for github.com = %q, %v", auth, err)
	}
}

// TestCloneAuthCloneURL checks where each API URL expects repositories:
// github.com beside api.github.com, the Enterprise host beside /api/v3,
// the API's own root for a simulator; and that the check holds without
// any credential too.
func TestCloneAuthCloneURL(t *testing.T) {
	tests := []struct {
		api, token, clone string
		ok                bool
	}{
		{"https://api.github.com/", "tok", "https://github.com/acme/model.git", true},
		{"https://api.github.com/", "tok", "https://github.com/acme/other.git", false},
		{"https://api.github.com/", "tok", "http://github.com/acme/model.git", false},
		{"https://ghe.example.com/api/v3/", "tok", "https://ghe.example.com/acme/model.git", true},
		{"https://ghe.example.com/api/v3/", "tok", "https://ghe.example.com/api/v3/acme/model.git", false},
		{"https://ghe.example.com:8443/api/v3", "tok", "https://ghe.example.com:8443/acme/model.git", true},
		{"https://ghe.example.com:8443/api/v3", "tok", "https://ghe.example.com/acme/model.git", false},
		{"http://127.0.0.1:8080/", "tok", "http://127.0.0.1:8080/acme/model.git", true},
		{"http://127.0.0.1:8080/", "tok", "http://127.0.0.1:8080/git/acme/model.git", false},
		{"https://api.github.com/", "", "https://github.com/acme/model.git", true},
		{"https://api.github.com/", "", "https://evil.example/acme/model.git", false},
	}
	for _, tt := range tests {
		c, err := New(Options{BaseURL: tt.api, Token: tt.token})
		if err != nil {
			t.Fatal(err)
		}
		auth, err := c.CloneAuth(context.Background(), bot.Repo{Forge: "github", FullName: "acme/model", CloneURL: tt.clone})
		if tt.ok && err != nil {
			t.Errorf("API %s: CloneAuth(%s) = %v", tt.api, tt.clone, err)
		}
		if !tt.ok && (err == nil || !errors.Is(err, bot.ErrForeignCloneHost) || auth != "") {
			t.Errorf("API %s: CloneAuth(%s) = %q, %v; want a refusal", tt.api, tt.clone, auth, err)
		}
	}
}
