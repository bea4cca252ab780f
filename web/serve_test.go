package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/jobs/deploystate"
	"github.com/mlbot/mlbot/jobs/registry"
	"github.com/mlbot/mlbot/jobs/report"
	"github.com/mlbot/mlbot/jobs/store"
)

// TestPagesServeWithoutWorkers serves the pages and the API the way
// cmd/mlbot mounts them, from nothing but a Redis holding a run, a model
// version and a deploy: no worker is built and no asynq server runs, and
// Redis shows none ever did.
func TestPagesServeWithoutWorkers(t *testing.T) {
	ctx := context.Background()
	rdb := testRedis(t)
	runs := store.New(rdb, store.DefaultPrefix)
	reg := registry.New(runs, &registry.ArtifactStore{Dir: t.TempDir()})

	run := &store.Run{ID: store.NewID(), Kind: store.KindPullRequest, Repo: bot.Repo{Forge: "github", FullName: "acme/model"},
		SHA: "abc123", State: store.RunFinished, Outcome: report.OutcomePassed, Created: time.Now().UTC()}
	if err := runs.SaveRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"model.pt": "weights"})
	v, err := reg.Record(ctx, registry.Version{Repo: repo, RunID: run.ID, SHA: run.SHA, Passed: true}, dir, []string{"model.pt"})
	if err != nil {
		t.Fatal(err)
	}
	deploy := registry.Deploy{ID: registry.NewDeployID(), Repo: repo, Env: "production", Version: v.Number,
		SHA: run.SHA, State: deploystate.Succeeded, Reason: "merge of #3", Requested: time.Now().UTC()}
	if err := reg.SaveDeploy(ctx, deploy); err != nil {
		t.Fatal(err)
	}

	const token = "api-token-0123456789"
	serve := func(apiToken string) *httptest.Server {
		mux := http.NewServeMux()
		New(Options{Runs: runs, Deploys: reg, Models: reg, DataDir: t.TempDir(), APIToken: apiToken}).Register(mux)
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		return srv
	}
	withAPI, withoutAPI := serve(token), serve("")

	tests := []struct {
		name     string
		srv      *httptest.Server
		path     string
		auth     string
		wantCode int
		want     string
	}{
		{"run page", withAPI, "/runs/" + run.ID, "", http.StatusOK, "passed"},
		{"run as JSON", withAPI, "/runs/" + run.ID + "?format=json", "", http.StatusOK, `"outcome":"passed"`},
		{"deploy page", withAPI, "/deploys/" + deploy.ID, "", http.StatusOK, "merge of #3"},
		{"models API", withAPI, "/api/v1/models?repo=acme/model", "Bearer " + token, http.StatusOK, `"production"`},
		{"models API without the token", withAPI, "/api/v1/models?repo=acme/model", "", http.StatusUnauthorized, "bearer token"},
		{"unknown API path without the token", withAPI, "/api/v1/runs", "", http.StatusUnauthorized, "bearer token"},
		{"API off without a token", withoutAPI, "/api/v1/models?repo=acme/model", "Bearer " + token, http.StatusNotFound, ""},
		{"pages with the API off", withoutAPI, "/runs/" + run.ID, "", http.StatusOK, run.ID},
		{"POST to a page", withAPI, "/runs/" + run.ID, "", http.StatusMethodNotAllowed, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := http.MethodGet
			if strings.HasPrefix(tc.name, "POST") {
				method = http.MethodPost
			}
			req, err := http.NewRequest(method, tc.srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, body := do(t, tc.srv, req)
			if resp.StatusCode != tc.wantCode {
				t.Fatalf("%s %s = %d, want %d: %s", method, tc.path, resp.StatusCode, tc.wantCode, body)
			}
			if !strings.Contains(body, tc.want) {
				t.Errorf("%s %s does not answer %q:\n%s", method, tc.path, tc.want, body)
			}
		})
	}

	// An asynq server registers itself in Redis as it starts (asynq:servers
	// and its queues); serving the pages wrote nothing of asynq's.
	keys, err := rdb.Keys(ctx, "asynq:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Errorf("serving the pages left asynq keys in Redis: %v", keys)
	}
}
