package jobs

import (
	"context"
	"strings"
	"testing"

	"github.com/mlbot/mlbot/bot"
)

// TestCommandReplyOnceWhenAnswerLost: the host created mlbot's reply to a
// command but its answer was lost (a 502), so the comment's task failed
// and asynq retried it. The retry must find the reply and not post it
// again.
func TestCommandReplyOnceWhenAnswerLost(t *testing.T) {
	ctx := context.Background()
	dir, sha := gitRepo(t, map[string]string{
		".mlbot.yml": "version: 1\npipeline:\n  train: sh train.sh\n  evaluate: sh eval.sh\n  metrics: [metrics.json]\nmetrics:\n  accuracy: {goal: maximize}\n",
	})
	repo := bot.Repo{Forge: "github", FullName: "acme/model", CloneURL: dir, DefaultBranch: "main"}
	tests := []struct {
		name        string
		lostCreates int // replies created whose answer is lost
	}{
		{name: "answer lost", lostCreates: 1},
		{name: "answer never lost", lostCreates: 0},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeForge{lostCreates: tc.lostCreates}
			w := newRouteWorker(t, f, nil)
			number := 10 + i
			ev := &bot.Event{Kind: bot.KindComment, Action: bot.ActionCreated, Repo: repo, Delivery: "delivery-" + tc.name,
				PR:      &bot.PullRequest{Number: number, HeadSHA: sha, HeadRef: "feature"},
				Comment: &bot.Comment{ID: int64(500 + i), Body: "/help", Author: "maria", OnPullRequest: true}}
			attempts := 0
			for {
				attempts++
				err := w.routeComment(ctx, w.log, f, ev)
				if err == nil {
					break
				}
				if attempts > tc.lostCreates+1 {
					t.Fatalf("attempt %d: %v", attempts, err)
				}
			}
			// A redelivery of the same comment changes nothing either.
			if err := w.routeComment(ctx, w.log, f, ev); err != nil {
				t.Fatal(err)
			}
			comments, _ := f.ListComments(ctx, repo, number)
			replies := 0
			for _, c := range comments {
				if strings.HasPrefix(c.Body, ReplyMarker) {
					replies++
				}
			}
			if replies != 1 {
				t.Errorf("%d replies to one /help after %d attempts, want 1", replies, attempts)
			}
		})
	}
}

// TestCommandPermissionByAuthorID: where the payload names the commenter
// by id (GitLab's user.id), the permission is asked for by that id, which
// GitLab's members API takes directly; the username is only mentioned.
func TestCommandPermissionByAuthorID(t *testing.T) {
	ctx := context.Background()
	dir, sha := gitRepo(t, map[string]string{
		".mlbot.yml": "version: 1\npipeline:\n  train: sh train.sh\n  evaluate: sh eval.sh\n  metrics: [metrics.json]\nmetrics:\n  accuracy: {goal: maximize}\n",
	})
	repo := bot.Repo{Forge: "gitlab", ID: 5, FullName: "acme/model", CloneURL: dir, DefaultBranch: "main"}
	// The id says developer; the name alone would say reporter.
	f := &fakeForge{perms: map[string]bot.Permission{"id:77": bot.PermissionWrite, "carol": bot.PermissionRead}}
	w := newRouteWorker(t, f, nil)
	ev := &bot.Event{Kind: bot.KindComment, Action: bot.ActionCreated, Repo: repo, Delivery: "d-by-id",
		PR:      &bot.PullRequest{Number: 3, HeadSHA: sha, HeadRef: "feature"},
		Comment: &bot.Comment{ID: 900, Body: "/cancel", Author: "carol", AuthorID: 77, OnPullRequest: true}}
	if err := w.routeComment(ctx, w.log, f, ev); err != nil {
		t.Fatal(err)
	}
	comments, _ := f.ListComments(ctx, repo, 3)
	if len(comments) != 1 || strings.Contains(comments[0].Body, "needs write permission") {
		t.Errorf("replies %+v, want /cancel accepted for id 77", comments)
	}
}
