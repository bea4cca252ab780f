package gitlab

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mlbot/mlbot/bot"
)

// simCall is one raw request to a simulator and what came back.
type simCall struct {
	status int
	header http.Header
	body   string
}

func (c simCall) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(c.body), v); err != nil {
		t.Fatalf("decode %q: %v", c.body, err)
	}
}

func do(t *testing.T, method, u string, header map[string]string, body string) simCall {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return simCall{resp.StatusCode, resp.Header, string(b)}
}

func newSimServer(t *testing.T) (*Simulator, string) {
	t.Helper()
	sim := NewSimulator()
	sim.AddProject(testID, testProject)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv.URL + "/api/v4"
}

var escapedProject = url.PathEscape(testProject) // group%2Fsub%2Fmodel.v2

func TestSimulatorRouting(t *testing.T) {
	_, api := newSimServer(t)
	tests := []struct {
		name, method, path, body string
		status                   int
		wantBody                 string
	}{
		{"project by id", "GET", "/projects/42", "", 200, `"path_with_namespace":"group/sub/model.v2"`},
		{"project by path", "GET", "/projects/" + escapedProject, "", 200, `"id":42`},
		{"project by path with escaped dot", "GET", "/projects/group%2Fsub%2Fmodel%2Ev2", "", 200, `"id":42`},
		{"project path is case-insensitive", "GET", "/projects/GROUP%2Fsub%2Fmodel.v2", "", 200, `"id":42`},
		{"unknown project", "GET", "/projects/7/merge_requests/1/notes", "", 404, `{"message":"404 Project Not Found"}`},
		{"unencoded path is not a project", "GET", "/projects/group/sub/model.v2", "", 404, `404 Project Not Found`},
		{"unknown endpoint", "GET", "/projects/42/pipelines", "", 404, `{"error":"404 Not Found"}`},
		{"outside the API", "GET", "/../../foo", "", 404, `{"error":"404 Not Found"}`},
		{"missing state", "POST", "/projects/42/statuses/abc", `{"name":"x"}`, 400, `{"error":"state is missing"}`},
		{"bad state", "POST", "/projects/42/statuses/abc", `{"state":"failure"}`, 400, `{"error":"state does not have a valid value"}`},
		{"status", "POST", "/projects/42/statuses/abc?state=skipped&name=lint", "", 201, `"status":"skipped"`},
		{"missing note body", "POST", "/projects/42/merge_requests/1/notes", `{}`, 400, `{"error":"body is missing"}`},
		{"unknown note", "PUT", "/projects/42/merge_requests/1/notes/999", `{"body":"x"}`, 404, `{"message":"404 Note Not Found"}`},
		{"bad iid", "GET", "/projects/42/merge_requests/abc/notes", "", 404, `{"error":"404 Not Found"}`},
		{"not a member", "GET", "/projects/42/members/all/1", "", 404, `{"message":"404 Not found"}`},
		{"unknown user", "GET", "/users?username=nobody", "", 200, `[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := do(t, tt.method, api+tt.path, nil, tt.body)
			if got.status != tt.status || !strings.Contains(got.body, tt.wantBody) {
				t.Errorf("%s %s = %d %s, want %d containing %s", tt.method, tt.path, got.status, got.body, tt.status, tt.wantBody)
			}
			if ct := got.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if got.header.Get("RateLimit-Limit") != "2000" || got.header.Get("RateLimit-Remaining") == "" || got.header.Get("RateLimit-Reset") == "" {
				t.Errorf("rate-limit headers missing: %v", got.header)
			}
		})
	}
}

func TestSimulatorAuth(t *testing.T) {
	sim, api := newSimServer(t)
	u := api + "/projects/42"
	if got := do(t, "GET", u, nil, ""); got.status != 200 {
		t.Fatalf("without tokens configured: %d, want any request accepted", got.status)
	}
	sim.AddToken("good")
	tests := []struct {
		name   string
		header map[string]string
		status int
	}{
		{"private token", map[string]string{"PRIVATE-TOKEN": "good"}, 200},
		{"bearer", map[string]string{"Authorization": "Bearer good"}, 200},
		{"bad private token", map[string]string{"PRIVATE-TOKEN": "bad"}, 401},
		{"bad bearer", map[string]string{"Authorization": "Bearer bad"}, 401},
		{"basic is not API auth", map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("oauth2:good"))}, 401},
		{"none", nil, 401},
	}
	for _, tt := range tests {
		got := do(t, "GET", u, tt.header, "")
		if got.status != tt.status {
			t.Errorf("%s: %d, want %d", tt.name, got.status, tt.status)
		}
		if tt.status == 401 && strings.TrimSpace(got.body) != `{"message":"401 Unauthorized"}` {
			t.Errorf("%s: body %s", tt.name, got.body)
		}
	}
}

func TestSimulatorNotesPagination(t *testing.T) {
	sim, api := newSimServer(t)
	for i := range 45 {
		sim.AddNote(testProject, 5, "alice", "n"+strconv.Itoa(i), false)
	}
	tests := []struct {
		query                   string
		count                   int
		first                   string
		page, perPage, next     string
		prev, totalPages, total string
		rels                    []string
	}{
		{"", 20, "n44", "1", "20", "2", "", "3", "45", []string{"next", "first", "last"}},
		{"?page=3", 5, "n4", "3", "20", "", "2", "3", "45", []string{"prev", "first", "last"}},
		{"?per_page=500&sort=asc", 45, "n0", "1", "100", "", "", "1", "45", []string{"first", "last"}},
		{"?per_page=10&page=2&sort=asc", 10, "n10", "2", "10", "3", "1", "5", "45", []string{"prev", "next", "first", "last"}},
		{"?page=9", 0, "", "9", "20", "", "3", "3", "45", []string{"prev", "first", "last"}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			got := do(t, "GET", api+"/projects/42/merge_requests/5/notes"+tt.query, nil, "")
			var notes []Note
			got.decode(t, &notes)
			if len(notes) != tt.count || (tt.count > 0 && notes[0].Body != tt.first) {
				t.Fatalf("%d notes starting %+v, want %d starting %s", len(notes), notes, tt.count, tt.first)
			}
			h := got.header
			for k, want := range map[string]string{"X-Page": tt.page, "X-Per-Page": tt.perPage, "X-Next-Page": tt.next,
				"X-Prev-Page": tt.prev, "X-Total-Pages": tt.totalPages, "X-Total": tt.total} {
				if h.Get(k) != want {
					t.Errorf("%s = %q, want %q", k, h.Get(k), want)
				}
			}
			for _, rel := range tt.rels {
				if !strings.Contains(h.Get("Link"), `rel="`+rel+`"`) {
					t.Errorf("Link %q lacks rel=%s", h.Get("Link"), rel)
				}
			}
		})
	}
}

func TestSimulatorNotes(t *testing.T) {
	sim, api := newSimServer(t)
	sim.BotUsername = "ml-bot"
	base := api + "/projects/" + escapedProject + "/merge_requests/9/notes"

	created := do(t, "POST", base, nil, `{"body":"hello"}`)
	var n Note
	created.decode(t, &n)
	if created.status != 201 || n.Author.Username != "ml-bot" || n.Body != "hello" || n.NoteableType != "MergeRequest" || n.NoteableIID != 9 {
		t.Fatalf("create = %d %+v", created.status, n)
	}
	noteURL := base + "/" + strconv.FormatInt(n.ID, 10)
	if got := do(t, "PUT", noteURL, nil, `{"body":"hello again"}`); got.status != 200 {
		t.Fatalf("update = %d %s", got.status, got.body)
	}
	// Form bodies are accepted as well as JSON.
	req, _ := http.NewRequest("PUT", noteURL, strings.NewReader("body=third"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("form update: %v %v", resp, err)
	}

	award := do(t, "POST", noteURL+"/award_emoji", nil, `{"name":"eyes"}`)
	if award.status != 201 || !strings.Contains(award.body, `"awardable_type":"Note"`) {
		t.Errorf("award = %d %s", award.status, award.body)
	}
	if again := do(t, "POST", noteURL+"/award_emoji", nil, `{"name":"eyes"}`); again.status != 404 {
		t.Errorf("repeated award = %d, want 404", again.status)
	}
	if missing := do(t, "POST", base+"/1/award_emoji", nil, `{"name":"eyes"}`); missing.status != 404 {
		t.Errorf("award on unknown note = %d", missing.status)
	}

	notes := sim.Notes(testProject, 9)
	if len(notes) != 1 || notes[0].Body != "third" || notes[0].Edits != 2 || len(notes[0].Awards) != 1 {
		t.Errorf("Notes = %+v", notes)
	}

	long := strings.Repeat("é", MaxNoteLength+1)
	body, _ := json.Marshal(map[string]string{"body": long})
	if got := do(t, "POST", base, nil, string(body)); got.status != 400 || !strings.Contains(got.body, "is too long") {
		t.Errorf("oversized note = %d %.100s", got.status, got.body)
	}
	body, _ = json.Marshal(map[string]string{"body": long[:len(long)-2]}) // exactly the limit
	if got := do(t, "POST", base, nil, string(body)); got.status != 201 {
		t.Errorf("note at the limit = %d", got.status)
	}
}

func TestSimulatorStatuses(t *testing.T) {
	sim, api := newSimServer(t)
	post := func(q string) simCall { return do(t, "POST", api+"/projects/42/statuses/"+testSHA+"?"+q, nil, "") }

	if got := post("state=pending&name=a"); got.status != 201 {
		t.Fatalf("pending = %d %s", got.status, got.body)
	}
	if got := post("state=pending&name=a"); got.status != 400 || !strings.Contains(got.body, "Cannot transition status via :enqueue from :pending") {
		t.Errorf("pending again = %d %s", got.status, got.body)
	}
	if got := post("state=running&name=a"); got.status != 201 {
		t.Errorf("running = %d %s", got.status, got.body)
	}
	if got := post("state=running&name=a"); got.status != 400 || !strings.Contains(got.body, "Cannot transition status via :run from :running") {
		t.Errorf("running again = %d %s", got.status, got.body)
	}
	if got := post("state=success&name=a&description=ok"); got.status != 201 {
		t.Errorf("success = %d", got.status)
	}
	for i := range 25 {
		post("state=success&name=job" + strconv.Itoa(i))
	}
	st := sim.Statuses(testProject, testSHA)
	if len(st) != 26 || st[0].Status != "success" || st[0].Description != "ok" || st[0].StartedAt == nil || st[0].FinishedAt == nil {
		t.Fatalf("Statuses = %d, first %+v", len(st), st[0])
	}

	list := do(t, "GET", api+"/projects/"+escapedProject+"/repository/commits/"+testSHA+"/statuses?per_page=10&page=3", nil, "")
	var page []Status
	list.decode(t, &page)
	if len(page) != 6 || list.header.Get("X-Total") != "26" || list.header.Get("X-Next-Page") != "" {
		t.Errorf("page 3 = %d statuses, headers %v", len(page), list.header)
	}
	filtered := do(t, "GET", api+"/projects/42/repository/commits/"+testSHA+"/statuses?name=a", nil, "")
	if filtered.header.Get("X-Total") != "1" {
		t.Errorf("name filter total %s", filtered.header.Get("X-Total"))
	}
	empty := do(t, "GET", api+"/projects/42/repository/commits/0000/statuses", nil, "")
	if strings.TrimSpace(empty.body) != "[]" {
		t.Errorf("no statuses = %s, want []", empty.body)
	}
}

func TestSimulatorMembers(t *testing.T) {
	sim, api := newSimServer(t)
	sim.SetMember(testProject, "maria", AccessMaintainer)
	sim.SetMember("other/project", "dev", AccessDeveloper) // creates the project

	var users []User
	do(t, "GET", api+"/users?username=maria", nil, "").decode(t, &users)
	if len(users) != 1 || users[0].Username != "maria" {
		t.Fatalf("users = %+v", users)
	}
	var member struct {
		Username    string `json:"username"`
		AccessLevel int    `json:"access_level"`
	}
	got := do(t, "GET", api+"/projects/42/members/all/"+strconv.FormatInt(users[0].ID, 10), nil, "")
	got.decode(t, &member)
	if got.status != 200 || member.Username != "maria" || member.AccessLevel != AccessMaintainer {
		t.Errorf("member = %d %+v", got.status, member)
	}
	do(t, "GET", api+"/users?username=dev", nil, "").decode(t, &users)
	if got := do(t, "GET", api+"/projects/42/members/all/"+strconv.FormatInt(users[0].ID, 10), nil, ""); got.status != 404 {
		t.Errorf("member of another project = %d", got.status)
	}
	if got := do(t, "GET", api+"/projects/other%2Fproject/members/all/"+strconv.FormatInt(users[0].ID, 10), nil, ""); got.status != 200 {
		t.Errorf("developer of other/project = %d", got.status)
	}
	sim.SetMember(testProject, "maria", 0)
	do(t, "GET", api+"/users?username=maria", nil, "").decode(t, &users)
	if got := do(t, "GET", api+"/projects/42/members/all/"+strconv.FormatInt(users[0].ID, 10), nil, ""); got.status != 404 {
		t.Errorf("removed member = %d", got.status)
	}
}

func TestSimulatorRateLimit(t *testing.T) {
	sim, api := newSimServer(t)
	sim.SetRateLimit(2, time.Now().Add(20*time.Second))
	for i, want := range []int{200, 200, 429, 429} {
		got := do(t, "GET", api+"/projects/42", nil, "")
		if got.status != want {
			t.Fatalf("call %d = %d, want %d", i, got.status, want)
		}
		if want == 429 {
			if ra, _ := strconv.Atoi(got.header.Get("Retry-After")); ra < 19 || ra > 20 {
				t.Errorf("Retry-After = %q", got.header.Get("Retry-After"))
			}
			if got.header.Get("RateLimit-Remaining") != "0" || strings.TrimSpace(got.body) != "Retry later" {
				t.Errorf("429 headers %v body %q", got.header, got.body)
			}
		}
	}
	sim.SetRateLimit(0, time.Now().Add(-time.Second)) // the window has passed
	if got := do(t, "GET", api+"/projects/42", nil, ""); got.status != 200 || got.header.Get("RateLimit-Remaining") != "1999" {
		t.Errorf("after reset: %d, remaining %s", got.status, got.header.Get("RateLimit-Remaining"))
	}
	if n := len(sim.Rec.Find("GET", "/projects/42")); n != 5 {
		t.Errorf("recorded %d calls, want 5", n)
	}
}

// TestSimulatorGit clones over the simulator's smart-HTTP endpoint with
// the header mlbot's CloneAuth produces.
func TestSimulatorGit(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	root := t.TempDir()
	work := filepath.Join(t.TempDir(), "work")
	git := func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1", "HOME="+t.TempDir(),
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out.String())
		}
		return strings.TrimSpace(out.String())
	}
	bare := filepath.Join(root, "group", "model.git")
	if err := os.MkdirAll(bare, 0o755); err != nil {
		t.Fatal(err)
	}
	git(bare, "init", "--bare", "-q", "-b", "main")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	git(work, "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(work, "train.py"), []byte("print('hi')\n"), 0o644)
	git(work, "add", ".")
	git(work, "commit", "-q", "-m", "first")
	git(work, "push", "-q", bare, "main")

	sim := NewSimulator()
	sim.AddToken("tok")
	sim.ServeGit(root)
	srv := httptest.NewServer(sim)
	defer srv.Close()
	cloneURL := GitURL(srv.URL+"/", "group/model")
	if want := srv.URL + "/group/model.git"; cloneURL != want {
		t.Fatalf("GitURL = %q, want %q", cloneURL, want)
	}

	c, _ := New(Options{BaseURL: srv.URL, Token: "tok"})
	// The simulator's clone URL is where mlbot expects the project.
	auth, err := c.CloneAuth(t.Context(), bot.Repo{Forge: "gitlab", FullName: "group/model", CloneURL: cloneURL})
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	git(dst, "-c", "http.extraHeader=Authorization: "+auth, "clone", "-q", cloneURL, "clone")
	if _, err := os.Stat(filepath.Join(dst, "clone", "train.py")); err != nil {
		t.Fatalf("clone lacks train.py: %v", err)
	}

	bad := exec.Command("git", "-c", "http.extraHeader=Authorization: Basic "+base64.StdEncoding.EncodeToString([]byte("oauth2:nope")),
		"clone", "-q", cloneURL, filepath.Join(dst, "bad"))
	bad.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
	if err := bad.Run(); err == nil {
		t.Error("clone with a bad token succeeded")
	}
	if calls := sim.Rec.Find("GET", "/group/model.git/info/refs"); len(calls) < 2 || calls[len(calls)-1].Status != 401 {
		t.Errorf("git calls not recorded as expected: %d", len(calls))
	}
}
