package gitlab

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mlbot/mlbot/bot"
)

const (
	headSHA = "1111111111111111111111111111111111111111"
	baseSHA = "2222222222222222222222222222222222222222"
	demoWeb = "http://127.0.0.1:9999/git/acme/model"
)

func TestPushPayloadRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		opts PushOptions
		want bot.Event
	}{
		{
			name: "branch push",
			opts: PushOptions{ProjectID: 7, Path: "acme/model", WebURL: demoWeb, CloneURL: demoWeb + ".git",
				DefaultBranch: "main", Before: baseSHA, After: headSHA, User: "alice"},
			want: bot.Event{Kind: bot.KindPush, Ref: "refs/heads/main", Branch: "main", Before: baseSHA, SHA: headSHA, Sender: "alice",
				Repo: bot.Repo{Forge: "gitlab", ID: 7, FullName: "acme/model", CloneURL: demoWeb + ".git", DefaultBranch: "main",
					WebURL: demoWeb, Host: "127.0.0.1:9999"}},
		},
		{
			name: "derived URLs and deletion",
			opts: PushOptions{ProjectID: 8, Path: "acme/sub/model", Ref: "refs/heads/feature", Before: headSHA, After: zeroSHA},
			want: bot.Event{Kind: bot.KindPush, Ref: "refs/heads/feature", Branch: "feature", Before: headSHA, SHA: zeroSHA, Deleted: true,
				Sender: "sytses", Repo: bot.Repo{Forge: "gitlab", ID: 8, FullName: "acme/sub/model", CloneURL: "https://gitlab.com/acme/sub/model.git",
					DefaultBranch: "master", WebURL: "https://gitlab.com/acme/sub/model", Host: "gitlab.com"}},
		},
		{
			name: "all defaults keep the recorded project",
			opts: PushOptions{},
			want: bot.Event{Kind: bot.KindPush, Ref: "refs/heads/master", Branch: "master", Before: zeroSHA, SHA: adc9, Sender: "sytses",
				Repo: bot.Repo{Forge: "gitlab", ID: helloID, FullName: helloWorld, CloneURL: "https://gitlab.com/gitlab-org/hello-world.git",
					DefaultBranch: "master", WebURL: "https://gitlab.com/gitlab-org/hello-world", Host: "gitlab.com"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := PushPayload(tt.opts)
			ev, err := (&Webhook{}).Parse(EventPush, body)
			if err != nil {
				t.Fatal(err)
			}
			tt.want.Forge, tt.want.Type = "gitlab", EventPush
			if got := *ev; got != tt.want {
				t.Errorf("Parse =\n%+v\nwant\n%+v", got, tt.want)
			}
			var raw map[string]any
			json.Unmarshal(body, &raw)
			if tt.opts.After == zeroSHA && (raw["checkout_sha"] != nil || raw["total_commits_count"] != float64(0)) {
				t.Errorf("deletion carries checkout_sha %v and %v commits", raw["checkout_sha"], raw["total_commits_count"])
			}
		})
	}
}

