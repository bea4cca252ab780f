package github

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/mlbot/mlbot/bot"
)

const (
	shaA = "1111111111111111111111111111111111111111"
	shaB = "2222222222222222222222222222222222222222"
	shaC = "3333333333333333333333333333333333333333"
)

func parse(t *testing.T, event string, body []byte) *bot.Event {
	t.Helper()
	ev, err := (&Webhook{}).Parse(event, body)
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, body)
	}
	return ev
}

func TestPushPayloadRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		opts PushOptions
		want keyFields
		repo bot.Repo
	}{
		{
			name: "branch",
			opts: PushOptions{Repo: "acme/model", CloneURL: "http://127.0.0.1:9/git/acme/model.git", HTMLURL: "http://127.0.0.1:9/acme/model", DefaultBranch: "main", Ref: "refs/heads/main", Before: shaA, After: shaB, Sender: "alice"},
			want: keyFields{Kind: bot.KindPush, Repo: "acme/model", Sender: "alice", Ref: "refs/heads/main", Branch: "main", Before: shaA, SHA: shaB},
			repo: bot.Repo{Forge: "github", FullName: "acme/model", CloneURL: "http://127.0.0.1:9/git/acme/model.git", DefaultBranch: "main", WebURL: "http://127.0.0.1:9/acme/model", Host: "127.0.0.1"},
		},
		{
			name: "deleted branch with defaults",
			opts: PushOptions{Repo: "acme/model", Ref: "refs/heads/feature/x", Before: shaA, After: zeroSHA},
			want: keyFields{Kind: bot.KindPush, Repo: "acme/model", Sender: "acme", Ref: "refs/heads/feature/x", Branch: "feature/x", Before: shaA, SHA: zeroSHA, Deleted: true},
			repo: bot.Repo{Forge: "github", FullName: "acme/model", CloneURL: "https://github.com/acme/model.git", DefaultBranch: "main", WebURL: "https://github.com/acme/model", Host: "github.com"},
		},
		{
			name: "tag",
			opts: PushOptions{Repo: "Org/Repo", DefaultBranch: "trunk", Ref: "refs/tags/v1.0.0", After: shaC, Sender: "bob"},
			want: keyFields{Kind: bot.KindPush, Repo: "Org/Repo", Sender: "bob", Ref: "refs/tags/v1.0.0", Tag: true, Before: zeroSHA, SHA: shaC},
			repo: bot.Repo{Forge: "github", FullName: "Org/Repo", CloneURL: "https://github.com/Org/Repo.git", DefaultBranch: "trunk", WebURL: "https://github.com/Org/Repo", Host: "github.com"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := PushPayload(tt.opts)
			ev := parse(t, "push", body)
			if got := keyOf(ev); got != tt.want {
				t.Errorf("key fields\n got %+v\nwant %+v", got, tt.want)
			}
			tt.repo.ID = ev.Repo.ID
			if ev.Repo != tt.repo || ev.Repo.ID == 0 {
				t.Errorf("Repo\n got %+v\nwant %+v", ev.Repo, tt.repo)
			}
			assertKeeps(t, body, "Codertocat/Hello-World", "pusher", "compare", "repository.created_at", "repository.stargazers_count")
		})
	}
}

