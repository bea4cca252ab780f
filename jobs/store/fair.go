package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// The fair line of a pipeline queue holds the pipeline runs that wait for
// a worker, one list per repository, and the turn order of the
// repositories that have runs waiting. A dispatcher (package jobs) takes
// one run from each repository in turn and hands it to asynq, so that one
// repository's burst of pull requests waits behind the others' first runs
// instead of in front of them. A run leaves its line only once its asynq
// task exists (FairAck after the enqueue), so a crash at any point loses
// nothing: at worst a run is offered twice, and asynq refuses the second
// task by its id.
//
// Every key of one queue's line shares one hash tag ({<queue>}, or on a
// Redis Cluster the prefix's {mlbot}), so that the scripts below, which
// build a repository's key from the prefix they are given, touch one
// Redis Cluster slot. The keys have no TTL: they hold
// work that must not be lost, and the scripts delete what empties.

// FairEntry is a run waiting in a fair line.
type FairEntry struct {
	// Repo is the repository key (RepoKey) whose line the run waits in.
	Repo string
	// RunID is the run's id.
	RunID string
	// Task is what the caller stored with the run (its signed task); the
	// Store does not read it.
	Task []byte
}

// FairPush appends run id of repository repo (a RepoKey) to queue's fair
// line with task, and gives the repository a turn when it had none. A run
// already waiting is left as it is (added is false): a redelivered event
// adds nothing.
func (s *Store) FairPush(ctx context.Context, queue, repo, id string, task []byte) (added bool, err error) {
	n, err := fairPushScript.Run(ctx, s.rdb, s.fairKeys(queue), s.fairRepoPrefix(queue), repo, id, task).Int()
	if err != nil {
		return false, fmt.Errorf("fair line %s: push run %s: %w", queue, id, err)
	}
	return n == 1, nil
}

// FairClaim offers the next run of queue's fair line: the oldest run of
// the repository whose turn it is, which goes to the end of the turn
// order. The run stays in its line, claimed for ttl: no other claim offers
// it meanwhile, and once the claim lapses (its dispatcher died before
// FairAck) it is offered again. A repository whose oldest run is claimed
// is passed over. ok is false when no run can be offered.
func (s *Store) FairClaim(ctx context.Context, queue string, ttl time.Duration) (e FairEntry, ok bool, err error) {
	res, err := fairClaimScript.Run(ctx, s.rdb, s.fairKeys(queue), s.fairRepoPrefix(queue), ttl.Milliseconds()).Slice()
	if errors.Is(err, redis.Nil) {
		return e, false, nil
	}
	if err != nil {
		return e, false, fmt.Errorf("fair line %s: claim: %w", queue, err)
	}
	if len(res) != 3 {
		return e, false, fmt.Errorf("fair line %s: claim: unexpected reply %v", queue, res)
	}
	e.Repo, _ = res[0].(string)
	e.RunID, _ = res[1].(string)
	task, _ := res[2].(string)
	e.Task = []byte(task)
	return e, true, nil
}

// FairAck removes run id of repository repo from queue's fair line, once
// its asynq task exists; a repository whose line empties loses its turn.
// Acknowledging a run that is no longer there does nothing.
func (s *Store) FairAck(ctx context.Context, queue, repo, id string) error {
	if _, err := fairRemoveScript.Run(ctx, s.rdb, s.fairKeys(queue), s.fairRepoPrefix(queue), repo, id, 1).Int(); err != nil {
		return fmt.Errorf("fair line %s: ack run %s: %w", queue, id, err)
	}
	return nil
}

// FairRemove takes run id of repository repo out of queue's fair line, as
// a cancelled run leaves it, unless a dispatcher has claimed it (it is
// being handed to asynq: removed is false, and the run meets its cancel
// request when it starts). removed is false too when it was not there.
func (s *Store) FairRemove(ctx context.Context, queue, repo, id string) (removed bool, err error) {
	n, err := fairRemoveScript.Run(ctx, s.rdb, s.fairKeys(queue), s.fairRepoPrefix(queue), repo, id, 0).Int()
	if err != nil {
		return false, fmt.Errorf("fair line %s: remove run %s: %w", queue, id, err)
	}
	return n == 1, nil
}

// FairWaiting returns how many runs wait in queue's fair line.
func (s *Store) FairWaiting(ctx context.Context, queue string) (int64, error) {
	return s.rdb.HLen(ctx, s.fairTasksKey(queue)).Result()
}

// FairOldest returns when the longest-waiting run of queue's fair line
// joined it; ok is false when no run waits.
func (s *Store) FairOldest(ctx context.Context, queue string) (since time.Time, ok bool, err error) {
	zs, err := s.rdb.ZRangeWithScores(ctx, s.fairSinceKey(queue), 0, 0).Result()
	if err != nil || len(zs) == 0 {
		return time.Time{}, false, err
	}
	return time.UnixMilli(int64(zs[0].Score)), true, nil
}

