package github

import (
	"context"
	"net/http"
	"testing"
)

func TestCreateCommitComment(t *testing.T) {
	c, sim, _ := newTestClient(t)
	ctx := context.Background()
	const sha = "0123456789abcdef0123456789abcdef01234567"
	if err := c.CreateCommitComment(ctx, testRepo, sha, "<!-- mlbot:reply -->\nnot deployed"); err != nil {
		t.Fatal(err)
	}
	cs := sim.CommitComments("acme/model", sha)
	if len(cs) != 1 || cs[0].Body != "<!-- mlbot:reply -->\nnot deployed" || cs[0].User != "mlbot[bot]" {
		t.Errorf("simulator commit comments = %+v", cs)
	}
	if calls := sim.Rec.Find(http.MethodPost, "/repos/acme/model/commits/"+sha+"/comments"); len(calls) != 1 {
		t.Errorf("%d POST calls to the commit's comments, want 1", len(calls))
	}
	if err := c.CreateCommitComment(ctx, testRepo, sha, ""); err == nil {
		t.Error("an empty commit comment was accepted")
	}
}