func TestPullRequestPayloadRoundTrip(t *testing.T) {
	tests := []struct {
		name      string
		opts      PullRequestOptions
		want      keyFields
		headClone string
		mergeSHA  string
	}{
		{
			name:      "opened",
			opts:      PullRequestOptions{Action: "opened", Number: 12, Repo: "acme/model", DefaultBranch: "main", HeadRef: "tune-lr", HeadSHA: shaB, BaseSHA: shaA, Author: "alice", AuthorAssociation: "MEMBER"},
			want:      keyFields{Kind: bot.KindPullRequest, Action: bot.ActionOpened, Repo: "acme/model", Sender: "alice", Number: 12, HeadSHA: shaB, BaseSHA: shaA, HeadRef: "tune-lr", BaseRef: "main", Author: "alice", Assoc: "MEMBER"},
			headClone: "https://github.com/acme/model.git",
		},
		{
			name:      "fork synchronize draft",
			opts:      PullRequestOptions{Action: "synchronize", Number: 3, Repo: "acme/model", HeadRepo: "mallory/model", HeadCloneURL: "http://sim/git/mallory/model.git", HeadRef: "main", HeadSHA: shaC, BaseRef: "dev", BaseSHA: shaA, Author: "mallory", AuthorAssociation: "FIRST_TIME_CONTRIBUTOR", Draft: true},
			want:      keyFields{Kind: bot.KindPullRequest, Action: bot.ActionUpdated, Repo: "acme/model", Sender: "mallory", Number: 3, HeadSHA: shaC, BaseSHA: shaA, HeadRef: "main", BaseRef: "dev", Author: "mallory", Assoc: "FIRST_TIME_CONTRIBUTOR", Fork: true, Draft: true},
			headClone: "http://sim/git/mallory/model.git",
		},
		{
			name:      "merged",
			opts:      PullRequestOptions{Action: "closed", Number: 4, Repo: "acme/model", HeadRef: "x", HeadSHA: shaB, BaseSHA: shaA, Author: "alice", AuthorAssociation: "OWNER", Merged: true, MergeSHA: shaC},
			want:      keyFields{Kind: bot.KindPullRequest, Action: bot.ActionMerged, Repo: "acme/model", Sender: "alice", Number: 4, HeadSHA: shaB, BaseSHA: shaA, HeadRef: "x", BaseRef: "main", Author: "alice", Assoc: "OWNER", Merged: true},
			headClone: "https://github.com/acme/model.git",
			mergeSHA:  shaC,
		},
		{
			name:      "closed",
			opts:      PullRequestOptions{Action: "closed", Number: 5, Repo: "acme/model", HeadRef: "x", HeadSHA: shaB, BaseSHA: shaA, Author: "alice"},
			want:      keyFields{Kind: bot.KindPullRequest, Action: bot.ActionClosed, Repo: "acme/model", Sender: "alice", Number: 5, HeadSHA: shaB, BaseSHA: shaA, HeadRef: "x", BaseRef: "main", Author: "alice", Assoc: "NONE"},
			headClone: "https://github.com/acme/model.git",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := PullRequestPayload(tt.opts)
			ev := parse(t, "pull_request", body)
			if got := keyOf(ev); got != tt.want {
				t.Errorf("key fields\n got %+v\nwant %+v", got, tt.want)
			}
			if ev.PR.HeadRepo.CloneURL != tt.headClone || ev.PR.MergeSHA != tt.mergeSHA {
				t.Errorf("head clone URL %q, merge SHA %q", ev.PR.HeadRepo.CloneURL, ev.PR.MergeSHA)
			}
			if want := "https://github.com/acme/model/pull/" + strconv.Itoa(tt.opts.Number); ev.PR.URL != want {
				t.Errorf("PR.URL = %q, want %q", ev.PR.URL, want)
			}
			// Fork and base must differ in id exactly when they differ in name.
			if tt.want.Fork == (ev.PR.HeadRepo.ID == ev.Repo.ID) {
				t.Errorf("head repo id %d, base id %d, fork %v", ev.PR.HeadRepo.ID, ev.Repo.ID, tt.want.Fork)
			}
			if (ev.PR.State == "closed") != (tt.opts.Action == "closed") {
				t.Errorf("State = %q for action %q", ev.PR.State, tt.opts.Action)
			}
			assertKeeps(t, body, "Codertocat/Hello-World", "installation", "pull_request.diff_url", "pull_request._links", "pull_request.requested_reviewers")
			if strings.Contains(string(body), "/pull/2\"") || strings.Contains(string(body), "/pulls/2\"") {
				t.Error("payload still links the template's pull request number")
			}
		})
	}
}

func TestIssueCommentPayloadRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		opts IssueCommentOptions
		want keyFields
	}{
		{
			name: "on pull request",
			opts: IssueCommentOptions{Number: 9, Repo: "acme/model", OnPullRequest: true, IssueAuthor: "alice", CommentID: 777, Body: "/deploy staging", Author: "maintainer", AuthorAssociation: "MEMBER"},
			want: keyFields{Kind: bot.KindComment, Action: bot.ActionCreated, Repo: "acme/model", Sender: "maintainer", Number: 9, Author: "alice", CommentID: 777, CommentAuthor: "maintainer", OnPR: true},
		},
		{
			name: "on issue, edited",
			opts: IssueCommentOptions{Action: "edited", Number: 2, Repo: "acme/model", CommentID: 5, Body: "/retrain", Author: "bob"},
			want: keyFields{Kind: bot.KindComment, Action: bot.ActionEdited, Repo: "acme/model", Sender: "bob", Number: 2, Author: "bob", CommentID: 5, CommentAuthor: "bob"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := IssueCommentPayload(tt.opts)
			ev := parse(t, "issue_comment", body)
			if got := keyOf(ev); got != tt.want {
				t.Errorf("key fields\n got %+v\nwant %+v", got, tt.want)
			}
			if ev.Comment.Body != tt.opts.Body {
				t.Errorf("Comment.Body = %q", ev.Comment.Body)
			}
			assertKeeps(t, body, "runatlantis/atlantis-tests", "issue.labels", "comment.node_id", "repository.clone_url")
		})
	}
	a := parse(t, "issue_comment", IssueCommentPayload(IssueCommentOptions{Body: "x"}))
	b := parse(t, "issue_comment", IssueCommentPayload(IssueCommentOptions{Body: "x"}))
	if a.Comment.ID <= 0 || a.Comment.ID == b.Comment.ID {
		t.Errorf("default comment ids %d, %d: want distinct positive ids", a.Comment.ID, b.Comment.ID)
	}
}

// assertKeeps checks that the template's other fields survived and that
// its repository name did not.
func assertKeeps(t *testing.T, body []byte, templateRepo string, paths ...string) {
	t.Helper()
	if strings.Contains(string(body), templateRepo) {
		t.Errorf("payload still names the template repository %s", templateRepo)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if getPath(m, strings.Split(p, ".")...) == nil {
			t.Errorf("payload lost %s", p)
		}
	}
}

// TestDeliveryRequest posts a built delivery to a server running the
// Webhook and checks it authenticates and identifies like a real one.
func TestDeliveryRequest(t *testing.T) {
	secret := []byte("demo-secret")
	w := &Webhook{Secret: secret}
	type seen struct {
		delivery, event string
		authErr         error
		ev              *bot.Event
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var s seen
		s.authErr = w.Authenticate(r.Header, body)
		s.delivery, s.event = w.Identify(r.Header, body)
		s.ev, _ = w.Parse(s.event, body)
		got <- s
		rw.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()

	body := PushPayload(PushOptions{Repo: "acme/model", After: shaB})
	req := NewDeliveryRequest(srv.URL+"/webhooks/github", "push", body, secret)
	if !strings.HasPrefix(req.Header.Get("User-Agent"), "GitHub-Hookshot/") || req.Header.Get("Content-Type") != "application/json" ||
		!strings.HasPrefix(req.Header.Get("X-Hub-Signature"), "sha1=") {
		t.Errorf("headers = %v", req.Header)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	s := <-got
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	if s.authErr != nil || s.event != "push" || !uuid.MatchString(s.delivery) || s.ev == nil || s.ev.SHA != shaB {
		t.Errorf("server saw %+v", s)
	}
	if other := NewDeliveryRequest(srv.URL, "push", body, secret); other.Header.Get("X-GitHub-Delivery") == req.Header.Get("X-GitHub-Delivery") {
		t.Error("two deliveries share an id")
	}
	if unsigned := NewDeliveryRequest(srv.URL, "push", body, nil); unsigned.Header.Get("X-Hub-Signature-256") != "" {
		t.Error("a delivery without a secret is signed")
	}
}
