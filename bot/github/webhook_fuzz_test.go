package github

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/bot/bottest"
)

// FuzzParse feeds Webhook.Parse every real payload under
// testdata/fixtures/github with its X-GitHub-Event, the malformed bodies
// of TestParseErrors, and what the fuzzer derives from them. Besides never
// panicking, a parse must be deterministic, give an event whose fields
// agree with one another (see checkEvent), and survive the JSON round trip
// the event's parts make through the task queue unchanged.
func FuzzParse(f *testing.F) {
	entries, err := os.ReadDir(fixtureDir)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		f.Add(eventType(e.Name()), readFixture(f, e.Name()))
	}
	for _, s := range []struct{ event, body string }{
		{"push", `{"ref":`},
		{"pull_request", `not json`},
		{"pull_request", `{"action":"opened"}`},
		{"issue_comment", `{"action":"created","issue":{"number":1}}`},
		{"issue_comment", `[]`},
		{"check_run", `{"repository":`},
		{"push", `{"ref":"refs/tags/v1","after":"0000000000000000000000000000000000000000","repository":{"full_name":"a/b","html_url":"https://github.com/a/b"}}`},
		{"pull_request", `{"action":"closed","pull_request":{"merged":true,"head":{"repo":null},"base":{"repo":{"full_name":"A/B"}}}}`},
		{"check_run", `{"action":"requested_action","check_run":{"id":1},"requested_action":{"identifier":""}}`},
		{"installation", `{"action":"created"}`},
	} {
		f.Add(s.event, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, eventType string, body []byte) {
		w := &Webhook{}
		ev, err := w.Parse(eventType, body)
		if err != nil {
			if ev != nil {
				t.Fatalf("Parse returned an event and an error: %v", err)
			}
			if !strings.HasPrefix(err.Error(), "github webhook: ") {
				t.Fatalf("error %q does not say where it comes from", err)
			}
			return
		}
		if ev == nil {
			t.Fatal("Parse returned neither an event nor an error")
		}
		checkEvent(t, eventType, ev)
		again, err := w.Parse(eventType, body)
		if err != nil || !reflect.DeepEqual(ev, again) {
			t.Fatalf("second parse differs:\n%+v\n%+v (err %v)", ev, again, err)
		}
		bottest.RoundTrip(t, ev)
	})
}

// wantKind is the Kind each X-GitHub-Event must normalise to; check_run
// and check_suite may be either KindCheck or KindOther depending on their
// action.
func wantKind(eventType string) []bot.Kind {
	switch eventType {
	case "push":
		return []bot.Kind{bot.KindPush}
	case "pull_request":
		return []bot.Kind{bot.KindPullRequest}
	case "issue_comment":
		return []bot.Kind{bot.KindComment}
	case "check_run", "check_suite":
		return []bot.Kind{bot.KindCheck, bot.KindOther}
	case "ping":
		return []bot.Kind{bot.KindPing}
	}
	return []bot.Kind{bot.KindOther}
}

