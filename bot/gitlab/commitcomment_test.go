package gitlab

import (
	"context"
	"net/http"
	"testing"

	"github.com/mlbot/mlbot/bot"
)

func TestCreateCommitComment(t *testing.T) {
	ctx := context.Background()
	c, sim := newTestClient(t, testToken)
	repo := bot.Repo{FullName: testProject}
	const sha = "0123456789abcdef0123456789abcdef01234567"
	if err := c.CreateCommitComment(ctx, repo, sha, "<!-- mlbot:reply -->\nnot deployed"); err != nil {
		t.Fatal(err)
	}
	cs := sim.CommitComments(testProject, sha)
	if len(cs) != 1 || cs[0].Note != "<!-- mlbot:reply -->\nnot deployed" || cs[0].Author.Username != "mlbot" {
		t.Errorf("simulator commit comments = %+v", cs)
	}
	if calls := sim.Rec.Find(http.MethodPost, "/repository/commits/"+sha+"/comments"); len(calls) != 1 {
		t.Errorf("%d POST calls to the commit's comments, want 1", len(calls))
	}
	if err := c.CreateCommitComment(ctx, repo, sha, ""); err == nil {
		t.Error("an empty commit comment was accepted")
	}
}
