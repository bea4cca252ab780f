package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mlbot/mlbot/bot/github"
	"github.com/mlbot/mlbot/bot/gitlab"
)

// captured is a signed delivery kept so that it can be sent again byte
// for byte, as anyone who saw it once can.
type captured struct {
	req  *http.Request
	body []byte
}

func capture(t *testing.T, req *http.Request) captured {
	t.Helper()
	body, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatal(err)
	}
	return captured{req: req, body: body}
}

// again returns the delivery once more: with its own delivery id (a retry)
// or, with fresh, a new one (which the signature does not cover).
func (c captured) again(forge string, fresh bool) *http.Request {
	r := c.req.Clone(context.Background())
	r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(c.body)), int64(len(c.body))
	r.Header = c.req.Header.Clone()
	if fresh {
		var b [16]byte
		rand.Read(b[:])
		id := hex.EncodeToString(b[:])
		if forge == "github" {
			r.Header.Set(github.HeaderDelivery, id)
		} else {
			r.Header.Set(gitlab.HeaderEventUUID, id)
			r.Header.Set(gitlab.HeaderIdempotencyKey, id)
		}
	}
	return r
}

// oldRunID is how mlbot used to name runs, from public facts alone: what
// an attacker computes to read someone else's run page.
func oldRunID(forge, repo, kind, sha string, pr int, branch string) string {
	h := sha256.New()
	for _, s := range []string{forge, strings.ToLower(repo), kind, sha, branch} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	if pr > 0 {
		h.Write([]byte{byte(pr >> 24), byte(pr >> 16), byte(pr >> 8), byte(pr)})
	}
	return hex.EncodeToString(h.Sum(nil))[:20]
}

var idInURL = regexp.MustCompile(`/(runs|deploys)/([0-9a-f]{32})$`)

// TestRunAndDeployLinksAreUnguessable shows that run and deploy pages are
// named by random ids: the ids a user sees are 32 hex digits, the ids an
// attacker computes from repository, commit and branch find nothing, and
// duplicate deliveries still make one run and one training.
func TestRunAndDeployLinksAreUnguessable(t *testing.T) {
	for _, forge := range forges {
		t.Run(forge, func(t *testing.T) {
			out := deployTarget(t)
			e := newE2E(t, forge, withDeployPath(out, nil))
			e.mainSHA = e.commit("main", e.deployModel("0.90", out, ""), "model")
			e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
			waitDeployed(t, out, "production", "0.90")
			e.settle()
			var baseURL, deployURL string
			for _, s := range e.sb.statuses(e.mainSHA) {
				switch s.Context {
				case "mlbot/train-eval":
					baseURL = s.TargetURL
				case "mlbot/deploy/production":
					deployURL = s.TargetURL
				}
			}

			h := e.commit("feature", map[string]string{"params": "0.91\n"}, "change")
			first := capture(t, e.prEvent("opened", h, ""))
			e.send(first.again(forge, false), http.StatusAccepted)
			// The host's "redeliver" (a new delivery id) and a retry of the
			// same delivery.
			e.send(first.again(forge, true), http.StatusAccepted)
			e.send(first.again(forge, false), http.StatusOK)
			st := e.final(h)
			e.settle()
			if n := e.trainings(); n != 2 {
				t.Errorf("%d trainings, want 2 (main once, the pull request once)", n)
			}
			runURLs := map[string]bool{}
			for _, s := range e.sb.statuses(h) {
				if s.TargetURL != "" {
					runURLs[s.TargetURL] = true
				}
			}
			if len(runURLs) != 1 {
				t.Errorf("statuses link %d runs, want the one run: %v", len(runURLs), runURLs)
			}

			ids := map[string]bool{}
			for _, link := range []string{baseURL, st.TargetURL, deployURL} {
				m := idInURL.FindStringSubmatch(link)
				if m == nil {
					t.Fatalf("link %q does not end in a 32-digit hex id", link)
				}
				if ids[m[2]] {
					t.Errorf("id %s used twice", m[2])
				}
				ids[m[2]] = true
				if resp := get(t, link); resp != http.StatusOK {
					t.Errorf("GET %s = %d, want 200", link, resp)
				}
			}

			// What an attacker computes from public facts finds nothing.
			oldPR := oldRunID(forge, e.sb.repo, "pull_request", h, 1, "")
			oldBase := oldRunID(forge, e.sb.repo, "baseline", e.mainSHA, 0, "main")
			sum := sha256.Sum256([]byte(oldBase + "\x00merge\x00production\x00"))
			oldDeploy := hex.EncodeToString(sum[:])[:24]
			for _, path := range []string{"/runs/" + oldPR, "/runs/" + oldBase, "/runs/" + oldPR + "?format=json", "/deploys/" + oldDeploy} {
				if code := get(t, e.url+path); code != http.StatusNotFound {
					t.Errorf("GET %s (an id computed from public facts) = %d, want 404", path, code)
				}
			}
		})
	}
}

