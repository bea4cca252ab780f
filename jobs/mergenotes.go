package jobs

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/jobs/report"
)

// errNotesBusy makes asynq retry while another worker posts a merge's notes.
var errNotesBusy = errors.New("another worker is posting this merge's notes")

// notePoster posts a merge's notes: in the merged pull request's thread,
// or on the commit while none is known.
type notePoster interface {
	CreateComment(ctx context.Context, repo bot.Repo, number int, body string) (bot.Comment, error)
	CreateCommitComment(ctx context.Context, repo bot.Repo, sha, body string) error
}

// keepMergeNote stores a note about default-branch commit sha under key
// (a later note with the same key is ignored), to be posted by
// postMergeNotes. Storing it first keeps it from being lost between the
// decision and the post.
func (w *Worker) keepMergeNote(ctx context.Context, repo bot.Repo, sha, key, body string) error {
	return w.store.KeepMergeNote(ctx, repo, sha, key, report.StripFormatMarkdown(body))
}

// noteMerge keeps a note about default-branch commit sha and posts it.
func (w *Worker) noteMerge(ctx context.Context, f notePoster, repo bot.Repo, sha, key, body string) error {
	if err := w.keepMergeNote(ctx, repo, sha, key, body); err != nil {
		return err
	}
	return w.postMergeNotes(ctx, f, repo, sha)
}

// postMergeNotes posts the notes kept for default-branch commit sha where
// a reader finds them: in the thread of the pull request merged as sha
// once mlbot knows it, on the commit itself until then. It runs when a
// note is kept and again when the merge event arrives, in either order,
// so a note reaches the pull request whichever event came first; each note
// is posted once per place.
func (w *Worker) postMergeNotes(ctx context.Context, f notePoster, repo bot.Repo, sha string) error {
	release, ok, err := w.store.Lock(ctx, "mergenotes:"+repoKey(repo)+":"+sha, time.Minute)
	if err != nil {
		return err
	}
	if !ok {
		return errNotesBusy
	}
	defer release()
	notes, err := w.store.MergeNotes(ctx, repo, sha)
	if err != nil || len(notes) == 0 {
		return err
	}
	pr, err := w.store.MergedPR(ctx, repo, sha)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(notes))
	for k := range notes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		where := "commit"
		if pr != 0 {
			where = "pr"
		}
		doneKey := "mergenote:" + where + ":" + repoKey(repo) + ":" + sha + ":" + k
		if done, err := w.store.Done(ctx, doneKey); err != nil || done {
			if err != nil {
				return err
			}
			continue
		}
		if pr != 0 {
			_, err = f.CreateComment(ctx, repo, pr, notes[k])
		} else {
			err = f.CreateCommitComment(ctx, repo, sha, notes[k])
		}
		if err != nil {
			return err
		}
		if err := w.store.MarkDone(ctx, doneKey); err != nil {
			return err
		}
	}
	return nil
}
