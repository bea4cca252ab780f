package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The run indexes the pages list runs by: a repository's recent runs,
// its default-branch runs, and the repositories that have runs. Every
// write of a run (CreateRun, SaveRun) keeps them, so nothing else has to.

// indexRun adds run r to the indexes in pipeline p: the newest of each
// index are kept, and each lives RunTTL from its newest entry, as long as
// the run records it names.
func (s *Store) indexRun(ctx context.Context, p redis.Pipeliner, r *Run) {
	if r.Repo.FullName == "" {
		return
	}
	repo := RepoKey(r.Repo)
	at := r.Created
	if at.IsZero() {
		at = time.Now()
	}
	add := func(key string, keep int64) {
		p.ZAdd(ctx, key, redis.Z{Score: float64(at.UnixMicro()), Member: r.ID})
		p.ZRemRangeByRank(ctx, key, 0, -keep-1)
		p.Expire(ctx, key, RunTTL)
	}
	add(s.runsKey(repo), RecentRuns)
	if r.Kind == KindBaseline {
		add(s.baselineRunsKey(repo), BaselineHistory)
	}
	repos := s.reposKey()
	p.ZAddGT(ctx, repos, redis.Z{Score: float64(at.UnixMilli()), Member: repo})
	p.ZRemRangeByScore(ctx, repos, "-inf", "("+strconv.FormatInt(time.Now().Add(-RunTTL).UnixMilli(), 10))
	p.Expire(ctx, repos, RunTTL)
}

// RunRepos returns the repository keys (RepoKey) that have runs, the
// most recently active first.
func (s *Store) RunRepos(ctx context.Context) ([]string, error) {
	repos, err := s.rdb.ZRevRange(ctx, s.reposKey(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("listing repositories: %w", err)
	}
	return repos, nil
}

// RecentRuns returns the newest n runs of repository repo (a RepoKey),
// newest first; n < 1 means all that the index keeps.
func (s *Store) RecentRuns(ctx context.Context, repo string, n int) ([]*Run, error) {
	ids, err := s.rdb.ZRevRange(ctx, s.runsKey(repo), 0, int64(n)-1).Result()
	if err != nil {
		return nil, fmt.Errorf("listing runs of %s: %w", repo, err)
	}
	return s.GetRuns(ctx, ids)
}

// BaselineRuns returns the newest BaselineHistory default-branch runs of
// repository repo (a RepoKey), oldest first, as a chart plots them.
func (s *Store) BaselineRuns(ctx context.Context, repo string) ([]*Run, error) {
	ids, err := s.rdb.ZRange(ctx, s.baselineRunsKey(repo), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("listing default-branch runs of %s: %w", repo, err)
	}
	runs, err := s.GetRuns(ctx, ids)
	if err != nil {
		return nil, err
	}
	sort.SliceStable(runs, func(i, j int) bool { return runs[i].Created.Before(runs[j].Created) })
	return runs, nil
}

// GetRuns returns the runs of ids in their order, leaving out those whose
// records expired.
func (s *Store) GetRuns(ctx context.Context, ids []string) ([]*Run, error) {
	if len(ids) == 0 {
		return []*Run{}, nil
	}
	// One GET per key rather than MGET: run records are in different
	// Redis Cluster slots; a pipeline is one round trip all the same.
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			p.Get(ctx, s.runKey(id))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("reading runs: %w", err)
	}
	out := make([]*Run, 0, len(ids))
	for i, c := range cmds {
		b, err := c.(*redis.StringCmd).Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("run %s: %w", ids[i], err)
		}
		var r Run
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("run %s: %w", ids[i], err)
		}
		out = append(out, &r)
	}
	return out, nil
}