func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestOkToTestIsBoundToOneCommentAndOneHead attacks /ok-to-test as the
// author of an untrusted fork pull request would: after a maintainer
// approved head A, the attacker pushes head B and re-sends the very same
// signed comment with a new delivery id; and a maintainer's comment
// written before B was pushed but delivered after it must approve A.
func TestOkToTestIsBoundToOneCommentAndOneHead(t *testing.T) {
	scenarios := []struct {
		name string
		run  func(t *testing.T, e *e2e)
	}{
		{"a re-sent approval does nothing", func(t *testing.T, e *e2e) {
			e.baseline("0.90")
			before := e.trainings()
			t0 := time.Now().Add(-2 * time.Minute)
			a := e.commit("feature", map[string]string{"params": "0.91\n"}, "from a fork")
			e.send(e.forkPR("opened", a, "", t0), http.StatusAccepted)
			e.settle()
			ok := capture(t, e.sb.comment(e.hook, commentEvent{Body: "/ok-to-test", Author: "alice", Association: "CONTRIBUTOR", HeadRef: "feature", Created: t0.Add(time.Minute)}))
			e.send(ok.again(e.forge, false), http.StatusAccepted)
			if st := e.final(a); st.State != "success" {
				t.Fatalf("approved head A: status %+v", st)
			}
			e.settle()
			e.lastReply("Approved `" + a[:7])
			replies := len(e.replies())

			b := e.commit("feature", map[string]string{"params": "0.99\n", "train.sh": "echo pwned\ncp params model.txt\n"}, "unreviewed")
			e.send(e.forkPR("updated", b, a, t0.Add(2*time.Minute)), http.StatusAccepted)
			e.settle()
			// The attack: the same signed body, a new delivery id.
			e.send(ok.again(e.forge, true), http.StatusAccepted)
			// And the same delivery retried.
			e.send(ok.again(e.forge, false), http.StatusOK)
			e.settle()
			if n := e.trainings() - before; n != 1 {
				t.Errorf("%d trainings, want 1 (head A only)", n)
			}
			if got := len(e.replies()); got != replies {
				t.Errorf("the re-sent comment was answered: %q", e.replies()[replies:])
			}
			if ss := e.sb.statuses(b); len(ss) != 1 || ss[0].State != "pending" || !strings.Contains(ss[0].Description, "/ok-to-test") {
				t.Errorf("head B statuses %+v, want one, waiting for /ok-to-test", ss)
			}
		}},
		{"an approval written before a push approves the earlier head", func(t *testing.T, e *e2e) {
			e.baseline("0.90")
			before := e.trainings()
			t0 := time.Now().Add(-2 * time.Minute)
			a := e.commit("feature", map[string]string{"params": "0.91\n"}, "from a fork")
			e.send(e.forkPR("opened", a, "", t0), http.StatusAccepted)
			e.settle()
			// Written while A was the head…
			ok := e.sb.comment(e.hook, commentEvent{Body: "/ok-to-test", Author: "alice", Association: "CONTRIBUTOR", HeadRef: "feature", Created: t0.Add(time.Minute)})
			// …but B is pushed, and its event handled, before the comment's.
			b := e.commit("feature", map[string]string{"params": "0.99\n"}, "unreviewed")
			e.send(e.forkPR("updated", b, a, t0.Add(2*time.Minute)), http.StatusAccepted)
			e.settle()
			e.send(ok, http.StatusAccepted)
			e.settle()
			e.lastReply("Approved `" + a[:7])
			e.lastReply("`" + b[:7] + "`, which was pushed later and is not approved")
			if n := e.trainings() - before; n != 0 {
				t.Errorf("%d trainings, want none: A is no longer the head and B is not approved", n)
			}
			if ss := e.sb.statuses(b); len(ss) != 1 || ss[0].State != "pending" {
				t.Errorf("head B statuses %+v, want one, waiting for /ok-to-test", ss)
			}
			// A maintainer's new comment, written after B, approves B.
			e.say("alice", "/ok-to-test")
			if st := e.final(b); st.State != "success" {
				t.Errorf("head B after its own approval: status %+v", st)
			}
			e.lastReply("Approved `" + b[:7])
		}},
		{"an approval older than every known head approves nothing", func(t *testing.T, e *e2e) {
			e.baseline("0.90")
			before := e.trainings()
			t0 := time.Now().Add(-2 * time.Minute)
			a := e.commit("feature", map[string]string{"params": "0.91\n"}, "from a fork")
			e.send(e.forkPR("opened", a, "", t0), http.StatusAccepted)
			e.settle()
			e.send(e.sb.comment(e.hook, commentEvent{Body: "/ok-to-test", Author: "alice", Association: "CONTRIBUTOR", HeadRef: "feature", Created: t0.Add(-time.Minute)}), http.StatusAccepted)
			e.settle()
			e.lastReply("written before every head commit mlbot knows")
			if n := e.trainings() - before; n != 0 {
				t.Errorf("%d trainings, want none", n)
			}
		}},
	}
	for _, forge := range forges {
		for _, sc := range scenarios {
			t.Run(forge+"/"+sc.name, func(t *testing.T) {
				e := newE2E(t, forge, nil)
				sc.run(t, e)
				if a := e.archived(); len(a) > 0 {
					t.Errorf("tasks failed for good: %v", a)
				}
			})
		}
	}
}

// forkPR delivers an event of pull request 1 from mallory's fork, whose
// head the host says is sha since updated.
func (e *e2e) forkPR(action, sha, old string, updated time.Time) *http.Request {
	return e.sb.pr(e.hook, prEvent{Action: action, HeadRef: "feature", HeadSHA: sha, BaseSHA: e.mainSHA, OldRev: old,
		Fork: true, Author: "mallory", Association: "NONE", Updated: updated})
}
