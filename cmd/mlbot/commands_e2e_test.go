package main

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/mlbot/mlbot/bot/forgesim"
	"github.com/mlbot/mlbot/configs"
)

// say posts a comment on pull request 1 as author and waits until mlbot
// has handled it.
func (e *e2e) say(author, body string) commentEvent {
	e.t.Helper()
	ev := commentEvent{Body: body, Author: author, Association: "CONTRIBUTOR", HeadRef: "feature"}
	req := e.sb.comment(e.hook, ev)
	e.send(req, http.StatusAccepted)
	e.settle()
	return ev
}

// replies lists mlbot's replies in the thread of pull request 1.
func (e *e2e) replies() []string {
	var out []string
	for _, c := range e.sb.comments(1) {
		if strings.HasPrefix(c.Body, "<!-- mlbot:reply -->") {
			out = append(out, c.Body)
		}
	}
	return out
}

// lastReply fails the test unless mlbot's newest reply contains want.
func (e *e2e) lastReply(want string) {
	e.t.Helper()
	r := e.replies()
	if len(r) == 0 || !strings.Contains(r[len(r)-1], want) {
		e.t.Fatalf("last reply does not contain %q; replies: %q", want, r)
	}
}

// reactions returns the reactions on the newest comment by author.
func (e *e2e) reactions(author string) []string {
	var out []string
	for _, c := range e.sb.comments(1) {
		if c.Author == author {
			out = c.Reactions
		}
	}
	return out
}

