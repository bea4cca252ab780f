package gitlab

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	gl "gitlab.com/gitlab-org/api/client-go"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/bot/forgesim"
)

const (
	testToken   = "glpat-test-token-123"
	testProject = "group/sub/model.v2" // a dot and subgroups exercise path escaping
	testID      = 42
	testSHA     = "c4c79227ed610f1151f05bbc5be33b4f340d39c8"
)

// newTestClient serves a fresh simulator holding testProject and returns
// it with a client authenticated by token.
func newTestClient(t *testing.T, token string) (*Client, *Simulator) {
	t.Helper()
	sim := NewSimulator()
	sim.AddToken(testToken)
	sim.AddProject(testID, testProject)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	c, err := New(Options{BaseURL: srv.URL, Token: token, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return c, sim
}

func TestNew(t *testing.T) {
	tests := []struct {
		base string
		ok   bool
	}{
		{"", true},
		{"https://gitlab.com", true},
		{"https://gitlab.example.com/", true},
		{"http://127.0.0.1:8080/gitlab", true},
		{"gitlab.example.com", false},
		{"ftp://gitlab.example.com", false},
		{"https://", false},
		{"::", false},
	}
	for _, tt := range tests {
		c, err := New(Options{BaseURL: tt.base})
		if (err == nil) != tt.ok {
			t.Errorf("New(%q) error = %v, want ok %v", tt.base, err, tt.ok)
		}
		if c != nil && c.Name() != "gitlab" {
			t.Errorf("Name = %q", c.Name())
		}
	}
}

func TestCreateStatusTransitions(t *testing.T) {
	ctx := context.Background()
	c, sim := newTestClient(t, testToken)
	byID := bot.Repo{ID: testID, FullName: "ignored/when/id/is/set"}
	byPath := bot.Repo{FullName: testProject}
	steps := []struct {
		repo       bot.Repo
		state      bot.State
		wantGitLab string
		wantCount  int // statuses on the commit afterwards
	}{
		{byID, bot.StatePending, "pending", 1},
		{byPath, bot.StateRunning, "running", 1},
		// GitLab answers running→running with 400 "Cannot transition
		// status"; a task run twice must see success.
		{byID, bot.StateRunning, "running", 1},
		{byPath, bot.StateSuccess, "success", 1},
		// A finished status is not reopened: GitLab starts a new one.
		{byID, bot.StatePending, "pending", 2},
		{byID, bot.StateFailure, "failed", 2},
		{byID, bot.StateError, "failed", 3},
		{byID, bot.StateCanceled, "canceled", 4},
	}
	for i, st := range steps {
		err := c.CreateStatus(ctx, st.repo, testSHA, bot.Status{
			Context: "mlbot/train-eval", State: st.state,
			Description: fmt.Sprintf("step %d", i), TargetURL: "https://mlbot.example.com/runs/1",
		})
		if err != nil {
			t.Fatalf("step %d (%s): %v", i, st.state, err)
		}
		got := sim.Statuses(testProject, testSHA)
		if len(got) != st.wantCount {
			t.Fatalf("step %d: %d statuses, want %d", i, len(got), st.wantCount)
		}
		last := got[len(got)-1]
		if last.Status != st.wantGitLab || last.Name != "mlbot/train-eval" || last.TargetURL != "https://mlbot.example.com/runs/1" {
			t.Errorf("step %d: status %+v, want %s", i, last, st.wantGitLab)
		}
		if st.state != bot.StateRunning || i != 2 {
			if want := fmt.Sprintf("step %d", i); last.Description != want {
				t.Errorf("step %d: description %q, want %q", i, last.Description, want)
			}
		}
	}
	calls := sim.Rec.Find(http.MethodPost, "/statuses/")
	if len(calls) != len(steps) {
		t.Fatalf("%d status calls, want %d", len(calls), len(steps))
	}
	if calls[2].Status != http.StatusBadRequest {
		t.Errorf("repeated running answered %d, want the 400 the client tolerates", calls[2].Status)
	}
	for _, call := range calls {
		if got := call.Header.Get("PRIVATE-TOKEN"); got != testToken {
			t.Errorf("PRIVATE-TOKEN = %q", got)
		}
	}
	// By id and by escaped path hit the same project.
	if !strings.Contains(calls[0].Path, "/projects/42/") || !strings.Contains(calls[1].Path, "/projects/"+testProject+"/") {
		t.Errorf("paths %q, %q", calls[0].Path, calls[1].Path)
	}
}

func TestCreateStatusRejects(t *testing.T) {
	c, _ := newTestClient(t, testToken)
	ctx := context.Background()
	if err := c.CreateStatus(ctx, bot.Repo{ID: testID}, testSHA, bot.Status{Context: "x", State: "weird"}); err == nil {
		t.Error("unknown state accepted")
	}
	if err := c.CreateStatus(ctx, bot.Repo{}, testSHA, bot.Status{Context: "x", State: bot.StatePending}); err == nil {
		t.Error("repo without id or name accepted")
	}
}

func TestListCommentsPaginates(t *testing.T) {
	c, sim := newTestClient(t, testToken)
	const iid, total = 7, 230
	var want []string
	for i := range total {
		system := i%10 == 3 // "added 1 commit" and the like
		body := fmt.Sprintf("note %d", i)
		if _, err := sim.AddNote(testProject, iid, "alice", body, system); err != nil {
			t.Fatal(err)
		}
		if !system {
			want = append(want, body)
		}
	}
	sim.AddNote(testProject, iid+1, "bob", "another MR", false)

	got, err := c.ListComments(context.Background(), bot.Repo{ID: testID}, iid)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d comments, want %d", len(got), len(want))
	}
	for i, cm := range got {
		if cm.Body != want[i] || cm.Author != "alice" || !cm.OnPullRequest || cm.ID == 0 {
			t.Fatalf("comment %d = %+v, want body %q by alice", i, cm, want[i])
		}
	}
	calls := sim.Rec.Find(http.MethodGet, "/notes")
	if len(calls) != 3 {
		t.Fatalf("%d list calls, want 3 pages of 100", len(calls))
	}
	for i, call := range calls {
		if !strings.Contains(call.Query, "per_page=100") || !strings.Contains(call.Query, "page="+strconv.Itoa(i+1)) {
			t.Errorf("call %d query %q", i, call.Query)
		}
	}
}

func TestCreateAndUpdateComment(t *testing.T) {
	ctx := context.Background()
	c, sim := newTestClient(t, testToken)
	repo := bot.Repo{FullName: testProject}
	cm, err := c.CreateComment(ctx, repo, 3, "<!-- mlbot:report -->\nrunning")
	if err != nil {
		t.Fatal(err)
	}
	if cm.ID == 0 || cm.Author != "mlbot" || cm.Body != "<!-- mlbot:report -->\nrunning" {
		t.Errorf("created %+v", cm)
	}
	if err := c.UpdateComment(ctx, repo, 3, cm.ID, "<!-- mlbot:report -->\ndone"); err != nil {
		t.Fatal(err)
	}
	notes := sim.Notes(testProject, 3)
	if len(notes) != 1 || notes[0].Body != "<!-- mlbot:report -->\ndone" || notes[0].Edits != 1 {
		t.Errorf("notes = %+v", notes)
	}

	err = c.UpdateComment(ctx, repo, 3, cm.ID+1000, "x")
	var he *bot.HostError
	if !errors.As(err, &he) || he.StatusCode != http.StatusNotFound || !errors.Is(err, bot.ErrNotFound) {
		t.Errorf("update of unknown note: %v, want a 404 HostError", err)
	}
}

func TestClientErrors(t *testing.T) {
	repo := bot.Repo{ID: testID}
	tests := []struct {
		name      string
		token     string
		repo      bot.Repo
		setup     func(*Simulator)
		check     func(*testing.T, error)
		wantCalls int
	}{
		{
			name: "502 is a temporary host error, not retried by the client",
			setup: func(s *Simulator) {
				s.Faults.Add(forgesim.Fault{PathSubstr: "/notes", Status: http.StatusBadGateway, Body: "<html>502 Bad Gateway</html>", Times: 5})
			},
			check: func(t *testing.T, err error) {
				var he *bot.HostError
				if !errors.As(err, &he) || !he.Temporary() || he.StatusCode != 502 || he.Forge != "gitlab" || he.Method != "POST" {
					t.Errorf("err = %#v", err)
				}
			},
			wantCalls: 1,
		},
		{
			name: "429 with Retry-After",
			setup: func(s *Simulator) {
				s.Faults.Add(forgesim.Fault{Status: http.StatusTooManyRequests, Body: "Retry later\n", Header: map[string]string{"Retry-After": "7"}})
			},
			check:     wantRateLimit(7 * time.Second),
			wantCalls: 1,
		},
		{
			name: "429 with only RateLimit-Reset",
			setup: func(s *Simulator) {
				reset := time.Now().Add(90 * time.Second).Unix()
				s.Faults.Add(forgesim.Fault{Status: http.StatusTooManyRequests, Header: map[string]string{"RateLimit-Reset": strconv.FormatInt(reset, 10)}})
			},
			check: func(t *testing.T, err error) {
				var rl *bot.RateLimitError
				if !errors.As(err, &rl) || rl.RetryAfter < 85*time.Second || rl.RetryAfter > 91*time.Second {
					t.Errorf("err = %v, want a RateLimitError of about 90s", err)
				}
			},
			wantCalls: 1,
		},
		{
			name:      "429 without hints waits the default",
			setup:     func(s *Simulator) { s.Faults.Add(forgesim.Fault{Status: http.StatusTooManyRequests}) },
			check:     wantRateLimit(DefaultRetryAfter),
			wantCalls: 1,
		},
		{
			name:  "simulator's own rate limit",
			setup: func(s *Simulator) { s.SetRateLimit(0, time.Now().Add(30*time.Second)) },
			check: func(t *testing.T, err error) {
				var rl *bot.RateLimitError
				if !errors.As(err, &rl) || rl.RetryAfter < 29*time.Second || rl.RetryAfter > 30*time.Second || rl.Message != "Retry later" {
					t.Errorf("err = %v, want a RateLimitError of 30s", err)
				}
			},
			wantCalls: 1,
		},
		{
			name:  "401 on a bad token",
			token: "glpat-wrong",
			check: func(t *testing.T, err error) {
				var he *bot.HostError
				if !errors.As(err, &he) || he.StatusCode != 401 || he.Message != "401 Unauthorized" || he.Temporary() {
					t.Errorf("err = %#v", err)
				}
				if strings.Contains(err.Error(), "glpat-wrong") {
					t.Errorf("error %q contains the token", err)
				}
			},
			wantCalls: 1,
		},
		{
			name: "404 on an unknown project",
			repo: bot.Repo{FullName: "nobody/nothing"},
			check: func(t *testing.T, err error) {
				var he *bot.HostError
				if !errors.As(err, &he) || he.StatusCode != 404 || !errors.Is(err, bot.ErrNotFound) ||
					he.Path != "/api/v4/projects/nobody%2Fnothing/merge_requests/1/notes" {
					t.Errorf("err = %#v", err)
				}
			},
			wantCalls: 1,
		},
		{
			name: "2xx whose body does not decode",
			setup: func(s *Simulator) {
				s.Faults.Add(forgesim.Fault{Status: 201, Body: "<html>proxy login</html>"})
			},
			check: func(t *testing.T, err error) {
				var he *bot.HostError
				var rl *bot.RateLimitError
				if errors.As(err, &he) || errors.As(err, &rl) || !strings.Contains(err.Error(), "201 answer") {
					t.Errorf("err = %#v", err)
				}
			},
			wantCalls: 1,
		},
		{
			name: "400 with GitLab's field errors",
			setup: func(s *Simulator) {
				s.Faults.Add(forgesim.Fault{Status: 400, Body: `{"message":{"note":["is too long (maximum is 1000000 characters)"]}}`})
			},
			check: func(t *testing.T, err error) {
				var he *bot.HostError
				if !errors.As(err, &he) || he.StatusCode != 400 || !strings.Contains(he.Message, "is too long") {
					t.Errorf("err = %#v", err)
				}
			},
			wantCalls: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := tt.token
			if token == "" {
				token = testToken
			}
			c, sim := newTestClient(t, token)
			if tt.setup != nil {
				tt.setup(sim)
			}
			r := repo
			if tt.repo != (bot.Repo{}) {
				r = tt.repo
			}
			_, err := c.CreateComment(context.Background(), r, 1, "hello")
			if err == nil {
				t.Fatal("CreateComment succeeded")
			}
			tt.check(t, err)
			if n := len(sim.Rec.Calls()); n != tt.wantCalls {
				t.Errorf("%d calls, want %d (the client must not retry)", n, tt.wantCalls)
			}
		})
	}
}

