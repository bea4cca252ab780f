package github

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlbot/mlbot/bot"
)

// fixtureDir holds the real GitHub webhook bodies; SOURCES.tsv beside it
// names where each came from.
const fixtureDir = "../../testdata/fixtures/github"

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// eventType is the X-GitHub-Event a fixture was delivered with: its file
// name's first dot-separated part.
func eventType(name string) string {
	return strings.SplitN(name, ".", 2)[0]
}

// keyFields is the part of a bot.Event the fixture table asserts.
type keyFields struct {
	Kind                     bot.Kind
	Action                   bot.Action
	Repo, Sender             string
	Ref, Branch, Before, SHA string
	Tag, Deleted             bool
	Number                   int
	HeadSHA, BaseSHA         string
	HeadRef, BaseRef         string
	Author, Assoc            string
	Fork, Draft, Merged      bool
	CommentID                int64
	CommentAuthor            string
	OnPR                     bool
	CheckRun, CheckSuite     int64
	CheckName, CheckSHA      string
	Identifier               string
}

func keyOf(ev *bot.Event) keyFields {
	k := keyFields{
		Kind: ev.Kind, Action: ev.Action, Repo: ev.Repo.FullName, Sender: ev.Sender,
		Ref: ev.Ref, Branch: ev.Branch, Before: ev.Before, SHA: ev.SHA, Tag: ev.Tag, Deleted: ev.Deleted,
	}
	if pr := ev.PR; pr != nil {
		k.Number, k.HeadSHA, k.BaseSHA, k.HeadRef, k.BaseRef = pr.Number, pr.HeadSHA, pr.BaseSHA, pr.HeadRef, pr.BaseRef
		k.Author, k.Assoc, k.Fork, k.Draft, k.Merged = pr.Author, pr.AuthorAssociation, pr.Fork, pr.Draft, pr.Merged
	}
	if c := ev.Comment; c != nil {
		k.CommentID, k.CommentAuthor, k.OnPR = c.ID, c.Author, c.OnPullRequest
	}
	if c := ev.Check; c != nil {
		k.CheckRun, k.CheckSuite, k.CheckName, k.CheckSHA, k.Identifier = c.RunID, c.SuiteID, c.Name, c.HeadSHA, c.Identifier
	}
	return k
}