// TestCommandsAndTrust drives the comment commands and the trust model on
// both forges through real webhooks.
func TestCommandsAndTrust(t *testing.T) {
	scenarios := []struct {
		name  string
		tweak func(*configs.Server)
		run   func(t *testing.T, e *e2e)
	}{
		{"fork waits for /ok-to-test, runs once approved, waits again on a new push", nil, func(t *testing.T, e *e2e) {
			e.baseline("0.90")
			before := e.trainings()
			fork := func(action, sha, old string) *http.Request {
				return e.sb.pr(e.hook, prEvent{Action: action, HeadRef: "feature", HeadSHA: sha, BaseSHA: e.mainSHA, OldRev: old, Fork: true, Author: "mallory", Association: "NONE"})
			}
			h1 := e.commit("feature", map[string]string{"params": "0.91\n"}, "from a fork")
			e.send(fork("opened", h1, ""), http.StatusAccepted)
			e.settle()
			if cs := e.mlbotComments(1); len(cs) != 1 || !strings.Contains(cs[0].Body, "/ok-to-test") {
				t.Fatalf("comments %+v, want one saying it waits for /ok-to-test", cs)
			}
			e.say("rita", "/ok-to-test")
			e.lastReply("needs write permission")
			if n := e.trainings() - before; n != 0 {
				t.Fatalf("%d trainings before approval", n)
			}
			e.say("alice", "/ok-to-test")
			if st := e.final(h1); st.State != "success" {
				t.Fatalf("approved head: status %+v", st)
			}
			e.lastReply("Approved")
			if r := e.reactions("alice"); !slices.Contains(r, "eyes") {
				t.Errorf("the accepted command got reactions %v, want eyes", r)
			}
			h2 := e.commit("feature", map[string]string{"params": "0.95\n"}, "sneaky follow-up")
			e.send(fork("updated", h2, h1), http.StatusAccepted)
			e.settle()
			if n := e.trainings() - before; n != 1 {
				t.Errorf("%d trainings, want 1: a new push needs a new approval", n)
			}
			if ss := e.sb.statuses(h2); len(ss) != 1 || ss[0].State != "pending" {
				t.Errorf("new push statuses %+v, want waiting", ss)
			}
			if cs := e.mlbotComments(1); len(cs) != 1 || !strings.Contains(cs[0].Body, "/ok-to-test") {
				t.Errorf("comment does not say the new push waits: %+v", cs)
			}
		}},
		{"commands accepted and refused by permission", nil, func(t *testing.T, e *e2e) {
			e.baseline("0.90")
			h := e.commit("feature", map[string]string{"params": "0.91\n"}, "change")
			e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
			e.final(h)
			e.settle()
			before := e.trainings()
			e.say("rita", "/retrain")
			e.lastReply("needs write permission")
			if r := e.reactions("rita"); len(r) != 0 {
				t.Errorf("refused command got reactions %v", r)
			}
			e.say("alice", "Looks good, one more time please:\n/retrain")
			e.lastReply("Retraining")
			if n := e.trainings() - before; n != 1 {
				t.Errorf("/retrain trained %d times, want 1", n)
			}
			if r := e.reactions("alice"); !slices.Contains(r, "eyes") {
				t.Errorf("accepted command got reactions %v, want eyes", r)
			}
			e.say("alice", "/deploy staging")
			e.lastReply("needs maintain permission")
			e.say("maria", "/deploy staging")
			e.lastReply("not configured")
			e.say("alice", "/frobnicate")
			e.lastReply("`/retrain`")
			e.say("alice", "/help")
			e.lastReply("| `/ok-to-test` |")
			n := len(e.replies())
			// Neither an edited comment nor a comment on an issue is a command.
			e.send(e.sb.comment(e.hook, commentEvent{Body: "/retrain", Author: "alice", Action: "edited"}), http.StatusAccepted)
			e.send(e.sb.comment(e.hook, commentEvent{Body: "/retrain", Author: "alice", OnIssue: true}), http.StatusAccepted)
			e.settle()
			if got := len(e.replies()); got != n {
				t.Errorf("edited or issue comments were answered")
			}
			if n := e.trainings() - before; n != 1 {
				t.Errorf("%d trainings, want 1", n)
			}
		}},
		{"a pull request whose opening mlbot never saw runs for a trusted author", nil, func(t *testing.T, e *e2e) {
			e.baseline("0.90")
			h := e.commit("feature", map[string]string{"params": "0.91\n"}, "change")
			e.send(e.prEvent("updated", h, e.mainSHA), http.StatusAccepted)
			if st := e.final(h); st.State != "success" {
				t.Fatalf("status %+v, want the trusted author's push to run", st)
			}
		}},
		{"a host error on the permission check refuses, never allows", nil, func(t *testing.T, e *e2e) {
			e.baseline("0.90")
			h := e.commit("feature", map[string]string{"params": "0.91\n"}, "change")
			e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
			e.final(h)
			e.settle()
			before := e.trainings()
			// GitLab's note hook names maria by id: her membership is read
			// directly, with no user search.
			path := map[string]string{"github": "/collaborators/maria/permission", "gitlab": "/members/all/"}[e.forge]
			e.sb.host.faults().Add(forgesim.Fault{PathSubstr: path, Status: http.StatusBadGateway})
			e.say("maria", "/retrain")
			e.lastReply("could not check your permission")
			if n := e.trainings() - before; n != 0 {
				t.Errorf("%d trainings after a failed permission check", n)
			}
		}},
		{"/cancel stops the running training", nil, func(t *testing.T, e *e2e) {
			e.baseline("0.90")
			marker := uniqueMarker()
			slow := e.model("0.91")
			slow["train.sh"] = "sleep 60." + marker + " &\nwait\n"
			h := e.commit("feature", slow, "slow")
			e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
			pid := waitProc(t, marker)
			e.say("alice", "/cancel")
			if st := e.final(h); st.State != "error" && st.State != "canceled" {
				t.Errorf("status %+v, want cancelled", st)
			}
			assertGone(t, pid)
			e.lastReply("Cancelled")
		}},
		{"secrets reach trusted runs only and never show", func(c *configs.Server) {
			c.Secrets = map[string]string{"HF_TOKEN": "hf_s3cr3t_value_0123456789"}
		}, func(t *testing.T, e *e2e) {
			const secret = "hf_s3cr3t_value_0123456789"
			e.baseline("0.90")
			files := e.model("0.91")
			files[".mlbot.yml"] = strings.Replace(files[".mlbot.yml"], "  timeout: 1m\n", "  timeout: 1m\nsecrets: [HF_TOKEN]\n", 1)
			files["train.sh"] = "echo \"token=$HF_TOKEN len=${#HF_TOKEN}\"\nexit 3\n"
			h := e.commit("feature", files, "leaky")
			e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
			st := e.final(h)
			e.settle()
			cs := e.mlbotComments(1)
			if len(cs) != 1 || !strings.Contains(cs[0].Body, "token=*** len=26") {
				t.Fatalf("trusted run: comment %+v should show the masked secret and its length", cs)
			}
			page := httpGet(t, st.TargetURL)
			for _, where := range []string{cs[0].Body, st.Description, page} {
				if strings.Contains(where, secret) {
					t.Fatalf("secret leaked: %s", where)
				}
			}
			// An untrusted author's approved run gets no secret at all.
			h2 := e.commit("feature", map[string]string{"params": "0.92\n"}, "fork push")
			e.send(e.sb.pr(e.hook, prEvent{Action: "updated", HeadRef: "feature", HeadSHA: h2, BaseSHA: e.mainSHA, OldRev: h, Fork: true, Author: "mallory", Association: "NONE"}), http.StatusAccepted)
			e.settle()
			e.say("alice", "/ok-to-test")
			e.final(h2)
			e.settle()
			if cs := e.mlbotComments(1); len(cs) != 1 || !strings.Contains(cs[0].Body, "token= len=0") {
				t.Fatalf("untrusted run: comment %+v should show an empty secret", cs)
			}
		}},
	}
	for _, forge := range forges {
		for _, sc := range scenarios {
			t.Run(forge+"/"+sc.name, func(t *testing.T) {
				e := newE2E(t, forge, sc.tweak)
				sc.run(t, e)
				if a := e.archived(); len(a) > 0 {
					t.Errorf("tasks failed for good: %v", a)
				}
			})
		}
	}
}

func httpGet(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String()
}
