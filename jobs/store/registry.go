package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The model registry's records: package registry keeps versions and deploys
// as JSON through these methods and owns what they mean; the Store owns
// where and how they are kept (keys.go).

// claimVersionScript allocates the next version number for a run, unless
// the run already has one. One script makes "look up the run, INCR,
// remember the run" atomic: two workers recording the same run (asynq
// delivers at least once) get one number, never two.
//
// KEYS[1] runs hash, KEYS[2] sequence; ARGV[1] run id.
// Returns {number, 1 if newly allocated else 0}.
var claimVersionScript = redis.NewScript(`
local n = redis.call("HGET", KEYS[1], ARGV[1])
if n then return {tonumber(n), 0} end
n = redis.call("INCR", KEYS[2])
redis.call("HSET", KEYS[1], ARGV[1], n)
return {n, 1}
`)

// ClaimModelVersion returns the version number of run runID of repo,
// allocating the repository's next one if the run has none.
func (s *Store) ClaimModelVersion(ctx context.Context, repo, runID string) (int, error) {
	res, err := claimVersionScript.Run(ctx, s.rdb, []string{s.registryRepoKey(repo, "runs"), s.registryRepoKey(repo, "seq")}, runID).Int64Slice()
	if err != nil {
		return 0, err
	}
	return int(res[0]), nil
}

// AddModelVersion stores version number of repo as b unless it is stored
// (the first description written wins), and lists repo among the
// registry's repositories.
func (s *Store) AddModelVersion(ctx context.Context, repo string, number int, b []byte) error {
	if err := s.rdb.HSetNX(ctx, s.registryRepoKey(repo, "versions"), strconv.Itoa(number), b).Err(); err != nil {
		return err
	}
	return s.rdb.SAdd(ctx, s.registryReposKey(), repo).Err()
}

// ModelVersion returns version number of repo; ok is false when it is not
// stored.
func (s *Store) ModelVersion(ctx context.Context, repo string, number int) (b []byte, ok bool, err error) {
	b, err = s.rdb.HGet(ctx, s.registryRepoKey(repo, "versions"), strconv.Itoa(number)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	return b, err == nil, err
}

// ModelVersionOfRun returns the version number claimed for run runID of
// repo; ok is false when the run claimed none.
func (s *Store) ModelVersionOfRun(ctx context.Context, repo, runID string) (n int, ok bool, err error) {
	n, err = s.rdb.HGet(ctx, s.registryRepoKey(repo, "runs"), runID).Int()
	if errors.Is(err, redis.Nil) {
		return 0, false, nil
	}
	return n, err == nil, err
}

// ModelVersions returns every stored version of repo, by number.
func (s *Store) ModelVersions(ctx context.Context, repo string) (map[string]string, error) {
	return s.rdb.HGetAll(ctx, s.registryRepoKey(repo, "versions")).Result()
}

// ModelRepos returns the repositories that have versions or deploys.
func (s *Store) ModelRepos(ctx context.Context) ([]string, error) {
	return s.rdb.SMembers(ctx, s.registryReposKey()).Result()
}

// SaveDeployRecord stores deploy record id of repo's environment env as b
// and places it in the environment's history by requested, keeping its
// place when it is there already.
func (s *Store) SaveDeployRecord(ctx context.Context, id, repo, env string, requested time.Time, b []byte) error {
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.registryDeployKey(id), b, 0)
		// NX keeps a deploy's place in the history when it is updated.
		p.ZAddNX(ctx, s.registryRepoKey(repo, "deploys:"+env), redis.Z{Score: float64(requested.UnixMicro()), Member: id})
		p.SAdd(ctx, s.registryRepoKey(repo, "envs"), env)
		p.SAdd(ctx, s.registryReposKey(), repo)
		return nil
	})
	return err
}

// TrimDeployHistory forgets the oldest deploys of repo's environment env
// beyond the newest keep, records included. Two workers trimming at once
// delete the same ids, which is harmless.
func (s *Store) TrimDeployHistory(ctx context.Context, repo, env string, keep int) error {
	hist := s.registryRepoKey(repo, "deploys:"+env)
	old, err := s.rdb.ZRange(ctx, hist, 0, int64(-keep-1)).Result()
	if err != nil || len(old) == 0 {
		return err
	}
	members := make([]any, len(old))
	for i, id := range old {
		members[i] = id
	}
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRem(ctx, hist, members...)
		for _, id := range old {
			p.Del(ctx, s.registryDeployKey(id))
		}
		return nil
	})
	return err
}

