package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mlbot/mlbot/jobs/deploystate"
	"github.com/mlbot/mlbot/jobs/registry"
)

func TestModelsAPI(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"model.pt": "weights"})
	for _, v := range []registry.Version{
		{Repo: repo, RunID: "r1", SHA: "1111111aaaa", Metrics: map[string]float64{"accuracy": 0.9}, Passed: true},
		{Repo: repo, RunID: "r2", SHA: "2222222bbbb", Metrics: map[string]float64{"accuracy": 0.95}, Passed: true},
		{Repo: "github:acme/both", RunID: "r1"},
		{Repo: "gitlab:acme/both", RunID: "r1"},
		{Repo: "gitlab:group/sub/project", RunID: "r1"},
	} {
		if _, err := r.Record(ctx, v, dir, []string{"model.pt"}); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, d := range []registry.Deploy{
		{ID: "p1", Repo: repo, Env: "production", Version: 1, State: deploystate.Succeeded, Requested: t0},
		{ID: "p2", Repo: repo, Env: "production", Version: 2, State: deploystate.Running, Requested: t0.Add(time.Minute)},
		{ID: "s1", Repo: repo, Env: "staging", Version: 2, State: deploystate.Succeeded, Requested: t0},
		{ID: "c1", Repo: repo, Env: "canary", Version: 2, State: deploystate.Failed, Requested: t0},
	} {
		if err := r.SaveDeploy(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(New(Options{Models: r}).Models())
	defer srv.Close()

	tests := []struct {
		name     string
		method   string
		query    url.Values
		status   int
		repo     string
		versions []int
		deployed map[string]int // env → version running there
		errPart  string
	}{
		{name: "owner/name", query: url.Values{"repo": {"acme/model"}}, status: 200, repo: repo,
			versions: []int{2, 1}, deployed: map[string]int{"production": 1, "staging": 2}},
		{name: "repo key, any case", query: url.Values{"repo": {"GitHub:ACME/Model"}}, status: 200, repo: repo,
			versions: []int{2, 1}, deployed: map[string]int{"production": 1, "staging": 2}},
		{name: "one version", query: url.Values{"repo": {"acme/model"}, "version": {"1"}}, status: 200, repo: repo,
			versions: []int{1}, deployed: map[string]int{"production": 1, "staging": 2}},
		{name: "gitlab subgroup", query: url.Values{"repo": {"group/sub/project"}}, status: 200, repo: "gitlab:group/sub/project",
			versions: []int{1}, deployed: map[string]int{}},
		{name: "no repo", query: url.Values{}, status: 400, errPart: "repo"},
		{name: "bad version", query: url.Values{"repo": {"acme/model"}, "version": {"x"}}, status: 400, errPart: "version"},
		{name: "zero version", query: url.Values{"repo": {"acme/model"}, "version": {"0"}}, status: 400, errPart: "version"},
		{name: "unknown version", query: url.Values{"repo": {"acme/model"}, "version": {"7"}}, status: 404, errPart: "version 7"},
		{name: "unknown repo", query: url.Values{"repo": {"acme/nope"}}, status: 404, errPart: "acme/nope"},
		{name: "unknown forge", query: url.Values{"repo": {"gitlab:acme/model"}}, status: 404, errPart: "not found"},
		{name: "ambiguous name", query: url.Values{"repo": {"acme/both"}}, status: 400, errPart: "github:acme/both, gitlab:acme/both"},
		{name: "post", method: http.MethodPost, query: url.Values{"repo": {"acme/model"}}, status: 405, errPart: "method"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			req, _ := http.NewRequest(method, srv.URL+"/api/v1/models?"+tc.query.Encode(), nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
			if tc.status != 200 {
				var e ErrorResponse
				if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || !strings.Contains(e.Error, tc.errPart) {
					t.Fatalf("error body %+v (%v), want it to mention %q", e, err, tc.errPart)
				}
				return
			}
			var body ModelsResponse
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			if body.Repo != tc.repo {
				t.Fatalf("repo %q, want %q", body.Repo, tc.repo)
			}
			var nums []int
			for _, v := range body.Versions {
				nums = append(nums, v.Number)
				if len(v.Artifacts) != 1 || v.Artifacts[0].SHA256 != digest([]byte("weights")) {
					t.Fatalf("version %d artifacts %+v", v.Number, v.Artifacts)
				}
			}
			if len(nums) != len(tc.versions) {
				t.Fatalf("versions %v, want %v", nums, tc.versions)
			}
			for i := range nums {
				if nums[i] != tc.versions[i] {
					t.Fatalf("versions %v, want %v", nums, tc.versions)
				}
			}
			deployed := map[string]int{}
			for env, d := range body.Deployments {
				if d.Env != env || d.State != deploystate.Succeeded {
					t.Fatalf("deployments[%s] = %+v", env, d)
				}
				deployed[env] = d.Version
			}
			if len(deployed) != len(tc.deployed) {
				t.Fatalf("deployed %v, want %v", deployed, tc.deployed)
			}
			for env, n := range tc.deployed {
				if deployed[env] != n {
					t.Fatalf("deployed %v, want %v", deployed, tc.deployed)
				}
			}
		})
	}
}
