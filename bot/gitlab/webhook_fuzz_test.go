package gitlab

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/bot/bottest"
)

// FuzzParse feeds Webhook.Parse (and, for System Hooks, Precheck) every
// real payload under testdata/fixtures/gitlab, each with its X-Gitlab-Event
// and again as a System Hook, the bodies of TestParseMalformed and
// TestParseSystemHook, and what the fuzzer derives from them. Besides
// never panicking, a parse must be deterministic, agree with Precheck
// about what is routed, give an event whose fields agree with one another
// (see checkFuzzedEvent), and survive the JSON round trip of the task queue.
func FuzzParse(f *testing.F) {
	entries, err := os.ReadDir(fixtureDir)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		prefix, _, _ := strings.Cut(e.Name(), ".")
		if _, ok := eventHeader[prefix]; !ok || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		body, err := os.ReadFile(fixtureDir + "/" + e.Name())
		if err != nil {
			f.Fatal(err)
		}
		f.Add(eventHeader[prefix], body)
		f.Add(EventSystem, body)
	}
	for _, s := range []struct{ event, body string }{
		{EventPush, ""},
		{EventPush, "[1,2]"},
		{EventPush, `{"ref":7}`},
		{EventMergeRequest, `{"object_attributes":{"iid":"one"}}`},
		{EventNote, `{"object_attributes":{"id":"x"}}`},
		{EventSystem, `{"object_kind":"push","ref":7}`},
		{EventSystem, `{"event_name":"repository_update","user_id":1,"project_id":2,"changes":[]}`},
		{EventSystem, `{"event_name":"push","ref":"refs/heads/main","after":"` + zeroSHA + `","project":{"path_with_namespace":"g/p","web_url":"https://gl.example.com:8443/g/p"}}`},
		{EventMergeRequest, `{"object_attributes":{"iid":4,"action":"update","source_project_id":1,"target_project_id":2},"changes":{"title":{"previous":"Draft: x","current":"x"}}}`},
		{EventMergeRequest, `{"object_attributes":{"action":"merge","merge_commit_sha":"abc","updated_at":"2020-12-08 04:15:39 +0200"}}`},
		{EventNote, `{"object_attributes":{"noteable_type":"MergeRequest","action":"update"},"merge_request":{"iid":3}}`},
		{"Tag Push Hook", `{"ref":"refs/tags/v1"}`},
	} {
		f.Add(s.event, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, eventType string, body []byte) {
		w := &Webhook{}
		ev, err := w.Parse(eventType, body)
		pre := w.Precheck(eventType, body)
		if err != nil {
			if ev != nil {
				t.Fatalf("Parse returned an event and an error: %v", err)
			}
			if !strings.HasPrefix(err.Error(), "gitlab: ") {
				t.Fatalf("error %q does not say where it comes from", err)
			}
			return
		}
		if ev == nil {
			t.Fatal("Parse returned neither an event nor an error")
		}
		checkFuzzedEvent(t, eventType, ev)
		if eventType == EventSystem {
			// What Precheck lets through before queueing is what Parse
			// routes after: a routed kind must never be dropped at the
			// door, nor an ignored one reach a worker as routable.
			routed := ev.Kind == bot.KindPush || ev.Kind == bot.KindPullRequest
			switch {
			case routed && pre != nil:
				t.Fatalf("Parse routes a %s, Precheck refuses it: %v", ev.Kind, pre)
			case !routed && pre == nil:
				t.Fatalf("Precheck admits a System Hook that Parse makes %s", ev.Kind)
			case pre != nil && !errors.Is(pre, bot.ErrIgnoredEvent) && (ev.Repo != bot.Repo{}):
				// Only a body naming no kind at all is refused outright
				// (400), and such a body is no event of a repository.
				t.Fatalf("Precheck refuses a body Parse reads as a %s of %+v: %v", ev.Kind, ev.Repo, pre)
			}
		} else if pre != nil {
			t.Fatalf("Precheck refused a %q event: %v", eventType, pre)
		}
		again, err := w.Parse(eventType, body)
		if err != nil || !reflect.DeepEqual(ev, again) {
			t.Fatalf("second parse differs:\n%+v\n%+v (err %v)", ev, again, err)
		}
		bottest.RoundTrip(t, ev)
	})
}