func checkEvent(t *testing.T, eventType string, ev *bot.Event) {
	t.Helper()
	if ev.Forge != ForgeName || ev.Type != eventType {
		t.Fatalf("Forge %q Type %q, want %q %q", ev.Forge, ev.Type, ForgeName, eventType)
	}
	if !contains(wantKind(eventType), ev.Kind) {
		t.Fatalf("event %q normalised to kind %q", eventType, ev.Kind)
	}
	if ev.Delivery != "" || !ev.Received.IsZero() {
		t.Fatal("Parse filled Delivery or Received, which come from the request")
	}
	checkRepo(t, "repo", ev.Repo, ev.Kind == bot.KindOther || ev.Kind == bot.KindPing)
	switch ev.Kind {
	case bot.KindPush:
		if ev.PR != nil || ev.Comment != nil || ev.Check != nil {
			t.Fatal("push event carries a pull request, comment or check")
		}
		branch, isBranch := strings.CutPrefix(ev.Ref, "refs/heads/")
		if isBranch != (ev.Branch != "" || ev.Ref == "refs/heads/") || (isBranch && branch != ev.Branch) {
			t.Fatalf("ref %q gave branch %q", ev.Ref, ev.Branch)
		}
		if ev.Tag != strings.HasPrefix(ev.Ref, "refs/tags/") || (ev.Tag && ev.Branch != "") {
			t.Fatalf("ref %q gave tag %v branch %q", ev.Ref, ev.Tag, ev.Branch)
		}
		if ev.SHA == zeroSHA && !ev.Deleted {
			t.Fatal("a push to the zero SHA is not marked deleted")
		}
	case bot.KindPullRequest:
		if ev.PR == nil || ev.Comment != nil || ev.Check != nil {
			t.Fatalf("pull_request event: PR %v comment %v check %v", ev.PR, ev.Comment, ev.Check)
		}
		checkPR(t, ev.PR)
		if ev.PR.HeadRepo.FullName == "" && !ev.PR.Fork {
			// An unknowable head (deleted fork) must never be trusted.
			t.Fatal("a pull request whose head repository is unknown is not a fork")
		}
		if ev.Action == bot.ActionMerged && !ev.PR.Merged {
			t.Fatal("action merged on an unmerged pull request")
		}
	case bot.KindComment:
		if ev.Comment == nil || ev.PR == nil || ev.Check != nil {
			t.Fatalf("comment event: comment %v PR %v check %v", ev.Comment, ev.PR, ev.Check)
		}
		bottest.CheckTime(t, "comment created", ev.Comment.Created)
		if !contains([]bot.Action{bot.ActionCreated, bot.ActionEdited, bot.ActionDeleted, bot.ActionOther}, ev.Action) {
			t.Fatalf("comment action %q", ev.Action)
		}
	case bot.KindCheck:
		if ev.Check == nil || ev.Comment != nil {
			t.Fatalf("check event: check %v comment %v", ev.Check, ev.Comment)
		}
		if ev.Action == bot.ActionRequestedAction && ev.Check.Identifier == "" {
			t.Fatal("a pressed button without an identifier")
		}
		if ev.Action != bot.ActionRequestedAction && ev.Action != bot.ActionRerequested {
			t.Fatalf("check action %q", ev.Action)
		}
		bottest.CheckTime(t, "check updated", ev.Check.Updated)
		if ev.PR != nil && (ev.PR.HeadRepo != bot.Repo{} || ev.PR.Fork || ev.PR.Author != "") {
			// A check names its pull request only by number, head and
			// base: who wrote it and from where comes from stored events.
			t.Fatalf("check event claims to know its pull request's author or head repository: %+v", ev.PR)
		}
	default:
		if ev.PR != nil || ev.Comment != nil || ev.Check != nil {
			t.Fatalf("%s event carries routed parts", ev.Kind)
		}
	}
}

// checkRepo asserts a repository is either empty (allowed only where
// mayBeEmpty) or marked as GitHub's, with a host that is its web URL's.
func checkRepo(t *testing.T, what string, r bot.Repo, mayBeEmpty bool) {
	t.Helper()
	if r == (bot.Repo{}) {
		if !mayBeEmpty {
			t.Fatalf("%s: empty repository, not even its forge", what)
		}
		return
	}
	if r.Forge != ForgeName {
		t.Fatalf("%s: forge %q", what, r.Forge)
	}
	if r.WebURL == "" && r.Host != "" {
		t.Fatalf("%s: host %q without a web URL", what, r.Host)
	}
	if strings.ContainsAny(r.Host, "/@?#") {
		t.Fatalf("%s: host %q is not a host name", what, r.Host)
	}
}

func checkPR(t *testing.T, pr *bot.PullRequest) {
	t.Helper()
	checkRepo(t, "head repo", pr.HeadRepo, false)
	bottest.CheckTime(t, "pull request updated", pr.Updated)
}

func contains[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
