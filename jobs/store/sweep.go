package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mlbot/mlbot/bot"
)

// SweepState is where a sweep is in its life.
type SweepState string

// Sweep states.
const (
	SweepRunning   SweepState = "running"
	SweepFinished  SweepState = "finished"
	SweepCancelled SweepState = "cancelled"
)

// ErrNoSweep is returned for a sweep id Redis does not know.
var ErrNoSweep = errors.New("no such sweep")

// Sweep is a hyperparameter sweep asked for on a pull request: the plan
// and the trials dispatched so far, each a pipeline run of its own.
type Sweep struct {
	ID   string           `json:"id"`
	Repo bot.Repo         `json:"repo"`
	PR   *bot.PullRequest `json:"pr"`
	// SHA is the pull request's head the trials train.
	SHA string `json:"sha"`
	// Trusted trials receive the repository's secrets.
	Trusted bool `json:"trusted,omitempty"`
	// Spec is the plan (the jobs/sweep Spec, as JSON: the store does not
	// interpret it).
	Spec json.RawMessage `json:"spec"`
	// Planned is the number of candidates the sweep runs in all.
	Planned int `json:"planned"`
	// Trials are the trials planned so far, in dispatch order; halving
	// appends a rung's when the one before it finished.
	Trials []SweepTrial `json:"trials"`
	State  SweepState   `json:"state"`
	// Detail says why a sweep was cancelled.
	Detail string `json:"detail,omitempty"`
	// By is who asked for the sweep.
	By       string    `json:"by,omitempty"`
	Created  time.Time `json:"created"`
	Finished time.Time `json:"finished,omitempty"`
}

// SweepTrial is one trial of a sweep.
type SweepTrial struct {
	Index  int               `json:"index"`
	Rung   int               `json:"rung,omitempty"`
	Params map[string]string `json:"params"`
	// RunID is the trial's run once it was dispatched, "" before.
	RunID string `json:"run_id,omitempty"`
}

// SaveSweep writes a sweep record and keeps its repository's index of
// sweeps (RecentSweeps lists it).
func (s *Store) SaveSweep(ctx context.Context, sw *Sweep) error {
	b, err := json.Marshal(sw)
	if err != nil {
		return err
	}
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.sweepKey(sw.ID), b, RunTTL)
		if sw.Repo.FullName == "" {
			return nil
		}
		at := sw.Created
		if at.IsZero() {
			at = time.Now()
		}
		key := s.sweepsKey(RepoKey(sw.Repo))
		p.ZAdd(ctx, key, redis.Z{Score: float64(at.UnixMicro()), Member: sw.ID})
		p.ZRemRangeByRank(ctx, key, 0, -RecentSweeps-1)
		p.Expire(ctx, key, RunTTL)
		return nil
	})
	if err != nil {
		return fmt.Errorf("saving sweep %s: %w", sw.ID, err)
	}
	return nil
}

// RecentSweeps returns the sweeps among the newest n of repository repo
// (a RepoKey) whose records are kept, newest first; n < 1 means all that
// the index keeps.
func (s *Store) RecentSweeps(ctx context.Context, repo string, n int) ([]*Sweep, error) {
	ids, err := s.rdb.ZRevRange(ctx, s.sweepsKey(repo), 0, int64(n)-1).Result()
	if err != nil {
		return nil, fmt.Errorf("listing sweeps of %s: %w", repo, err)
	}
	out := make([]*Sweep, 0, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	// One GET per key, as GetRuns does: the records are in different
	// Redis Cluster slots.
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			p.Get(ctx, s.sweepKey(id))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("reading sweeps of %s: %w", repo, err)
	}
	for i, c := range cmds {
		b, err := c.(*redis.StringCmd).Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("sweep %s: %w", ids[i], err)
		}
		var sw Sweep
		if err := json.Unmarshal(b, &sw); err != nil {
			return nil, fmt.Errorf("sweep %s: %w", ids[i], err)
		}
		out = append(out, &sw)
	}
	return out, nil
}

// GetSweep reads a sweep; ErrNoSweep when it does not exist.
func (s *Store) GetSweep(ctx context.Context, id string) (*Sweep, error) {
	b, err := s.rdb.Get(ctx, s.sweepKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("sweep %s: %w", id, ErrNoSweep)
	}
	if err != nil {
		return nil, err
	}
	var sw Sweep
	if err := json.Unmarshal(b, &sw); err != nil {
		return nil, fmt.Errorf("sweep %s: %w", id, err)
	}
	return &sw, nil
}

// PRSweep returns the id of a pull request's newest sweep, or "".
func (s *Store) PRSweep(ctx context.Context, repo bot.Repo, pr int) (string, error) {
	v, err := s.rdb.Get(ctx, s.prSweepKey(RepoKey(repo), strconv.Itoa(pr))).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, err
}

// SetPRSweep records id as the pull request's newest sweep.
func (s *Store) SetPRSweep(ctx context.Context, repo bot.Repo, pr int, id string) error {
	return s.rdb.Set(ctx, s.prSweepKey(RepoKey(repo), strconv.Itoa(pr)), id, RunTTL).Err()
}

// SweepCommentID returns the id of mlbot's sweep comment on a pull
// request, or 0.
func (s *Store) SweepCommentID(ctx context.Context, repo bot.Repo, pr int) (int64, error) {
	v, err := s.rdb.Get(ctx, s.sweepCommentKey(RepoKey(repo), strconv.Itoa(pr))).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return v, err
}

// SetSweepCommentID remembers mlbot's sweep comment on a pull request.
func (s *Store) SetSweepCommentID(ctx context.Context, repo bot.Repo, pr int, id int64) error {
	return s.rdb.Set(ctx, s.sweepCommentKey(RepoKey(repo), strconv.Itoa(pr)), id, RunTTL).Err()
}
