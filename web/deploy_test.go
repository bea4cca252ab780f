package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlbot/mlbot/jobs/deploystate"
	"github.com/mlbot/mlbot/jobs/registry"
)

func TestDeployPage(t *testing.T) {
	ctx := context.Background()
	reg := newRegistry(t)
	dataDir := t.TempDir()
	mux := http.NewServeMux()
	New(Options{Deploys: reg, DataDir: dataDir}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	const hostile = `<script>alert(1)</script>`
	requested := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	withFile := registry.Deploy{ID: registry.NewDeployID(), Repo: repo, Env: "production", Version: 3, SHA: "abc123",
		State: deploystate.Succeeded, Reason: "/deploy by @maria " + hostile, Detail: "exit 0 " + hostile,
		Requested: requested, LogTail: "TAIL-FROM-REDIS"}
	withoutFile := registry.Deploy{ID: registry.NewDeployID(), Repo: repo, Env: "staging", Version: 2,
		State: deploystate.Failed, Reason: "merge of #3", Requested: requested, LogTail: "TAIL-FROM-REDIS " + hostile}
	// A deploy stored under an id that is not 32 hex digits (as an older
	// mlbot could compute them): its page is not served.
	oldID := registry.Deploy{ID: "production-3", Repo: repo, Env: "canary", Version: 3, State: deploystate.Succeeded, Requested: requested}
	for _, d := range []registry.Deploy{withFile, withoutFile, oldID} {
		if err := reg.SaveDeploy(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	// The deploy worker writes each deploy's log to
	// <data dir>/logs/deploy-<id>.log; a log larger than the page shows
	// is cut at its start.
	logDir := filepath.Join(dataDir, "logs")
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		t.Fatal(err)
	}
	log := "FIRST-LINE\n" + strings.Repeat("x", maxPageLog) + "\nLAST-LINE " + hostile + "\n"
	if err := os.WriteFile(filepath.Join(logDir, "deploy-"+withFile.ID+".log"), []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		path     string
		wantCode int
		want     []string // in the body
		notWant  []string
	}{
		{name: "unknown deploy", path: "/deploys/0123456789abcdef0123456789abcdef", wantCode: http.StatusNotFound},
		{name: "deploy under an id of the old shape", path: "/deploys/" + oldID.ID, wantCode: http.StatusNotFound},
		{name: "upper-case id", path: "/deploys/" + strings.ToUpper(withFile.ID), wantCode: http.StatusNotFound},
		{name: "path traversal", path: "/deploys/..%2f..%2fetc", wantCode: http.StatusNotFound},
		{
			name: "log file wins over the tail", path: "/deploys/" + withFile.ID, wantCode: http.StatusOK,
			want:    []string{"model v3", "production", "abc123", "succeeded", "@maria &lt;script&gt;", "exit 0 &lt;script&gt;", "LAST-LINE &lt;script&gt;"},
			notWant: []string{"<script>", "FIRST-LINE", "TAIL-FROM-REDIS"},
		},
		{
			name: "without a log file the tail is shown", path: "/deploys/" + withoutFile.ID, wantCode: http.StatusOK,
			want:    []string{"model v2", "staging", "failed", "TAIL-FROM-REDIS &lt;script&gt;"},
			notWant: []string{"<script>"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := getRunPage(t, srv, tc.path, nil)
			if resp.StatusCode != tc.wantCode {
				t.Fatalf("GET %s = %d, want %d: %s", tc.path, resp.StatusCode, tc.wantCode, body)
			}
			if tc.wantCode != http.StatusOK {
				return
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Errorf("Content-Type = %q, want text/html", ct)
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
				t.Errorf("Content-Security-Policy = %q, want default-src 'none'", csp)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("the page does not show %q", w)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(body, w) {
					t.Errorf("the page shows %q", w)
				}
			}
		})
	}

	t.Run("JSON", func(t *testing.T) {
		resp, body := getRunPage(t, srv, "/deploys/"+withFile.ID+"?format=json", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q, want application/json", ct)
		}
		var got registry.Deploy
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("body is not a deploy: %v\n%s", err, body)
		}
		if got.ID != withFile.ID || got.Version != 3 || got.State != deploystate.Succeeded || got.Reason != withFile.Reason || got.LogTail != withFile.LogTail {
			t.Errorf("JSON deploy = %+v, want %+v", got, withFile)
		}
	})
}
