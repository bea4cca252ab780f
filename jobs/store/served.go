package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mlbot/mlbot/bot"
)

// servedRepo is a repository as the served hash keeps it.
type servedRepo struct {
	Repo bot.Repo  `json:"repo"`
	Seen time.Time `json:"seen"`
}

// RememberRepo records that repo delivered a webhook at seen, so that the
// reconciler lists it from now on (for ServedTTL after its newest
// delivery). The newest delivery's view of the repository (its default
// branch, its clone URL) replaces an older one's.
func (s *Store) RememberRepo(ctx context.Context, repo bot.Repo, seen time.Time) error {
	b, err := json.Marshal(servedRepo{Repo: repo, Seen: seen.UTC()})
	if err != nil {
		return err
	}
	if err := s.rdb.HSet(ctx, s.servedKey(), RepoKey(repo), b).Err(); err != nil {
		return fmt.Errorf("remember repository %s: %w", repo.FullName, err)
	}
	return nil
}

// ServedRepos returns the repositories that delivered a webhook within
// ServedTTL of now, ordered by repo key. Older ones, and entries that no
// longer read, are dropped.
func (s *Store) ServedRepos(ctx context.Context, now time.Time) ([]bot.Repo, error) {
	all, err := s.rdb.HGetAll(ctx, s.servedKey()).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("served repositories: %w", err)
	}
	keys := make([]string, 0, len(all))
	for k := range all {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []bot.Repo
	var stale []string
	for _, k := range keys {
		var sr servedRepo
		if json.Unmarshal([]byte(all[k]), &sr) != nil || now.Sub(sr.Seen) > ServedTTL {
			stale = append(stale, k)
			continue
		}
		out = append(out, sr.Repo)
	}
	if len(stale) > 0 {
		// A delivery between the read and this delete rewrites its entry
		// later anyway; losing it here only delays it to its next webhook.
		if err := s.rdb.HDel(ctx, s.servedKey(), stale...).Err(); err != nil {
			return nil, fmt.Errorf("drop stale served repositories: %w", err)
		}
	}
	return out, nil
}

// LookupID returns the id a dedupe key of kind was claimed for (ClaimID),
// or "" when nothing claimed it: it asks without claiming.
func (s *Store) LookupID(ctx context.Context, kind, key string) (string, error) {
	id, err := s.rdb.Get(ctx, s.idKey(kind, key)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("look up %s id: %w", kind, err)
	}
	return id, nil
}
