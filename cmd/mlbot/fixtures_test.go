package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlbot/mlbot/bot/github"
	"github.com/mlbot/mlbot/bot/gitlab"
)

// gitlabEvents maps fixture file-name prefixes to X-Gitlab-Event values, as
// testdata/fixtures/README.md lists them.
var gitlabEvents = map[string]string{
	"push": "Push Hook", "tag_push": "Tag Push Hook", "merge_request": "Merge Request Hook",
	"note": "Note Hook", "pipeline": "Pipeline Hook", "deployment": "Deployment Hook",
}

// TestEveryFixtureOverHTTP delivers every real payload of both hosts to a
// running mlbot: each is accepted (202) or deliberately ignored (200), and
// no task it causes fails.
func TestEveryFixtureOverHTTP(t *testing.T) {
	for _, forge := range forges {
		t.Run(forge, func(t *testing.T) {
			e := newE2E(t, forge, nil)
			files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "fixtures", forge, "*.json"))
			if err != nil || len(files) == 0 {
				t.Fatalf("no fixtures: %v", err)
			}
			accepted := 0
			for _, f := range files {
				body, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				prefix, _, _ := strings.Cut(filepath.Base(f), ".")
				var req *http.Request
				if forge == "github" {
					req = github.NewDeliveryRequest(e.hook, prefix, body, []byte(e.sb.secret))
				} else {
					req = gitlab.NewDeliveryRequest(e.hook, gitlabEvents[prefix], body, e.sb.secret)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				var msg bytes.Buffer
				msg.ReadFrom(resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusAccepted:
					accepted++
				case http.StatusOK:
				default:
					t.Errorf("%s: answered %d: %s", filepath.Base(f), resp.StatusCode, msg.String())
				}
			}
			if accepted == 0 {
				t.Error("no fixture was accepted")
			}
			e.settle()
			if a := e.archived(); len(a) > 0 {
				t.Errorf("fixtures made tasks fail: %v", a)
			}
			if calls := e.sb.host.recorder().Calls(); len(calls) != 0 {
				t.Errorf("fixtures of repositories outside the allowlist reached the host: %d calls", len(calls))
			}
		})
	}
}

// TestGitLabSystemHook shows that a System Hook is recognised by its
// object_kind, ignored when of a kind mlbot does not route, and refused
// with 400 when it names no kind at all.
func TestGitLabSystemHook(t *testing.T) {
	e := newE2E(t, "gitlab", nil)
	push, err := os.ReadFile(filepath.Join("..", "..", "testdata", "fixtures", "gitlab", "push.go-scm.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		body string
		want int
	}{
		{string(push), http.StatusAccepted},
		{`{"event_name":"user_create","name":"x"}`, http.StatusOK},
		{`{"name":"no kind"}`, http.StatusBadRequest},
	} {
		e.send(gitlab.NewDeliveryRequest(e.hook, "System Hook", []byte(tc.body), e.sb.secret), tc.want)
	}
	e.settle()
	if a := e.archived(); len(a) > 0 {
		t.Errorf("tasks failed: %v", a)
	}
}
