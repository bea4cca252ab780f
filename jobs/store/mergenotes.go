package store

import (
	"context"

	"github.com/mlbot/mlbot/bot"
)

// KeepMergeNote stores body as the note under key about default-branch
// commit sha of repo, unless a note with that key is stored; the notes are
// kept for RunRetention.
func (s *Store) KeepMergeNote(ctx context.Context, repo bot.Repo, sha, key, body string) error {
	k := s.mergeNotesKey(RepoKey(repo), sha)
	if err := s.rdb.HSetNX(ctx, k, key, body).Err(); err != nil {
		return err
	}
	return s.rdb.Expire(ctx, k, RunRetention).Err()
}

// MergeNotes returns the notes kept about commit sha of repo, by key.
func (s *Store) MergeNotes(ctx context.Context, repo bot.Repo, sha string) (map[string]string, error) {
	return s.rdb.HGetAll(ctx, s.mergeNotesKey(RepoKey(repo), sha)).Result()
}
