package web

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/jobs/store"
)

// runPageServer serves the run page of s the way cmd/mlbot mounts it.
func runPageServer(t *testing.T, s RunReader) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	New(Options{Runs: s}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func getRunPage(t *testing.T, srv *httptest.Server, path string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	return do(t, srv, req)
}

// do sends req to srv and returns the answer with its whole body.
func do(t *testing.T, srv *httptest.Server, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestRunPage(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	srv := runPageServer(t, s)

	const hostile = `<script>alert(1)</script>`
	repo := bot.Repo{Forge: "github", FullName: "Acme/Model", DefaultBranch: "main"}
	finished := &store.Run{
		ID: store.NewID(), Kind: store.KindPullRequest, Repo: repo, SHA: "abc123",
		PR:    &bot.PullRequest{Number: 9, Title: "Tune " + hostile, HeadSHA: "abc123"},
		State: store.RunFinished, Outcome: report.OutcomeStepFailed, Detail: "train exited 1 " + hostile,
		Metrics: map[string]float64{"accuracy": 0.91, "evil" + hostile: 1},
		LogTail: "epoch 1\n" + hostile + "\nTraceback",
		Created: time.Now().UTC(), Finished: time.Now().UTC(),
	}
	running := &store.Run{
		ID: store.NewID(), Kind: store.KindBaseline, Repo: repo, SHA: "def456", Branch: "main",
		State: store.RunRunning, Created: time.Now().UTC(),
	}
	// A run an older mlbot stored under a 20-digit id derived from its
	// repository and commit: such links could be computed, so they are no
	// longer served.
	derived := &store.Run{ID: "0123456789abcdef0123", Kind: store.KindPullRequest, Repo: repo, SHA: "abc123", State: store.RunFinished, Created: time.Now().UTC()}
	for _, r := range []*store.Run{finished, running, derived} {
		if err := s.SaveRun(ctx, r); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name     string
		path     string
		header   http.Header
		wantCode int
		check    func(t *testing.T, resp *http.Response, body string)
	}{
		{name: "unknown run", path: "/runs/0123456789abcdef0123456789abcdef", wantCode: http.StatusNotFound},
		{name: "run under an old derived id", path: "/runs/" + derived.ID, wantCode: http.StatusNotFound},
		{name: "upper-case id", path: "/runs/" + strings.ToUpper(finished.ID), wantCode: http.StatusNotFound},
		{name: "too short an id", path: "/runs/abc", wantCode: http.StatusNotFound},
		{name: "id with a key separator", path: "/runs/0123456789abcdef:run", wantCode: http.StatusNotFound},
		{name: "id with a glob", path: "/runs/0123456789abcdef*", wantCode: http.StatusNotFound},
		{name: "path traversal", path: "/runs/..%2f..%2fetc", wantCode: http.StatusNotFound},
		{
			name: "finished run as HTML", path: "/runs/" + finished.ID, wantCode: http.StatusOK,
			check: func(t *testing.T, resp *http.Response, body string) {
				if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
					t.Errorf("Content-Type = %q, want text/html", ct)
				}
				csp := resp.Header.Get("Content-Security-Policy")
				if !strings.Contains(csp, "default-src 'none'") {
					t.Errorf("Content-Security-Policy = %q, want default-src 'none'", csp)
				}
				if strings.Contains(body, "<script>") {
					t.Errorf("the page contains an unescaped <script>:\n%s", body)
				}
				if n := strings.Count(body, "&lt;script&gt;"); n < 4 {
					t.Errorf("found %d escaped <script> (metric name, title, detail, log), want at least 4", n)
				}
				for _, want := range []string{finished.ID, "abc123", "step_failed", "accuracy", "0.91", "Traceback"} {
					if !strings.Contains(body, want) {
						t.Errorf("the page does not show %q", want)
					}
				}
				if resp.Header.Get("Refresh") != "" {
					t.Errorf("a finished run's page refreshes itself")
				}
			},
		},
		{
			name: "running run refreshes", path: "/runs/" + running.ID, wantCode: http.StatusOK,
			check: func(t *testing.T, resp *http.Response, body string) {
				if resp.Header.Get("Refresh") == "" {
					t.Errorf("a running run's page does not refresh")
				}
				if !strings.Contains(body, string(store.RunRunning)) {
					t.Errorf("the page does not show the state %q", store.RunRunning)
				}
			},
		},
		{
			name: "JSON by query", path: "/runs/" + finished.ID + "?format=json", wantCode: http.StatusOK,
			check: checkRunJSON(finished),
		},
		{
			name: "JSON by Accept", path: "/runs/" + finished.ID, wantCode: http.StatusOK,
			header: http.Header{"Accept": {"application/json"}},
			check:  checkRunJSON(finished),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := getRunPage(t, srv, tc.path, tc.header)
			if resp.StatusCode != tc.wantCode {
				t.Fatalf("GET %s = %d, want %d: %s", tc.path, resp.StatusCode, tc.wantCode, body)
			}
			if tc.check != nil {
				tc.check(t, resp, body)
			}
		})
	}
}

// checkRunJSON checks that a run page answered with want as JSON.
func checkRunJSON(want *store.Run) func(t *testing.T, resp *http.Response, body string) {
	return func(t *testing.T, resp *http.Response, body string) {
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q, want application/json", ct)
		}
		var got store.Run
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("body is not a run: %v\n%s", err, body)
		}
		if got.ID != want.ID || got.State != want.State || got.Outcome != want.Outcome ||
			got.Metrics["accuracy"] != want.Metrics["accuracy"] || got.LogTail != want.LogTail {
			t.Errorf("JSON run = %+v, want %+v", got, want)
		}
	}
}

func TestRunPageShowsTheEndOfTheLogFile(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	srv := runPageServer(t, s)

	// A log file larger than the page shows: its start is cut, its end is
	// shown, and the file wins over the tail kept in Redis.
	path := filepath.Join(t.TempDir(), "run.log")
	log := "FIRST-LINE\n" + strings.Repeat("x", maxPageLog) + "\nLAST-LINE <script>\n"
	if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	run := &store.Run{ID: store.NewID(), Repo: bot.Repo{Forge: "github", FullName: "a/b"}, State: store.RunFinished,
		Outcome: report.OutcomeStepFailed, LogPath: path, LogTail: "TAIL-FROM-REDIS"}
	if err := s.SaveRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	_, body := getRunPage(t, srv, "/runs/"+run.ID, nil)
	if !strings.Contains(body, "LAST-LINE &lt;script&gt;") {
		t.Errorf("the page does not end with the log file's last line, escaped")
	}
	if strings.Contains(body, "FIRST-LINE") || strings.Contains(body, "TAIL-FROM-REDIS") {
		t.Errorf("the page shows the log's cut start or the Redis tail instead of the file's end")
	}

	// Without the file (another machine), the Redis tail is shown.
	run.LogPath = filepath.Join(t.TempDir(), "gone.log")
	if err := s.SaveRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	if _, body := getRunPage(t, srv, "/runs/"+run.ID, nil); !strings.Contains(body, "TAIL-FROM-REDIS") {
		t.Errorf("without the log file the page does not show the tail kept in Redis")
	}
}
