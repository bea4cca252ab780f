package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlbot/mlbot/configs"
)

// addRepo serves a second repository, name, on the sandbox's host, with
// the same history as the first (branches are pushed to it with
// pushTo), and lets alice write to it.
func (e *e2e) addRepo(name string) {
	e.t.Helper()
	bare := filepath.Join(e.sb.root, name+".git")
	if err := gitCmd(e.sb.root, "init", "--bare", "--quiet", "--initial-branch=main", bare); err != nil {
		e.t.Fatal(err)
	}
	e.sb.host.grant(name, "alice", "write")
}

// pushTo pushes branch of the working copy to the sandbox's repository
// name.
func (e *e2e) pushTo(name, branch string) {
	e.t.Helper()
	if err := gitCmd(e.sb.work, "push", "--quiet", "--force", filepath.Join(e.sb.root, name+".git"), branch); err != nil {
		e.t.Fatal(err)
	}
}

// finalIn returns the final mlbot/train-eval status of sha in repository
// name, if it has one.
func (e *e2e) finalIn(name, sha string) (hostStatus, bool) {
	ss := e.sb.host.statuses(name, sha)
	if len(ss) == 0 {
		return hostStatus{}, false
	}
	last := ss[len(ss)-1]
	return last, last.State != "pending" && last.State != "running"
}

// statusAt returns when the host received the first mlbot/train-eval
// status of sha in repository name whose description starts with desc.
func (e *e2e) statusAt(name, sha, desc string) time.Time {
	for _, c := range e.sb.host.recorder().Find(http.MethodPost, "/repos/"+name+"/statuses/"+sha) {
		var st struct{ Description string }
		if c.Status/100 == 2 && json.Unmarshal(c.Body, &st) == nil && strings.HasPrefix(st.Description, desc) {
			return c.At
		}
	}
	return time.Time{}
}

// TestFairDispatchBetweenRepositories: ten pull requests opened at once in
// one repository do not hold the workers against another repository's one
// pull request, opened just after them: with two workers, the other's
// run starts at the next free worker but one (the burst's repository may
// have its turn first). First come, first served (MLBOT_FIFO_PIPELINES),
// every run of the burst still waiting would start first.
func TestFairDispatchBetweenRepositories(t *testing.T) {
	e := newE2E(t, "github", func(cfg *configs.Server) { cfg.Concurrency = 2 })
	const burst, other = "acme/model", "acme/other"
	files := e.model("0.90")
	// A training long enough that the two workers are busy when the
	// other repository's webhook arrives.
	files["train.sh"] = "sleep 0.4\n" + files["train.sh"]
	e.mainSHA = e.commit("main", files, "model")
	e.addRepo(other)
	e.pushTo(other, "main")
	otherClone := e.sb.srv.URL + "/" + other + ".git"
	// Both repositories' baselines first: a pull request whose base never
	// ran would train it too.
	e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
	e.send(e.sb.host.pushDelivery(e.hook, pushEvent{Repo: other, CloneURL: otherClone, Before: zeroSHA, After: e.mainSHA,
		Branch: "main", Secret: e.sb.secret, Token: e.sb.secret}), http.StatusAccepted)
	if st := e.final(e.mainSHA); st.State != "success" {
		t.Fatalf("baseline: %+v", st)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if st, ok := e.finalIn(other, e.mainSHA); ok {
			if st.State != "success" {
				t.Fatalf("other baseline: %+v", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no final status on the other repository's baseline")
		}
	}

	// Ten heads for the burst, one for the other repository.
	var heads []string
	for i := range 10 {
		files["params"] = fmt.Sprintf("0.9%d\n", i)
		heads = append(heads, e.commit(fmt.Sprintf("burst-%d", i), files, "burst"))
	}
	files["params"] = "0.95\n"
	otherHead := e.commit("other-feature", files, "other")
	e.pushTo(other, "other-feature")

	for i, head := range heads {
		e.send(e.sb.pr(e.hook, prEvent{Action: "opened", Number: i + 1, HeadRef: fmt.Sprintf("burst-%d", i), HeadSHA: head,
			BaseSHA: e.mainSHA, Author: "alice", Association: "MEMBER"}), http.StatusAccepted)
	}
	e.send(e.sb.host.prDelivery(e.hook, prEvent{Action: "opened", Repo: other, CloneURL: otherClone, Number: 1,
		HeadRef: "other-feature", HeadSHA: otherHead, BaseSHA: e.mainSHA, Author: "alice", Association: "MEMBER",
		Secret: e.sb.secret, Token: e.sb.secret}), http.StatusAccepted)

	// The other repository's report; the burst's runs still queued then
	// are left to the shutdown.
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if st, ok := e.finalIn(other, otherHead); ok {
			if st.State != "success" {
				t.Fatalf("the other repository's pull request: %+v", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the other repository's pull request never reported")
		}
	}
	// Between the other repository's run joining the line (its pending
	// status) and starting (its running status), at most three of the
	// burst's runs start: two already handed to the idle workers, and the
	// burst's one turn before the other's.
	queued, started := e.statusAt(other, otherHead, "queued"), e.statusAt(other, otherHead, "running")
	if queued.IsZero() || started.IsZero() {
		t.Fatalf("the other repository's run: queued at %v, running at %v", queued, started)
	}
	passed := 0
	for _, h := range heads {
		if at := e.statusAt(burst, h, "running"); at.After(queued) && at.Before(started) {
			passed++
		}
	}
	if passed > 3 {
		t.Errorf("%d of the burst's runs started while the other repository's waited, want at most 3", passed)
	}
	// Every head was marked pending when its webhook was routed, before
	// its run was dispatched.
	heads = append(heads, otherHead)
	for i, sha := range heads {
		repo := burst
		if i == len(heads)-1 {
			repo = other
		}
		ss := e.sb.host.statuses(repo, sha)
		if len(ss) == 0 || ss[0].State != "pending" || !strings.HasPrefix(ss[0].Description, "queued") {
			t.Errorf("%s %s: first status %+v, want pending: queued", repo, sha[:7], ss)
		}
	}
}