// DeployRecord returns deploy record id; ok is false when it is not
// stored.
func (s *Store) DeployRecord(ctx context.Context, id string) (b []byte, ok bool, err error) {
	b, err = s.rdb.Get(ctx, s.registryDeployKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	return b, err == nil, err
}

// DeployHistory returns entries start..stop (newest first, as ZREVRANGE
// counts) of the history of repo's environment env: deploy ids.
func (s *Store) DeployHistory(ctx context.Context, repo, env string, start, stop int64) ([]string, error) {
	return s.rdb.ZRevRange(ctx, s.registryRepoKey(repo, "deploys:"+env), start, stop).Result()
}

// DeployRecords returns the deploy records of ids, in their order; nil for
// one not stored (trimmed by a concurrent save).
func (s *Store) DeployRecords(ctx context.Context, ids []string) ([][]byte, error) {
	// One GET per key rather than MGET: deploy records are in different
	// Redis Cluster slots, and a pipeline costs one round trip all the same.
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			p.Get(ctx, s.registryDeployKey(id))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make([][]byte, len(cmds))
	for i, c := range cmds {
		b, err := c.(*redis.StringCmd).Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, &recordError{id: ids[i], err: err}
		}
		out[i] = b
	}
	return out, nil
}

// recordError names the deploy record a read failed on.
type recordError struct {
	id  string
	err error
}

func (e *recordError) Error() string { return "deploy " + e.id + ": " + e.err.Error() }
func (e *recordError) Unwrap() error { return e.err }

// DeployEnvironments returns the environments repo was ever deployed to.
func (s *Store) DeployEnvironments(ctx context.Context, repo string) ([]string, error) {
	return s.rdb.SMembers(ctx, s.registryRepoKey(repo, "envs")).Result()
}

// dropVersionScript deletes a version and the run's claim on its number.
//
// KEYS[1] versions hash, KEYS[2] runs hash; ARGV[1] number, ARGV[2] run id.
var dropVersionScript = redis.NewScript(`
redis.call("HDEL", KEYS[1], ARGV[1])
if redis.call("HGET", KEYS[2], ARGV[2]) == ARGV[1] then redis.call("HDEL", KEYS[2], ARGV[2]) end
return 1`)

// DropModelVersion forgets version number of repo, made by run runID: its
// record, the run's claim on the number (a later Record of the run
// allocates a new one), and the version in the run's record, which keeps
// its TTL. Numbers are never reused: the sequence is left alone.
func (s *Store) DropModelVersion(ctx context.Context, repo string, number int, runID string) error {
	n := strconv.Itoa(number)
	if err := dropVersionScript.Run(ctx, s.rdb, []string{s.registryRepoKey(repo, "versions"), s.registryRepoKey(repo, "runs")}, n, runID).Err(); err != nil {
		return err
	}
	if runID == "" {
		return nil
	}
	return s.forgetRunVersion(ctx, runID, n)
}

// forgetRunVersion removes model_version from run id's record when it is
// number, leaving every other field's bytes and the key's TTL as they are.
// A concurrent write of the run makes it read again.
func (s *Store) forgetRunVersion(ctx context.Context, id, number string) error {
	k := s.runKey(id)
	update := func(tx *redis.Tx) error {
		b, err := tx.Get(ctx, k).Bytes()
		if errors.Is(err, redis.Nil) {
			return nil // expired with the runs of its age
		}
		if err != nil {
			return err
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(b, &fields); err != nil {
			return fmt.Errorf("run %s: %w", id, err)
		}
		if string(fields["model_version"]) != number {
			return nil
		}
		delete(fields, "model_version")
		nb, err := json.Marshal(fields)
		if err != nil {
			return fmt.Errorf("run %s: %w", id, err)
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.SetArgs(ctx, k, nb, redis.SetArgs{KeepTTL: true})
			return nil
		})
		return err
	}
	for range 10 {
		err := s.rdb.Watch(ctx, update, k)
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
	}
	return fmt.Errorf("run %s: written too often to forget its model version", id)
}