func wantRateLimit(d time.Duration) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var rl *bot.RateLimitError
		if !errors.As(err, &rl) || rl.RetryAfter != d || rl.Forge != "gitlab" {
			t.Errorf("err = %v, want a RateLimitError of %s", err, d)
		}
	}
}

func TestTransportErrorHidesToken(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close() // nothing listens any more
	c, err := New(Options{BaseURL: srv.URL, Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	err = c.UpdateComment(context.Background(), bot.Repo{ID: 1}, 1, 2, "x")
	if err == nil {
		t.Fatal("call to a closed server succeeded")
	}
	if strings.Contains(err.Error(), testToken) {
		t.Errorf("error %q contains the token", err)
	}
	var he *bot.HostError
	if errors.As(err, &he) {
		t.Errorf("transport failure reported as a host answer: %v", err)
	}
}

func TestCloneAuth(t *testing.T) {
	ctx := context.Background()
	c, _ := New(Options{Token: "tok"})
	got, err := c.CloneAuth(ctx, bot.Repo{})
	if err != nil || got != "Basic "+base64.StdEncoding.EncodeToString([]byte("oauth2:tok")) {
		t.Errorf("CloneAuth = %q, %v", got, err)
	}
	c, _ = New(Options{})
	if got, err := c.CloneAuth(ctx, bot.Repo{}); got != "" || err != nil {
		t.Errorf("CloneAuth without token = %q, %v", got, err)
	}
}

// TestCloneAuthCloneURL checks that a payload's clone URL must be the
// project's URL on the configured instance, with a token or without.
func TestCloneAuthCloneURL(t *testing.T) {
	tests := []struct {
		base, token, clone string
		ok                 bool
	}{
		{"https://gitlab.example.com", "tok", "https://gitlab.example.com/group/sub/model.git", true},
		{"https://gitlab.example.com/api/v4", "tok", "https://gitlab.example.com/group/sub/model.git", true},
		{"https://example.com/gitlab/", "tok", "https://example.com/gitlab/group/sub/model.git", true},
		{"https://gitlab.example.com", "tok", "https://gitlab.example.com/evil/group/sub/model.git", false},
		{"https://gitlab.example.com", "tok", "https://gitlab.example.com/group/sub/other.git", false},
		{"https://gitlab.example.com", "tok", "http://gitlab.example.com/group/sub/model.git", false},
		{"https://gitlab.example.com", "tok", "https://gitlab.example.com:8443/group/sub/model.git", false},
		{"https://gitlab.example.com", "", "https://gitlab.example.com/group/sub/model.git", true},
		{"https://gitlab.example.com", "", "https://evil.example/group/sub/model.git", false},
		{"https://gitlab.example.com", "", "https://gitlab.example.com/group/other.git", false},
	}
	for _, tt := range tests {
		c, err := New(Options{BaseURL: tt.base, Token: tt.token})
		if err != nil {
			t.Fatal(err)
		}
		auth, err := c.CloneAuth(context.Background(), bot.Repo{Forge: "gitlab", FullName: "group/sub/model", CloneURL: tt.clone})
		if tt.ok && err != nil {
			t.Errorf("base %s: CloneAuth(%s) = %v", tt.base, tt.clone, err)
		}
		if !tt.ok && (err == nil || !errors.Is(err, bot.ErrForeignCloneHost) || auth != "") {
			t.Errorf("base %s, token %q: CloneAuth(%s) = %q, %v; want a refusal", tt.base, tt.token, tt.clone, auth, err)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name   string
		header map[string]string
		want   time.Duration
	}{
		{"seconds", map[string]string{"Retry-After": "12"}, 12 * time.Second},
		{"http date", map[string]string{"Retry-After": now.Add(time.Minute).Format(http.TimeFormat)}, time.Minute},
		{"reset", map[string]string{"RateLimit-Reset": strconv.FormatInt(now.Add(45*time.Second).Unix(), 10)}, 45 * time.Second},
		{"reset in the past", map[string]string{"RateLimit-Reset": strconv.FormatInt(now.Add(-time.Second).Unix(), 10)}, 0},
		{"retry-after wins", map[string]string{"Retry-After": "3", "RateLimit-Reset": strconv.FormatInt(now.Add(time.Hour).Unix(), 10)}, 3 * time.Second},
		{"garbage", map[string]string{"Retry-After": "soon"}, DefaultRetryAfter},
		{"none", nil, DefaultRetryAfter},
	}
	for _, tt := range tests {
		h := http.Header{}
		for k, v := range tt.header {
			h.Set(k, v)
		}
		if got := retryAfter(h, now); got != tt.want {
			t.Errorf("%s: retryAfter = %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"message string", &gl.ErrorResponse{Body: []byte(`{"message":"403 Forbidden"}`)}, "403 Forbidden"},
		{"message object", &gl.ErrorResponse{Body: []byte(`{"message":{"note":["is too long"]}}`)}, `{"note":["is too long"]}`},
		{"error field", &gl.ErrorResponse{Body: []byte(`{"error":"state is missing"}`)}, "state is missing"},
		{"plain text", &gl.ErrorResponse{Body: []byte("Retry later\n")}, "Retry later"},
		{"empty body", &gl.ErrorResponse{}, ""},
		{"long text", &gl.ErrorResponse{Body: []byte(strings.Repeat("é", 400))}, strings.Repeat("é", 250) + "…"},
		{"not found", gl.ErrNotFound, "404 Not Found"},
		{"other", errors.New("boom"), "boom"},
	}
	for _, tt := range tests {
		if got := errorMessage(tt.err); got != tt.want {
			t.Errorf("%s: errorMessage = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestListCommentsFollowsLink: GitLab documents a Link header with
// rel="next" beside X-Next-Page; a listing that carries only the Link
// (a proxy dropped the X- headers) is still read to its end, where the
// sticky comment may be.
func TestListCommentsFollowsLink(t *testing.T) {
	var pages []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v4/projects/42/merge_requests/7/notes" {
			http.NotFound(w, r)
			return
		}
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		pages = append(pages, r.URL.Query().Get("page"))
		if page < 3 {
			q := r.URL.Query()
			q.Set("page", strconv.Itoa(page+1))
			w.Header().Set("Link", fmt.Sprintf(`<http://%s%s?%s>; rel="next", <http://%s%s?page=1>; rel="first"`, r.Host, r.URL.Path, q.Encode(), r.Host, r.URL.Path))
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `[{"id": %d, "body": "note on page %d", "author": {"username": "alice"}, "system": false}]`, page, page)
	}))
	defer srv.Close()
	c, err := New(Options{BaseURL: srv.URL, Token: testToken, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.ListComments(context.Background(), bot.Repo{ID: testID}, 7)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[2].Body != "note on page 3" || strings.Join(pages, ",") != "1,2,3" {
		t.Errorf("comments %+v after pages %v, want one from each of pages 1, 2 and 3", got, pages)
	}
}