// fixtureTable lists every file of fixtureDir with what Parse must make of
// it. TestParseFixtures fails when a fixture is added without a row.
var fixtureTable = []struct {
	file string
	want keyFields
}{
	{"check_run.completed.octokit.json", keyFields{Kind: bot.KindOther, Repo: "Codertocat/Hello-World", Sender: "Codertocat"}},
	{"check_run.created.octokit.json", keyFields{Kind: bot.KindOther, Repo: "Codertocat/Hello-World", Sender: "Codertocat"}},
	{"check_run.requested_action.octokit.json", keyFields{Kind: bot.KindCheck, Action: bot.ActionRequestedAction, Repo: "electron/electron", Sender: "codebytere", Number: 26764, HeadSHA: "5bd5f196a46b8222fb7484f05faba41a73cf34bd", BaseSHA: "45eee468647309e9e6cdb2a88a3b460a59771fef", HeadRef: "miniak/event-process-id", BaseRef: "master", CheckRun: 1494503112, CheckSuite: 1604239627, CheckName: "API Review", CheckSHA: "5bd5f196a46b8222fb7484f05faba41a73cf34bd", Identifier: "lgtm|26764"}},
	{"check_run.rerequested.go-playground.json", keyFields{Kind: bot.KindCheck, Action: bot.ActionRerequested, Repo: "github/hello-world", Sender: "octocat", CheckRun: 4, CheckSuite: 5, CheckName: "randscape", CheckSHA: "d6fde92930d4715a2b49857d24b940956b26d2d3"}},
	{"check_run.rerequested.octokit.json", keyFields{Kind: bot.KindCheck, Action: bot.ActionRerequested, Repo: "github/hello-world", Sender: "octocat", CheckRun: 4, CheckSuite: 5, CheckName: "randscape", CheckSHA: "d6fde92930d4715a2b49857d24b940956b26d2d3"}},
	{"check_suite.completed.octokit.json", keyFields{Kind: bot.KindOther, Repo: "Codertocat/Hello-World", Sender: "Codertocat"}},
	{"check_suite.requested.katex.json", keyFields{Kind: bot.KindOther, Repo: "KaTeX/KaTeX", Sender: "ylemkimon"}},
	{"check_suite.requested.octokit.json", keyFields{Kind: bot.KindOther, Repo: "Codertocat/Hello-World", Sender: "Codertocat"}},
	{"check_suite.rerequested.octokit.json", keyFields{Kind: bot.KindCheck, Action: bot.ActionRerequested, Repo: "Codertocat/Hello-World", Sender: "octocoders-linter[bot]", Number: 2, HeadSHA: "ec26c3e57ca3a959ca5aad62de7213c562f8c821", BaseSHA: "f95f852bd8fca8fcc58a9a2d6c842781e32a215e", HeadRef: "changes", BaseRef: "master", CheckSuite: 118578147, CheckSHA: "ec26c3e57ca3a959ca5aad62de7213c562f8c821"}},
	{"deployment.created.octokit.json", keyFields{Kind: bot.KindOther, Repo: "Codertocat/Hello-World", Sender: "Codertocat"}},
	{"deployment_status.created.octokit.json", keyFields{Kind: bot.KindOther, Repo: "Codertocat/Hello-World", Sender: "Codertocat"}},
	{"installation.created.octokit.json", keyFields{Kind: bot.KindOther, Sender: "Codertocat"}},
	{"installation.deleted.octokit.json", keyFields{Kind: bot.KindOther, Sender: "octocat"}},
	{"issue_comment.created.on-issue.atlantis-plan.atlantis.json", keyFields{Kind: bot.KindComment, Action: bot.ActionCreated, Number: 2, Author: "baxterthehacker", CommentID: 99262140, CommentAuthor: "baxterthehacker", Repo: "baxterthehacker/public-repo", Sender: "baxterthehacker"}},
	{"issue_comment.created.on-issue.octokit.json", keyFields{Kind: bot.KindComment, Action: bot.ActionCreated, Number: 1, Author: "Codertocat", CommentID: 492700400, CommentAuthor: "Codertocat", Repo: "Codertocat/Hello-World", Sender: "Codertocat"}},
	{"issue_comment.created.on-pr.atlantis.json", keyFields{Kind: bot.KindComment, Action: bot.ActionCreated, Number: 1, Author: "runatlantis", CommentID: 396926483, CommentAuthor: "runatlantis", OnPR: true, Repo: "runatlantis/atlantis-tests", Sender: "runatlantis"}},
	{"issue_comment.created.on-pr.go-playground.json", keyFields{Kind: bot.KindComment, Action: bot.ActionCreated, Number: 3, Author: "chhsia0", CommentID: 546616131, CommentAuthor: "chhsia0", OnPR: true, Repo: "chhsia0/knative-route-demo", Sender: "chhsia0"}},
	{"issue_comment.created.on-pr.go-scm.json", keyFields{Kind: bot.KindComment, Action: bot.ActionCreated, Number: 2, Author: "lts-def", CommentID: 751955664, CommentAuthor: "lts-def", OnPR: true, Repo: "abc/def-ci-webhook-test", Sender: "lts-def"}},
	{"issue_comment.deleted.on-issue.octokit.json", keyFields{Kind: bot.KindComment, Action: bot.ActionDeleted, Number: 1, Author: "Codertocat", CommentID: 492700400, CommentAuthor: "Codertocat", Repo: "Codertocat/Hello-World", Sender: "Codertocat"}},
	{"issue_comment.edited.on-issue.octokit.json", keyFields{Kind: bot.KindComment, Action: bot.ActionEdited, Number: 1, Author: "Codertocat", CommentID: 492700400, CommentAuthor: "Codertocat", Repo: "Codertocat/Hello-World", Sender: "Codertocat"}},
	{"ping.app_id.octokit.json", keyFields{Kind: bot.KindPing, Repo: "Octocoders/Hello-World", Sender: "Codertocat"}},
	{"ping.octokit.json", keyFields{Kind: bot.KindPing, Repo: "Octocoders/Hello-World", Sender: "Codertocat"}},
	{"pull_request.closed.unmerged.atlantis.json", keyFields{Kind: bot.KindPullRequest, Action: bot.ActionClosed, Number: 2, HeadSHA: "5e2d140b2d74bf61675677f01dc947ae8512e18e", BaseSHA: "f59a822e83b3cd193142c7624ea635a5d7894388", HeadRef: "atlantisyaml", BaseRef: "main", Author: "runatlantis", Assoc: "OWNER", Repo: "runatlantis/atlantis-tests", Sender: "runatlantis"}},
	{"pull_request.closed.unmerged.go-scm.json", keyFields{Kind: bot.KindPullRequest, Action: bot.ActionClosed, Number: 1, HeadSHA: "d2b75aa7797ec26b088fa2dd527e9d2c052fcedd", BaseSHA: "86378926c25f4b8310d3cc37f215eb6f25712850", HeadRef: "master", BaseRef: "bradrydzewski-patch-1", Author: "bradrydzewski", Assoc: "COLLABORATOR", Repo: "bradrydzewski/drone-test-go", Sender: "bradrydzewski"}},
	{"pull_request.closed.unmerged.octokit.json", keyFields{Kind: bot.KindPullRequest, Action: bot.ActionClosed, Number: 2, HeadSHA: "ec26c3e57ca3a959ca5aad62de7213c562f8c821", BaseSHA: "f95f852bd8fca8fcc58a9a2d6c842781e32a215e", HeadRef: "changes", BaseRef: "master", Author: "Codertocat", Assoc: "OWNER", Repo: "Codertocat/Hello-World", Sender: "Codertocat"}},
	{"pull_request.converted_to_draft.octokit.json", keyFields{Kind: bot.KindPullRequest, Action: bot.ActionOther, Number: 2, HeadSHA: "ec26c3e57ca3a959ca5aad62de7213c562f8c821", BaseSHA: "f95f852bd8fca8fcc58a9a2d6c842781e32a215e", HeadRef: "changes", BaseRef: "master", Author: "Codertocat", Assoc: "OWNER", Draft: true, Repo: "Codertocat/Hello-World", Sender: "Codertocat"}},
	{"pull_request.edited.go-scm.json", keyFields{Kind: bot.KindPullRequest, Action: bot.ActionEdited, Number: 1, HeadSHA: "d2b75aa7797ec26b088fa2dd527e9d2c052fcedd", BaseSHA: "86378926c25f4b8310d3cc37f215eb6f25712850", HeadRef: "master", BaseRef: "bradrydzewski-patch-1", Author: "bradrydzewski", Assoc: "COLLABORATOR", Repo: "bradrydzewski/drone-test-go", Sender: "bradrydzewski"}},
	{"pull_request.opened.atlantis.json", keyFields{Kind: bot.KindPullRequest, Action: bot.ActionOpened, Number: 2, HeadSHA: "c31fd9ea6f557ad2ea659944c3844a059b83bc5d", BaseSHA: "f59a822e83b3cd193142c7624ea635a5d7894388", HeadRef: "branch", BaseRef: "main", Author: "runatlantis", Assoc: "OWNER", Repo: "runatlantis/atlantis-tests", Sender: "runatlantis"}},
	{"pull_request.opened.fork.katex.json", keyFields{Kind: bot.KindPullRequest, Action: bot.ActionOpened, Number: 2388, HeadSHA: "3ae9c36f8a03c1bd7e352bc683f72943dc92422e", BaseSHA: "36f9788cd6aa402294fb7cbe98305e179a88d9ff", HeadRef: "patch-2", BaseRef: "master", Author: "KaTeX-bot", Assoc: "NONE", Fork: true, Repo: "KaTeX/KaTeX", Sender: "KaTeX-bot"}},
	{"pull_request.opened.go-scm.json", keyFields{Kind: bot.KindPullRequest, Action: bot.ActionOpened, Number: 1, HeadSHA: "d2b75aa7797ec26b088fa2dd527e9d2c052fcedd", BaseSHA: "86378926c25f4b8310d3cc37f215eb6f25712850", HeadRef: "master", BaseRef: "bradrydzewski-patch-1", Author: "bradrydzewski", Assoc: "COLLABORATOR", Repo: "bradrydzewski/drone-test-go", Sender: "bradrydzewski"}},
	{"pull_request.opened.katex.json", keyFields{Kind: bot.KindPullRequest, Action: bot.ActionOpened, Number: 2386, HeadSHA: "2c70e997118ada09d114005cedaa23a2a6b41cf4", BaseSHA: "36f9788cd6aa402294fb7cbe98305e179a88d9ff", HeadRef: "test-ss-bot", BaseRef: "master", Author: "ylemkimon", Assoc: "MEMBER", Repo: "KaTeX/KaTeX", Sender: "ylemkimon"}},
	{"pull_request.opened.null-body.octokit.json", keyFields{Kind: bot.KindPullRequest, Action: bot.ActionOpened, Number: 2, HeadSHA: "ec26c3e57ca3a959ca5aad62de7213c562f8c821", BaseSHA: "f95f852bd8fca8fcc58a9a2d6c842781e32a215e", HeadRef: "changes", BaseRef: "master", Author: "Codertocat", Assoc: "OWNER", Repo: "Codertocat/Hello-World", Sender: "Codertocat"}},
	{"pull_request.opened.octokit.json", keyFields{Kind: bot.KindPullRequest, Action: bot.ActionOpened, Number: 2, HeadSHA: "ec26c3e57ca3a959ca5aad62de7213c562f8c821", BaseSHA: "f95f852bd8fca8fcc58a9a2d6c842781e32a215e", HeadRef: "changes", BaseRef: "master", Author: "Codertocat", Assoc: "OWNER", Repo: "Codertocat/Hello-World", Sender: "Codertocat"}},
	{"pull_request.ready_for_review.octokit.json", keyFields{Kind: bot.KindPullRequest, Action: bot.ActionReady, Number: 2, HeadSHA: "ec26c3e57ca3a959ca5aad62de7213c562f8c821", BaseSHA: "f95f852bd8fca8fcc58a9a2d6c842781e32a215e", HeadRef: "changes", BaseRef: "master", Author: "Codertocat", Assoc: "OWNER", Repo: "Codertocat/Hello-World", Sender: "Codertocat"}},
	{"pull_request.reopened.go-scm.json", keyFields{Kind: bot.KindPullRequest, Action: bot.ActionReopened, Number: 1, HeadSHA: "d2b75aa7797ec26b088fa2dd527e9d2c052fcedd", BaseSHA: "86378926c25f4b8310d3cc37f215eb6f25712850", HeadRef: "master", BaseRef: "bradrydzewski-patch-1", Author: "bradrydzewski", Assoc: "COLLABORATOR", Repo: "bradrydzewski/drone-test-go", Sender: "bradrydzewski"}},
	{"pull_request.reopened.octokit.json", keyFields{Kind: bot.KindPullRequest, Action: bot.ActionReopened, Number: 2, HeadSHA: "ec26c3e57ca3a959ca5aad62de7213c562f8c821", BaseSHA: "f95f852bd8fca8fcc58a9a2d6c842781e32a215e", HeadRef: "changes", BaseRef: "master", Author: "Codertocat", Assoc: "OWNER", Repo: "Codertocat/Hello-World", Sender: "Codertocat"}},
	{"pull_request.synchronize.fork.katex.json", keyFields{Kind: bot.KindPullRequest, Action: bot.ActionUpdated, Number: 2388, HeadSHA: "a3404550c2465df195b4c7e2081f74dd5a7aced6", BaseSHA: "36f9788cd6aa402294fb7cbe98305e179a88d9ff", HeadRef: "patch-2", BaseRef: "master", Author: "KaTeX-bot", Assoc: "NONE", Fork: true, Repo: "KaTeX/KaTeX", Sender: "KaTeX-bot"}},
	{"pull_request.synchronize.go-scm.json", keyFields{Kind: bot.KindPullRequest, Action: bot.ActionUpdated, Number: 1, HeadSHA: "8102e371cd01cf668893cb2d04a04d52331b1dc9", BaseSHA: "86378926c25f4b8310d3cc37f215eb6f25712850", HeadRef: "master", BaseRef: "bradrydzewski-patch-1", Author: "bradrydzewski", Assoc: "COLLABORATOR", Repo: "bradrydzewski/drone-test-go", Sender: "bradrydzewski"}},
	{"pull_request.synchronize.octokit.json", keyFields{Kind: bot.KindPullRequest, Action: bot.ActionUpdated, Number: 2, HeadSHA: "ec26c3e57ca3a959ca5aad62de7213c562f8c821", BaseSHA: "f95f852bd8fca8fcc58a9a2d6c842781e32a215e", HeadRef: "changes", BaseRef: "master", Author: "Codertocat", Assoc: "OWNER", Repo: "Codertocat/Hello-World", Sender: "Codertocat"}},
	{"pull_request_review.dismissed.octokit.json", keyFields{Kind: bot.KindOther, Repo: "Codertocat/Hello-World", Sender: "Codertocat"}},
	{"pull_request_review.submitted.approved.go-playground.json", keyFields{Kind: bot.KindOther, Repo: "baxterthehacker/public-repo", Sender: "baxterthehacker"}},
	{"pull_request_review.submitted.go-scm.json", keyFields{Kind: bot.KindOther, Repo: "shivamnegi94/testrepo", Sender: "shivamnegi94"}},
	{"pull_request_review.submitted.octokit.json", keyFields{Kind: bot.KindOther, Repo: "Codertocat/Hello-World", Sender: "Codertocat"}},
	{"push.branch-created.go-scm.json", keyFields{Kind: bot.KindPush, Ref: "refs/heads/feature-branch", Branch: "feature-branch", Before: "0000000000000000000000000000000000000000", SHA: "d2b75aa7797ec26b088fa2dd527e9d2c052fcedd", Repo: "bradrydzewski/drone-test-go", Sender: "bradrydzewski"}},
	{"push.branch-created.octokit.json", keyFields{Kind: bot.KindPush, Ref: "refs/heads/master", Branch: "master", Before: "0000000000000000000000000000000000000000", SHA: "6113728f27ae82c7b1a177c8d03f9e96e0adf246", Repo: "Codertocat/Hello-World", Sender: "Codertocat"}},
	{"push.branch-deleted.go-scm.json", keyFields{Kind: bot.KindPush, Ref: "refs/heads/feature-branch", Branch: "feature-branch", Before: "d2b75aa7797ec26b088fa2dd527e9d2c052fcedd", SHA: "0000000000000000000000000000000000000000", Deleted: true, Repo: "bradrydzewski/drone-test-go", Sender: "bradrydzewski"}},
	{"push.branch.go-scm.json", keyFields{Kind: bot.KindPush, Ref: "refs/heads/master", Branch: "master", Before: "a10867b14bb761a232cd80139fbd4c0d33264240", SHA: "199eddf46df50de8d02e99bf1c5fdb4101338224", Repo: "Codertocat/Hello-World", Sender: "Codertocat"}},
	{"push.tag-created.go-scm.json", keyFields{Kind: bot.KindPush, Ref: "refs/tags/v0.0.1", Tag: true, Before: "0000000000000000000000000000000000000000", SHA: "d2b75aa7797ec26b088fa2dd527e9d2c052fcedd", Repo: "bradrydzewski/drone-test-go", Sender: "bradrydzewski"}},
	{"push.tag-deleted.go-scm.json", keyFields{Kind: bot.KindPush, Ref: "refs/tags/v0.0.1", Tag: true, Before: "d2b75aa7797ec26b088fa2dd527e9d2c052fcedd", SHA: "0000000000000000000000000000000000000000", Deleted: true, Repo: "bradrydzewski/drone-test-go", Sender: "bradrydzewski"}},
	{"push.tag-deleted.octokit.json", keyFields{Kind: bot.KindPush, Ref: "refs/tags/simple-tag", Tag: true, Before: "6113728f27ae82c7b1a177c8d03f9e96e0adf246", SHA: "0000000000000000000000000000000000000000", Deleted: true, Repo: "Codertocat/Hello-World", Sender: "Codertocat"}},
	{"status.octokit.json", keyFields{Kind: bot.KindOther, Repo: "Codertocat/Hello-World", Sender: "Codertocat"}},
}

