package jobs

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/jobs/report"
)

// pathsRepo is a repository whose .mlbot.yml watches model/** and
// data/*.csv, with this history:
//
//	main:    c1 ── c2 (README) ── c3 (model) ── c4 (.mlbot.yml only)
//	docs:     └── d1 (docs/guide.md)
//	moved:    └── m1 (model/train.py renamed to docs/train.py)
//	rewrite:  └── r1 (README), not a descendant of c2
type pathsRepo struct {
	dir                        string
	c1, c2, c3, c4, d1, m1, r1 string
}

func newPathsRepo(t *testing.T) pathsRepo {
	t.Helper()
	r := pathsRepo{dir: filepath.Join(t.TempDir(), "origin")}
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = r.dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	write := func(name, body string) {
		t.Helper()
		p := filepath.Join(r.dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	commit := func(msg string) string {
		git("add", "-A")
		git("commit", "--quiet", "-m", msg)
		return git("rev-parse", "HEAD")
	}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	git("init", "--quiet", "--initial-branch=main")
	git("config", "uploadpack.allowFilter", "true")
	git("config", "uploadpack.allowAnySHA1InWant", "true")
	config := "version: 1\npipeline:\n  train: sh train.sh\n  metrics: [metrics.json]\n  paths: [\"model/**\", \"data/*.csv\"]\n"
	write(".mlbot.yml", config)
	write("model/train.py", "print(1)\n")
	write("README.md", "v1\n")
	r.c1 = commit("c1")
	write("README.md", "v2\n")
	r.c2 = commit("c2: docs")
	write("model/train.py", "print(2)\n")
	r.c3 = commit("c3: model")
	write(".mlbot.yml", config+"# a comment\n")
	r.c4 = commit("c4: config")
	git("checkout", "--quiet", "-b", "docs", r.c1)
	write("docs/guide.md", "how to\n")
	r.d1 = commit("d1: docs")
	git("checkout", "--quiet", "-b", "moved", r.c1)
	if err := os.MkdirAll(filepath.Join(r.dir, "docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	git("mv", "model/train.py", "docs/train.py")
	r.m1 = commit("m1: move out of model/")
	git("checkout", "--quiet", "-b", "rewrite", r.c1)
	write("README.md", "rewritten\n")
	r.r1 = commit("r1: rewritten docs")
	git("checkout", "--quiet", "main")
	return r
}

// TestSkipUnchanged checks out commits of a real repository the way a
// pipeline does and asks whether pipeline.paths lets each skip its run:
// only when git shows the changes since the base, and they touch neither
// a watched path nor .mlbot.yml.
func TestSkipUnchanged(t *testing.T) {
	r := newPathsRepo(t)
	repo := bot.Repo{Forge: "github", FullName: "acme/model", CloneURL: "file://" + r.dir, DefaultBranch: "main"}
	pr := func(head, base string) PipelinePayload {
		return PipelinePayload{Kind: KindPullRequest, Repo: repo, SHA: head,
			PR: &bot.PullRequest{Number: 1, HeadSHA: head, BaseSHA: base, BaseRef: "main", HeadRef: "feature"}}
	}
	push := func(after, before string) PipelinePayload {
		return PipelinePayload{Kind: KindBaseline, Repo: repo, SHA: after, Branch: "main", Before: before}
	}
	forced := pr(r.d1, r.c3)
	forced.Force = true
	tests := []struct {
		name string
		p    PipelinePayload
		// detail is what a skipped run's Detail starts with; "" means the
		// run must go ahead.
		detail string
	}{
		{"docs-only pull request, main moved on with a model change since", pr(r.d1, r.c3), "none of the 1 file changed since " + short(r.c1)},
		{"docs-only merge request whose event names no base commit", pr(r.d1, ""), "none of the 1 file changed since " + short(r.c1)},
		{"a rename out of a watched path counts its old name", pr(r.m1, r.c2), ""},
		{"pull request changing the model", pr(r.c3, r.c1), ""},
		{"pull request changing only .mlbot.yml", pr(r.c4, r.c3), ""},
		{"/retrain of a docs-only pull request", forced, ""},
		{"docs-only push to main", push(r.c2, r.c1), "none of the 1 file changed since " + short(r.c1)},
		{"push of several commits, one of them a model change", push(r.c4, r.c1), ""},
		{"push changing only .mlbot.yml", push(r.c4, r.c3), ""},
		{"push that created the branch", push(r.c2, strings.Repeat("0", 40)), ""},
		{"push event without a before", push(r.c2, ""), ""},
		{"force-push rewriting history", push(r.r1, r.c2), ""},
		{"force-push whose previous tip is gone from the host", push(r.c2, strings.Repeat("d", 40)), ""},
	}
	w := &Worker{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			co, err := checkoutHead(ctx, &fakeForge{}, tt.p, filepath.Join(t.TempDir(), "head"))
			if err != nil {
				t.Fatal(err)
			}
			run := tt.p.newRun()
			skipped := w.skipUnchanged(ctx, tt.p, co, run)
			if tt.detail == "" {
				if skipped || run.Outcome != "" {
					t.Fatalf("skipped (%s: %s), want a run", run.Outcome, run.Detail)
				}
				return
			}
			if !skipped || run.Outcome != report.OutcomeSkipped || !strings.HasPrefix(run.Detail, tt.detail) {
				t.Fatalf("skipped = %v, outcome %q, detail %q; want skipped with %q", skipped, run.Outcome, run.Detail, tt.detail)
			}
			if strings.Join(run.Paths, ",") != "model/**,data/*.csv" {
				t.Errorf("run.Paths = %q, want the watched globs", run.Paths)
			}
			if d := describe(run, report.Diff{}); !strings.HasPrefix(d, "no model changes (paths)") || stateOf(run.Outcome) != bot.StateSuccess {
				t.Errorf("status %s %q, want success \"no model changes (paths)…\"", stateOf(run.Outcome), d)
			}
		})
	}
}
