package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	"github.com/mlbot/mlbot/jobs/registry/registrytest"
	"github.com/mlbot/mlbot/jobs/store"
	"github.com/mlbot/mlbot/web"
)

// modelsServer serves a registry holding three versions of acme/model,
// version 1 in production and version 3 in staging, like mlbot serve.
func modelsServer(t *testing.T) (url string, weightsDigest string) {
	t.Helper()
	ctx := context.Background()
	rdb, prefix := registrytest.Redis(t)
	reg := registry.New(store.New(rdb, prefix), &registry.ArtifactStore{Dir: t.TempDir()})
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "model"), 0o755)
	weights := []byte("weights of the model")
	os.WriteFile(filepath.Join(dir, "model", "weights.pt"), weights, 0o644)
	os.WriteFile(filepath.Join(dir, "vocab.txt"), []byte("a b c"), 0o644)
	created := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for i, v := range []registry.Version{
		{SHA: "1111111aaaaaaaa", Reason: "push to main", Branch: "main", Passed: true,
			Metrics: map[string]float64{"accuracy": 0.91, "loss": 0.3}},
		{SHA: "2222222bbbbbbbb", Reason: "pull request #3", PR: 3, Passed: false,
			Metrics: map[string]float64{"accuracy": 0.85, "loss": 0.4, "f1": 0.8, "recall": 0.7}},
		{SHA: "3333333cccccccc", Reason: "push to main", Branch: "main", Passed: true,
			Metrics: map[string]float64{"accuracy": 0.935, "loss": 0.21, "f1": 0.9, "recall": 0.88}},
	} {
		v.Repo, v.RunID, v.Created = "github:acme/model", "run-"+v.SHA[:1], created.Add(time.Duration(i)*time.Hour)
		if _, err := reg.Record(ctx, v, dir, []string{"model/*.pt", "vocab.txt"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []registry.Deploy{
		{ID: "p1", Repo: "github:acme/model", Env: "production", Version: 1, State: deploystate.Succeeded, Requested: created},
		{ID: "s1", Repo: "github:acme/model", Env: "staging", Version: 3, State: deploystate.Succeeded, Requested: created},
	} {
		if err := reg.SaveDeploy(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/models", web.New(web.Options{Models: reg}).Models())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	sum := sha256.Sum256(weights)
	return srv.URL, hex.EncodeToString(sum[:])
}

func TestModelsCommand(t *testing.T) {
	server, weightsDigest := modelsServer(t)
	// Rows of the list are matched as whitespace-separated fields, so the
	// test does not depend on column widths or the local time zone.
	tests := []struct {
		name   string
		args   []string
		env    string // MLBOT_PUBLIC_URL
		code   int
		stdout []string // each must appear in stdout, fields separated by any space
		stderr []string
	}{
		{name: "list", args: []string{"list", "--repo", "acme/model", "--server", server}, stdout: []string{
			"VERSION SHA CREATED REASON PASSED METRICS DEPLOYED",
			"3 3333333", "push to main yes accuracy=0.935 f1=0.9 loss=0.21 … staging",
			"2 2222222", "pull request #3 no accuracy=0.85 f1=0.8 loss=0.4 … -",
			"1 1111111", "push to main yes accuracy=0.91 loss=0.3 production",
		}},
		{name: "list via MLBOT_PUBLIC_URL", args: []string{"list", "--repo", "github:acme/model"}, env: server,
			stdout: []string{"3 3333333"}},
		{name: "show", args: []string{"show", "--repo", "acme/model", "--server", server, "3"}, stdout: []string{
			"repo github:acme/model", "version 3", "sha 3333333cccccccc", "run run-3", "reason push to main",
			"branch main", "passed yes", "deployed staging",
			"accuracy 0.935", "f1 0.9", "loss 0.21", "recall 0.88",
			"model/weights.pt 20 bytes sha256:" + weightsDigest, "vocab.txt 5 bytes sha256:",
		}},
		{name: "show with flags after the version", args: []string{"show", "2", "--repo", "acme/model", "--server", server},
			stdout: []string{"version 2", "pull request #3", "passed no", "deployed -"}},
		{name: "show json", args: []string{"show", "--json", "--repo", "acme/model", "--server", server, "1"},
			stdout: []string{`"number": 1`, `"production"`}},
		{name: "unknown repo", args: []string{"list", "--repo", "acme/nope", "--server", server}, code: 1,
			stderr: []string{"404", "acme/nope"}},
		{name: "unknown version", args: []string{"show", "--repo", "acme/model", "--server", server, "9"}, code: 1,
			stderr: []string{"404", "version 9"}},
		{name: "no repo", args: []string{"list", "--server", server}, code: 2, stderr: []string{"--repo is required"}},
		{name: "show without version", args: []string{"show", "--repo", "acme/model", "--server", server}, code: 2, stderr: []string{"usage"}},
		{name: "bad version", args: []string{"show", "--repo", "acme/model", "--server", server, "latest"}, code: 2, stderr: []string{"positive number"}},
		{name: "no subcommand", args: nil, code: 2, stderr: []string{"mlbot models list"}},
		{name: "not an mlbot server", args: []string{"list", "--repo", "acme/model", "--server", server + "/nothing-here"}, code: 1,
			stderr: []string{"404", "mlbot server"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("MLBOT_PUBLIC_URL", tc.env)
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"models"}, tc.args...), &stdout, &stderr)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout.String(), stderr.String())
			}
			check := func(stream, got string, want []string) {
				norm := " " + strings.Join(strings.Fields(got), " ") + " "
				for _, w := range want {
					if !strings.Contains(norm, " "+strings.Join(strings.Fields(w), " ")) {
						t.Errorf("%s lacks %q:\n%s", stream, w, got)
					}
				}
			}
			check("stdout", stdout.String(), tc.stdout)
			check("stderr", stderr.String(), tc.stderr)
		})
	}
}

func TestModelsListRowPerVersion(t *testing.T) {
	server, _ := modelsServer(t)
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"models", "list", "--repo", "acme/model", "--server", server}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want a header and 3 versions:\n%s", len(lines), stdout.String())
	}
	for i, want := range []string{"3", "2", "1"} {
		if f := strings.Fields(lines[i+1]); f[0] != want {
			t.Fatalf("row %d is version %s, want %s (newest first)", i+1, f[0], want)
		}
	}
	// --json prints the API's answer unchanged, for scripts.
	stdout.Reset()
	run(context.Background(), []string{"models", "list", "--json", "--repo", "acme/model", "--server", server}, &stdout, &stderr)
	var resp web.ModelsResponse
	if err := json.Unmarshal(stdout.Bytes(), &resp); err != nil || len(resp.Versions) != 3 {
		t.Fatalf("--json output %q: %v", stdout.String(), err)
	}
}