// FairTurns returns the repositories of queue's fair line in turn order,
// the next first.
func (s *Store) FairTurns(ctx context.Context, queue string) ([]string, error) {
	return s.rdb.LRange(ctx, s.fairRingKey(queue), 0, -1).Result()
}

// FairEntries returns the runs waiting in queue's fair line, each
// repository's in order, the repositories in turn order. It reads without
// a lock, for inspection: a run dispatched meanwhile may be missing.
func (s *Store) FairEntries(ctx context.Context, queue string) ([]FairEntry, error) {
	repos, err := s.FairTurns(ctx, queue)
	if err != nil {
		return nil, err
	}
	var out []FairEntry
	for _, repo := range repos {
		ids, err := s.rdb.LRange(ctx, s.fairRepoPrefix(queue)+repo, 0, -1).Result()
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			task, err := s.rdb.HGet(ctx, s.fairTasksKey(queue), id).Bytes()
			if errors.Is(err, redis.Nil) {
				continue
			}
			if err != nil {
				return nil, err
			}
			out = append(out, FairEntry{Repo: repo, RunID: id, Task: task})
		}
	}
	return out, nil
}

// AsynqPending returns how many tasks wait in asynq's pending list of
// queue: the dispatcher keeps it about as long as there are idle workers.
// The key is asynq's (internal/base.PendingKey), read here and never
// written.
func (s *Store) AsynqPending(ctx context.Context, queue string) (int64, error) {
	return s.rdb.LLen(ctx, asynqPendingKey(queue)).Result()
}

// fairKeys are the KEYS of the fair line scripts: the turn order, the
// tasks, the claims and the join times.
func (s *Store) fairKeys(queue string) []string {
	return []string{s.fairRingKey(queue), s.fairTasksKey(queue), s.fairClaimsKey(queue), s.fairSinceKey(queue)}
}

// fairPushScript: KEYS ring, tasks, claims, since; ARGV repo prefix, repo,
// id, task. Returns 1 when the run was added.
var fairPushScript = redis.NewScript(`
if redis.call("HEXISTS", KEYS[2], ARGV[3]) == 1 then return 0 end
local t = redis.call("TIME")
redis.call("HSET", KEYS[2], ARGV[3], ARGV[4])
redis.call("ZADD", KEYS[4], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[3])
if redis.call("RPUSH", ARGV[1] .. ARGV[2], ARGV[3]) == 1 then
  redis.call("RPUSH", KEYS[1], ARGV[2])
end
return 1`)

// fairClaimScript: KEYS ring, tasks, claims, since; ARGV repo prefix, claim ms.
// Returns {repo, id, task} or nil.
var fairClaimScript = redis.NewScript(`
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = redis.call("LLEN", KEYS[1])
for i = 1, n do
  local repo = redis.call("LMOVE", KEYS[1], KEYS[1], "LEFT", "RIGHT")
  local id = redis.call("LINDEX", ARGV[1] .. repo, 0)
  if not id then
    redis.call("LREM", KEYS[1], 0, repo)
  else
    local until_ms = redis.call("HGET", KEYS[3], id)
    if not until_ms or tonumber(until_ms) <= now then
      local task = redis.call("HGET", KEYS[2], id)
      if not task then
        -- a run without its task cannot be dispatched: drop it
        redis.call("LPOP", ARGV[1] .. repo)
        redis.call("HDEL", KEYS[3], id)
        redis.call("ZREM", KEYS[4], id)
        if redis.call("LLEN", ARGV[1] .. repo) == 0 then redis.call("LREM", KEYS[1], 0, repo) end
      else
        redis.call("HSET", KEYS[3], id, now + tonumber(ARGV[2]))
        return {repo, id, task}
      end
    end
  end
end
return nil`)

// fairRemoveScript: KEYS ring, tasks, claims, since; ARGV repo prefix, repo, id,
// force (1: remove even when claimed). Returns 1 when the run was removed.
var fairRemoveScript = redis.NewScript(`
if ARGV[4] ~= "1" then
  local t = redis.call("TIME")
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local until_ms = redis.call("HGET", KEYS[3], ARGV[3])
  if until_ms and tonumber(until_ms) > now then return 0 end
end
local list = ARGV[1] .. ARGV[2]
local n = redis.call("LREM", list, 1, ARGV[3])
redis.call("HDEL", KEYS[2], ARGV[3])
redis.call("HDEL", KEYS[3], ARGV[3])
redis.call("ZREM", KEYS[4], ARGV[3])
if redis.call("LLEN", list) == 0 then redis.call("LREM", KEYS[1], 0, ARGV[2]) end
return n`)
