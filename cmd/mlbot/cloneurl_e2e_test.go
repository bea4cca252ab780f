package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCloneURLOfAnotherRepository sends a correctly signed pull request
// event for acme/model whose clone URL names another repository on the
// same host (acme/secret, which the bot's token could read): the attack a
// holder of the webhook secret, or a compromised relay, uses to make mlbot
// fetch, and run, code it was not asked about with its credential. The run
// must fail for good with a status and a comment that say why, without
// retries, without any request to the other repository, and so without
// the token ever going there.
func TestCloneURLOfAnotherRepository(t *testing.T) {
	for _, forge := range forges {
		t.Run(forge, func(t *testing.T) {
			e := newE2E(t, forge, nil)
			e.mainSHA = e.commit("main", e.model("0.90"), "model")
			head := e.commit("feature", map[string]string{"params": "0.91\n"}, "better")

			// The other repository exists on the host with the same
			// commits, so a fetch from it would succeed.
			secret := filepath.Join(e.sb.root, "acme", "secret.git")
			if err := gitCmd(e.sb.root, "clone", "--quiet", "--bare", "--no-local", filepath.Join(e.sb.root, e.sb.repo+".git"), secret); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(secret, "HEAD")); err != nil {
				t.Fatal(err)
			}
			foreign := e.sb.srv.URL + "/acme/secret.git"

			e.sb.host.recorder().Reset()
			e.send(e.sb.host.prDelivery(e.hook, prEvent{Action: "opened", Repo: e.sb.repo, CloneURL: foreign, Number: 1,
				HeadRef: "feature", HeadSHA: head, BaseSHA: e.mainSHA, Author: "alice", Association: "MEMBER",
				Secret: e.sb.secret, Token: e.sb.secret}), http.StatusAccepted)

			st := e.final(head)
			if st.State != "error" && st.State != "failure" {
				t.Errorf("final status %+v, want an error", st)
			}
			if !strings.Contains(st.Description, "clone URL refused") {
				t.Errorf("status description %q does not say the clone URL was refused", st.Description)
			}
			e.settle()
			running := 0
			for _, c := range e.sb.host.recorder().Calls() {
				if c.Method == http.MethodPost && strings.Contains(c.Path, "/statuses/"+head) && strings.Contains(string(c.Body), "running") {
					running++
				}
			}
			if running != 1 {
				t.Errorf("the pipeline started %d times, want once (no retries)", running)
			}
			if got := e.archived(); len(got) > 0 {
				t.Errorf("tasks failed instead of reporting: %v", got)
			}
			cs := e.mlbotComments(1)
			if len(cs) != 1 || !strings.Contains(cs[0].Body, "clone URL refused") || !strings.Contains(cs[0].Body, "acme/secret") {
				t.Errorf("comment does not say the clone URL was refused: %+v", cs)
			}
			for _, c := range e.sb.host.recorder().Calls() {
				if strings.Contains(c.Path, "secret") {
					t.Errorf("the host got a request for the other repository (with a credential: %v): %s %s", c.Header.Get("Authorization") != "", c.Method, c.Path)
				}
			}
			if n := e.trainings(); n != 0 {
				t.Errorf("%d trainings ran", n)
			}
		})
	}
}