func checkFuzzedEvent(t *testing.T, eventType string, ev *bot.Event) {
	t.Helper()
	if ev.Forge != ForgeName || ev.Type != eventType {
		t.Fatalf("Forge %q Type %q, want %q %q", ev.Forge, ev.Type, ForgeName, eventType)
	}
	want := map[string]bot.Kind{EventPush: bot.KindPush, EventMergeRequest: bot.KindPullRequest, EventNote: bot.KindComment}[eventType]
	switch {
	case eventType == EventSystem:
		if ev.Kind == bot.KindPing || ev.Kind == bot.KindCheck {
			t.Fatalf("System Hook normalised to kind %q", ev.Kind)
		}
	case want == "" && ev.Kind != bot.KindOther:
		t.Fatalf("unrouted event %q normalised to kind %q", eventType, ev.Kind)
	case want != "" && ev.Kind != want:
		t.Fatalf("event %q normalised to kind %q, want %q", eventType, ev.Kind, want)
	}
	if ev.Delivery != "" || !ev.Received.IsZero() {
		t.Fatal("Parse filled Delivery or Received, which come from the request")
	}
	if ev.Check != nil {
		t.Fatal("GitLab event with a check request")
	}
	checkRepo(t, "repo", ev.Repo)
	switch ev.Kind {
	case bot.KindPush:
		if ev.PR != nil || ev.Comment != nil {
			t.Fatal("push event carries a pull request or comment")
		}
		if name, ok := strings.CutPrefix(ev.Ref, "refs/tags/"); ok && name != "" {
			if !ev.Tag || ev.Branch != "" {
				t.Fatalf("tag ref %q gave tag %v branch %q", ev.Ref, ev.Tag, ev.Branch)
			}
		} else if ev.Tag || ev.Branch != strings.TrimPrefix(ev.Ref, "refs/heads/") {
			t.Fatalf("ref %q gave tag %v branch %q", ev.Ref, ev.Tag, ev.Branch)
		}
		if ev.Deleted != (ev.SHA == zeroSHA) {
			t.Fatalf("SHA %q but deleted %v", ev.SHA, ev.Deleted)
		}
	case bot.KindPullRequest:
		if ev.PR == nil || ev.Comment != nil {
			t.Fatalf("merge request event: PR %v comment %v", ev.PR, ev.Comment)
		}
		checkPR(t, ev.PR)
		if (ev.Action == bot.ActionMerged) != ev.PR.Merged {
			t.Fatalf("action %q but merged %v", ev.Action, ev.PR.Merged)
		}
		if ev.PR.MergeSHA != "" && !ev.PR.Merged {
			t.Fatal("merge SHA on an unmerged merge request")
		}
	case bot.KindComment:
		if ev.Comment == nil {
			t.Fatal("note event without a comment")
		}
		if ev.Comment.Author != ev.Sender {
			t.Fatalf("comment author %q, sender %q", ev.Comment.Author, ev.Sender)
		}
		if ev.PR != nil {
			if !ev.Comment.OnPullRequest {
				t.Fatal("a note on something else carries a merge request")
			}
			checkPR(t, ev.PR)
		}
		bottest.CheckTime(t, "comment created", ev.Comment.Created)
	default:
		if ev.PR != nil || ev.Comment != nil || ev.Kind != bot.KindOther || ev.Action != bot.ActionOther {
			t.Fatalf("unrouted event: kind %q action %q PR %v comment %v", ev.Kind, ev.Action, ev.PR, ev.Comment)
		}
	}
}

// checkRepo asserts a repository is GitLab's, or empty when the payload
// named none at all, and that its host is a host[:port] an allowlist can
// match.
func checkRepo(t *testing.T, what string, r bot.Repo) {
	t.Helper()
	if r.Forge != ForgeName && r != (bot.Repo{}) {
		t.Fatalf("%s: forge %q in %+v", what, r.Forge, r)
	}
	if strings.ContainsAny(r.Host, "/@?#") {
		t.Fatalf("%s: host %q is not a host name", what, r.Host)
	}
}

func checkPR(t *testing.T, pr *bot.PullRequest) {
	t.Helper()
	checkRepo(t, "head repo", pr.HeadRepo)
	bottest.CheckTime(t, "merge request updated", pr.Updated)
	if pr.BaseSHA != "" {
		t.Fatalf("base SHA %q: GitLab merge request payloads carry none", pr.BaseSHA)
	}
}