func TestParseFixtures(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(fixtureDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 51 {
		t.Errorf("found %d fixtures, want 51", len(files))
	}
	rows := map[string]bool{}
	for _, tt := range fixtureTable {
		rows[tt.file] = true
	}
	for _, f := range files {
		if !rows[filepath.Base(f)] {
			t.Errorf("fixture %s has no row in fixtureTable", filepath.Base(f))
		}
	}

	w := &Webhook{}
	for _, tt := range fixtureTable {
		t.Run(tt.file, func(t *testing.T) {
			ev, err := w.Parse(eventType(tt.file), readFixture(t, tt.file))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := keyOf(ev); got != tt.want {
				t.Errorf("Parse key fields\n got %+v\nwant %+v", got, tt.want)
			}
			if ev.Forge != "github" || ev.Type != eventType(tt.file) {
				t.Errorf("Forge, Type = %q, %q", ev.Forge, ev.Type)
			}
			if ev.Repo.FullName == "" {
				return
			}
			r := ev.Repo
			if r.Forge != "github" || r.ID == 0 || r.DefaultBranch == "" || r.Host != "github.com" ||
				!strings.HasSuffix(r.WebURL, "/"+r.FullName) {
				t.Errorf("Repo = %+v", r)
			}
			if w.Handles(ev.Type) && !strings.HasSuffix(r.CloneURL, "/"+r.FullName+".git") {
				t.Errorf("Repo.CloneURL = %q", r.CloneURL)
			}
		})
	}
}

func TestParsePullRequestDetails(t *testing.T) {
	w := &Webhook{}
	ev, err := w.Parse("pull_request", readFixture(t, "pull_request.opened.fork.katex.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := bot.Repo{
		Forge: "github", ID: 279942894, FullName: "KaTeX-bot/KaTeX",
		CloneURL: "https://github.com/KaTeX-bot/KaTeX.git", DefaultBranch: "master",
		WebURL: "https://github.com/KaTeX-bot/KaTeX", Host: "github.com",
	}
	if ev.PR.HeadRepo != want {
		t.Errorf("HeadRepo = %+v\nwant %+v", ev.PR.HeadRepo, want)
	}
	if ev.PR.URL != "https://github.com/KaTeX/KaTeX/pull/2388" || ev.PR.State != "open" || ev.PR.Title == "" {
		t.Errorf("PR = %+v", ev.PR)
	}
}

// No "closed and merged" payload exists among the fixtures, so this test
// derives one from a closed one by setting merged and merge_commit_sha, and
// one with a null head repository (a deleted fork) from an opened one.
func TestParseDerivedPullRequests(t *testing.T) {
	const mergeSHA = "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		name    string
		fixture string
		mutate  func(pr map[string]any)
		check   func(t *testing.T, ev *bot.Event)
	}{
		{
			name:    "merged",
			fixture: "pull_request.closed.unmerged.octokit.json",
			mutate: func(pr map[string]any) {
				pr["merged"] = true
				pr["merge_commit_sha"] = mergeSHA
			},
			check: func(t *testing.T, ev *bot.Event) {
				if ev.Action != bot.ActionMerged || !ev.PR.Merged || ev.PR.MergeSHA != mergeSHA {
					t.Errorf("Action %q, Merged %v, MergeSHA %q", ev.Action, ev.PR.Merged, ev.PR.MergeSHA)
				}
			},
		},
		{
			name:    "deleted fork",
			fixture: "pull_request.synchronize.fork.katex.json",
			mutate:  func(pr map[string]any) { pr["head"].(map[string]any)["repo"] = nil },
			check: func(t *testing.T, ev *bot.Event) {
				if !ev.PR.Fork || ev.PR.HeadRepo.FullName != "" || ev.PR.HeadSHA == "" {
					t.Errorf("Fork %v, HeadRepo %+v", ev.PR.Fork, ev.PR.HeadRepo)
				}
			},
		},
		{
			name:    "same repo in other case",
			fixture: "pull_request.opened.octokit.json",
			mutate: func(pr map[string]any) {
				pr["head"].(map[string]any)["repo"].(map[string]any)["full_name"] = "codertocat/hello-world"
			},
			check: func(t *testing.T, ev *bot.Event) {
				if ev.PR.Fork {
					t.Error("Fork = true for a head repository differing only in case")
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(readFixture(t, tt.fixture), &m); err != nil {
				t.Fatal(err)
			}
			tt.mutate(m["pull_request"].(map[string]any))
			body, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := (&Webhook{}).Parse("pull_request", body)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, ev)
		})
	}
}

func TestParseMasterBranchFallback(t *testing.T) {
	body := []byte(`{"ref":"refs/heads/dev","before":"a","after":"b","repository":{"full_name":"o/r","master_branch":"trunk","html_url":"https://ghe.example.com/o/r"}}`)
	ev, err := (&Webhook{}).Parse("push", body)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Repo.DefaultBranch != "trunk" || ev.Repo.Host != "ghe.example.com" || ev.Branch != "dev" {
		t.Errorf("Repo %+v, Branch %q", ev.Repo, ev.Branch)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		event string
		body  string
	}{
		{"push", `{"ref":`},
		{"pull_request", `not json`},
		{"pull_request", `{"action":"opened"}`},
		{"issue_comment", `{"action":"created","issue":{"number":1}}`},
		{"issue_comment", `[]`},
		{"check_run", `{"repository":`},
	}
	for _, tt := range tests {
		if _, err := (&Webhook{}).Parse(tt.event, []byte(tt.body)); err == nil {
			t.Errorf("Parse(%q, %q) succeeded, want an error", tt.event, tt.body)
		}
	}
}

func TestHandles(t *testing.T) {
	w := &Webhook{}
	for ev, want := range map[string]bool{
		"push": true, "pull_request": true, "issue_comment": true,
		"check_run": true, "check_suite": true,
		"ping": false, "status": false,
		"pull_request_review": false, "installation": false, "": false,
	} {
		if got := w.Handles(ev); got != want {
			t.Errorf("Handles(%q) = %v, want %v", ev, got, want)
		}
	}
	if w.Forge() != "github" {
		t.Errorf("Forge() = %q", w.Forge())
	}
}

func TestIdentify(t *testing.T) {
	h := http.Header{}
	h.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
	h.Set("X-GitHub-Event", "push")
	d, e := (&Webhook{}).Identify(h, nil)
	if d != "72d3162e-cc78-11e3-81ab-4c9367dc0958" || e != "push" {
		t.Errorf("Identify = %q, %q", d, e)
	}
}

// TestSignatureVector checks the verifier against the signature the go-scm
// project published for one of the fixtures (SIGNATURES.tsv).
func TestSignatureVector(t *testing.T) {
	body := readFixture(t, "push.branch.go-scm.json")
	h := http.Header{}
	h.Set("X-Hub-Signature-256", "sha256=e3bfe744d4e2e29ed990bde8acfb8255ca51ef65f99657767989fb6349f32957")
	if err := (&Webhook{Secret: []byte("topsecret")}).Authenticate(h, body); err != nil {
		t.Errorf("Authenticate(published vector) = %v", err)
	}
}

func TestAuthenticate(t *testing.T) {
	secret := []byte("s3cr3t-value")
	body := []byte(`{"zen":"Keep it logically awesome."}`)
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	good := hex.EncodeToString(mac.Sum(nil))

	tests := []struct {
		name   string
		header map[string]string
		secret []byte
		reason string // "" means accepted
	}{
		{"good", map[string]string{"X-Hub-Signature-256": "sha256=" + good}, secret, ""},
		{"good uppercase hex", map[string]string{"X-Hub-Signature-256": "sha256=" + strings.ToUpper(good)}, secret, ""},
		{"wrong", map[string]string{"X-Hub-Signature-256": "sha256=" + strings.Repeat("0", 64)}, secret, "mismatch"},
		{"other secret", map[string]string{"X-Hub-Signature-256": Sign([]byte("other"), body)}, secret, "mismatch"},
		{"missing", nil, secret, "missing"},
		{"sha1 only", map[string]string{"X-Hub-Signature": "sha1=cf93f9ba3c8d3a789e61f91e1e5c6a360d036e98"}, secret, "missing"},
		{"malformed hex", map[string]string{"X-Hub-Signature-256": "sha256=zz" + good[2:]}, secret, "malformed"},
		{"short", map[string]string{"X-Hub-Signature-256": "sha256=" + good[:62]}, secret, "malformed"},
		{"wrong prefix", map[string]string{"X-Hub-Signature-256": "sha1=" + good}, secret, "wrong prefix"},
		{"no prefix", map[string]string{"X-Hub-Signature-256": good}, secret, "wrong prefix"},
		{"no secret configured", nil, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.header {
				h.Set(k, v)
			}
			err := (&Webhook{Secret: tt.secret}).Authenticate(h, body)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Authenticate = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, bot.ErrUnauthenticated) {
				t.Fatalf("Authenticate = %v, want bot.ErrUnauthenticated", err)
			}
			var se *SignatureError
			if !errors.As(err, &se) || se.Reason != tt.reason {
				t.Errorf("Authenticate = %v, want reason %q", err, tt.reason)
			}
			if strings.Contains(err.Error(), string(secret)) || strings.Contains(err.Error(), good) {
				t.Errorf("error %q leaks the secret or the expected signature", err)
			}
		})
	}
}