func TestMergeRequestPayloadRoundTrip(t *testing.T) {
	base := MergeRequestOptions{
		IID: 5, ProjectID: 7, Path: "acme/model", WebURL: demoWeb, CloneURL: demoWeb + ".git", DefaultBranch: "main",
		SourceBranch: "tune-lr", LastCommit: headSHA, Author: "alice",
	}
	with := func(f func(*MergeRequestOptions)) MergeRequestOptions {
		o := base
		f(&o)
		return o
	}
	tests := []struct {
		name     string
		opts     MergeRequestOptions
		action   bot.Action
		author   string
		fork     bool
		draft    bool
		merged   bool
		headRepo string
		state    string
	}{
		{"open", base, bot.ActionOpened, "alice", false, false, false, "acme/model", "opened"},
		{"reopen", with(func(o *MergeRequestOptions) { o.Action = "reopen" }), bot.ActionReopened, "", false, false, false, "acme/model", "opened"},
		{"new commit", with(func(o *MergeRequestOptions) { o.Action, o.OldRev = "update", baseSHA }), bot.ActionUpdated, "", false, false, false, "acme/model", "opened"},
		{"title edit", with(func(o *MergeRequestOptions) { o.Action = "update" }), bot.ActionEdited, "", false, false, false, "acme/model", "opened"},
		{"ready", with(func(o *MergeRequestOptions) { o.Action, o.ChangesDraft = "update", &[2]bool{true, false} }),
			bot.ActionReady, "", false, false, false, "acme/model", "opened"},
		{"made draft", with(func(o *MergeRequestOptions) {
			o.Action, o.Draft, o.ChangesDraft = "update", true, &[2]bool{false, true}
		}), bot.ActionEdited, "", false, true, false, "acme/model", "opened"},
		{"close", with(func(o *MergeRequestOptions) { o.Action = "close" }), bot.ActionClosed, "", false, false, false, "acme/model", "closed"},
		{"merge", with(func(o *MergeRequestOptions) { o.Action = "merge" }), bot.ActionMerged, "", false, false, true, "acme/model", "merged"},
		{"fork", with(func(o *MergeRequestOptions) {
			o.SourceProjectID, o.SourcePath = 99, "mallory/model"
		}), bot.ActionOpened, "alice", true, false, false, "mallory/model", "opened"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := (&Webhook{}).Parse(EventMergeRequest, MergeRequestPayload(tt.opts))
			if err != nil {
				t.Fatal(err)
			}
			pr := ev.PR
			if ev.Kind != bot.KindPullRequest || ev.Action != tt.action || ev.Sender != "alice" {
				t.Fatalf("kind %q action %q sender %q, want %q", ev.Kind, ev.Action, ev.Sender, tt.action)
			}
			if ev.Repo.ID != 7 || ev.Repo.FullName != "acme/model" || ev.Repo.CloneURL != demoWeb+".git" || ev.Repo.Host != "127.0.0.1:9999" {
				t.Errorf("Repo = %+v", ev.Repo)
			}
			if pr.Number != 5 || pr.HeadSHA != headSHA || pr.HeadRef != "tune-lr" || pr.BaseRef != "main" || pr.BaseSHA != "" ||
				pr.URL != demoWeb+"/-/merge_requests/5" || pr.State != tt.state {
				t.Errorf("PR = %+v", pr)
			}
			if pr.Author != tt.author || pr.Fork != tt.fork || pr.Draft != tt.draft || pr.Merged != tt.merged || pr.HeadRepo.FullName != tt.headRepo {
				t.Errorf("PR = %+v, want author %q fork %v draft %v merged %v head repo %s", pr, tt.author, tt.fork, tt.draft, tt.merged, tt.headRepo)
			}
			if tt.merged && pr.MergeSHA != headSHA {
				t.Errorf("MergeSHA = %q", pr.MergeSHA)
			}
			if tt.fork {
				// Without SourceCloneURL the fork's URL is derived on the target's host.
				if pr.HeadRepo.ID != 99 || pr.HeadRepo.CloneURL != "http://127.0.0.1:9999/mallory/model.git" {
					t.Errorf("HeadRepo = %+v", pr.HeadRepo)
				}
			}
			if tt.draft != strings.HasPrefix(pr.Title, "Draft: ") {
				t.Errorf("Title = %q with draft %v", pr.Title, tt.draft)
			}
		})
	}
}

func TestNotePayloadRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		opts   NoteOptions
		action bot.Action
		onMR   bool
	}{
		{"on merge request", NoteOptions{NoteID: 77, Body: "/deploy staging", Author: "maria", IID: 5, ProjectID: 7, Path: "acme/model",
			WebURL: demoWeb, SourceBranch: "tune-lr", LastCommit: headSHA}, bot.ActionCreated, true},
		{"edited", NoteOptions{Action: "update", NoteID: 77, Body: "/deploy production", Author: "maria", IID: 5, ProjectID: 7,
			Path: "acme/model", WebURL: demoWeb, LastCommit: headSHA}, bot.ActionEdited, true},
		{"legacy shape", NoteOptions{Legacy: true, NoteID: 77, Body: "/retrain", Author: "maria", IID: 5, ProjectID: 7,
			Path: "acme/model", WebURL: demoWeb, LastCommit: headSHA}, bot.ActionCreated, true},
		{"on issue", NoteOptions{OnIssue: true, NoteID: 78, Body: "/deploy", Author: "maria", IID: 5, ProjectID: 7,
			Path: "acme/model", WebURL: demoWeb}, bot.ActionCreated, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := NotePayload(tt.opts)
			ev, err := (&Webhook{}).Parse(EventNote, body)
			if err != nil {
				t.Fatal(err)
			}
			c := ev.Comment
			if ev.Kind != bot.KindComment || ev.Action != tt.action || c.ID != tt.opts.NoteID || c.Body != tt.opts.Body ||
				c.Author != "maria" || c.OnPullRequest != tt.onMR || ev.Repo.FullName != "acme/model" || ev.Repo.ID != 7 {
				t.Fatalf("Parse = %+v comment %+v", ev, c)
			}
			if !tt.onMR {
				if ev.PR != nil {
					t.Errorf("issue note has PR %+v", ev.PR)
				}
				return
			}
			if ev.PR == nil || ev.PR.Number != 5 || ev.PR.HeadSHA != headSHA || ev.PR.BaseRef != "master" {
				t.Errorf("PR = %+v", ev.PR)
			}
			if tt.opts.Legacy && (strings.Contains(string(body), `"event_type"`) || strings.Contains(string(body), `"action"`)) {
				t.Error("legacy payload carries event_type or action")
			}
		})
	}
}

// TestDeliveryRequest sends builder output through a real server the way
// the webhook endpoint will check it.
func TestDeliveryRequest(t *testing.T) {
	wh := &Webhook{Secret: []byte("hook-secret")}
	type seen struct {
		auth            error
		delivery, event string
		header          http.Header
		ev              *bot.Event
	}
	got := make(chan seen, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s := seen{auth: wh.Authenticate(r.Header, body), header: r.Header}
		s.delivery, s.event = wh.Identify(r.Header, body)
		s.ev, _ = wh.Parse(s.event, body)
		got <- s
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()

	body := MergeRequestPayload(MergeRequestOptions{ProjectID: 7, Path: "acme/model", WebURL: demoWeb, LastCommit: headSHA})
	for _, token := range []string{"hook-secret", "wrong"} {
		resp, err := srv.Client().Do(NewDeliveryRequest(srv.URL+"/webhooks/gitlab", EventMergeRequest, body, token))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		s := <-got
		if (s.auth == nil) != (token == "hook-secret") {
			t.Errorf("token %q: Authenticate = %v", token, s.auth)
		}
		if s.event != EventMergeRequest || len(s.delivery) != 36 || s.delivery != s.header.Get("Idempotency-Key") {
			t.Errorf("Identify = %q, %q", s.delivery, s.event)
		}
		if s.header.Get("X-Gitlab-Event-UUID") == s.delivery || !strings.HasPrefix(s.header.Get("User-Agent"), "GitLab/17.") ||
			s.header.Get("Content-Type") != "application/json" || s.header.Get("X-Gitlab-Instance") != "http://127.0.0.1:9999" {
			t.Errorf("headers %v", s.header)
		}
		if s.ev == nil || s.ev.Kind != bot.KindPullRequest || s.ev.PR.HeadSHA != headSHA {
			t.Errorf("Parse = %+v", s.ev)
		}
	}
	if a, b := newUUID(), newUUID(); a == b || a[14] != '4' {
		t.Errorf("newUUID = %s, %s", a, b)
	}
}

// TestEmbeddedPayloadsUnchanged guards the README's promise that the
// embedded files are the recorded bytes.
func TestEmbeddedPayloadsUnchanged(t *testing.T) {
	entries, err := payloadFS.ReadDir("payloads")
	if err != nil || len(entries) == 0 {
		t.Fatalf("embedded payloads: %v", err)
	}
	for _, e := range entries {
		embedded, _ := payloadFS.ReadFile("payloads/" + e.Name())
		_, original := readFixture(t, e.Name())
		if string(embedded) != string(original) {
			t.Errorf("payloads/%s differs from testdata/fixtures/gitlab/%s", e.Name(), e.Name())
		}
	}
}
