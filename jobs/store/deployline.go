package store

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"
)

// DeployLine is the line of deploys waiting for one environment of one
// repository, in the order they were requested: only the deploy at its
// head may run.
type DeployLine struct {
	s   *Store
	key string
}

// DeployLine returns the line of environment env of repository repo (a
// RepoKey).
func (s *Store) DeployLine(repo, env string) *DeployLine {
	return &DeployLine{s: s, key: s.deployLineKey(repo, env)}
}

// IDs returns the ids in the line, head first.
func (l *DeployLine) IDs(ctx context.Context) ([]string, error) {
	return l.s.rdb.LRange(ctx, l.key, 0, -1).Result()
}

// Join appends id to the line unless it is in it, and keeps the line for
// RunRetention.
func (l *DeployLine) Join(ctx context.Context, id string) error {
	if _, err := l.s.rdb.LPos(ctx, l.key, id, redis.LPosArgs{}).Result(); err == nil {
		return nil
	} else if !errors.Is(err, redis.Nil) {
		return err
	}
	if err := l.s.rdb.RPush(ctx, l.key, id).Err(); err != nil {
		return err
	}
	return l.s.rdb.Expire(ctx, l.key, RunRetention).Err()
}

// Head returns the id at the head of the line; an error (redis.Nil) when
// the line is empty.
func (l *DeployLine) Head(ctx context.Context) (string, error) {
	return l.s.rdb.LIndex(ctx, l.key, 0).Result()
}

// Leave removes every occurrence of id from the line.
func (l *DeployLine) Leave(ctx context.Context, id string) error {
	return l.s.rdb.LRem(ctx, l.key, 0, id).Err()
}

// Skip removes the first occurrence of id (a deploy ahead that will never
// run) from the line.
func (l *DeployLine) Skip(ctx context.Context, id string) error {
	return l.s.rdb.LRem(ctx, l.key, 1, id).Err()
}

// Len returns how many deploys wait in the line.
func (l *DeployLine) Len(ctx context.Context) (int64, error) {
	return l.s.rdb.LLen(ctx, l.key).Result()
}

// KeepDeployReply stores the reply written when deploy id was refused,
// unless one is stored, for RunRetention.
func (s *Store) KeepDeployReply(ctx context.Context, id, body string) error {
	return s.rdb.SetNX(ctx, s.deployReplyKey(id), body, RunRetention).Err()
}

// DeployReply returns the reply stored for deploy id; ok is false when
// none is.
func (s *Store) DeployReply(ctx context.Context, id string) (body string, ok bool, err error) {
	body, err = s.rdb.Get(ctx, s.deployReplyKey(id)).Result()
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return body, true, nil
}