func BenchmarkParsePullRequest(b *testing.B) {
	body := readFixture(b, "pull_request.opened.octokit.json")
	w := &Webhook{}
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := w.Parse("pull_request", body); err != nil {
			b.Fatal(err)
		}
	}
}

// TestParseTimestamps reads the host's times /ok-to-test approves by: a
// pull request's updated_at (which a push moves) and a comment's
// created_at, from real deliveries and from the builders.
func TestParseTimestamps(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 30, 15, 0, time.UTC)
	tests := []struct {
		name    string
		event   string
		body    []byte
		updated time.Time // of the pull request
		created time.Time // of the comment
	}{
		{"synchronize", "pull_request", readFixture(t, "pull_request.synchronize.fork.katex.json"), time.Date(2020, 8, 5, 6, 57, 59, 0, time.UTC), time.Time{}},
		{"opened", "pull_request", readFixture(t, "pull_request.opened.octokit.json"), time.Date(2019, 5, 15, 15, 20, 33, 0, time.UTC), time.Time{}},
		{"comment", "issue_comment", readFixture(t, "issue_comment.created.on-pr.go-scm.json"), time.Time{}, time.Date(2020, 12, 29, 5, 49, 14, 0, time.UTC)},
		{"built pull request", "pull_request", PullRequestPayload(PullRequestOptions{Action: "synchronize", HeadSHA: shaA, UpdatedAt: at}), at, time.Time{}},
		{"built comment", "issue_comment", IssueCommentPayload(IssueCommentOptions{OnPullRequest: true, Body: "/ok-to-test", CreatedAt: at}), time.Time{}, at},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := parse(t, tt.event, tt.body)
			if ev.PR == nil {
				t.Fatal("no pull request")
			}
			if !ev.PR.Updated.Equal(tt.updated) {
				t.Errorf("PR.Updated = %s, want %s", ev.PR.Updated, tt.updated)
			}
			if ev.Comment != nil && !ev.Comment.Created.Equal(tt.created) {
				t.Errorf("Comment.Created = %s, want %s", ev.Comment.Created, tt.created)
			}
			if ev.Comment != nil && ev.Comment.ID == 0 {
				t.Error("Comment.ID = 0")
			}
		})
	}
	// Built without a time, both say now (the host stamps them when they
	// happen).
	before := time.Now().Add(-time.Second)
	if ev := parse(t, "pull_request", PullRequestPayload(PullRequestOptions{HeadSHA: shaA})); ev.PR.Updated.Before(before) {
		t.Errorf("default updated_at %s, want now", ev.PR.Updated)
	}
	if ev := parse(t, "issue_comment", IssueCommentPayload(IssueCommentOptions{OnPullRequest: true})); ev.Comment.Created.Before(before) {
		t.Errorf("default created_at %s, want now", ev.Comment.Created)
	}
}
