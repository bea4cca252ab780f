package store

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// appendRunLog appends to a run's log unless that would take it past
// MaxRunLogBytes, and keeps it for RunTTL. It returns the log's length.
var appendRunLog = redis.NewScript(`
local n = redis.call('STRLEN', KEYS[1])
if n + string.len(ARGV[1]) <= tonumber(ARGV[2]) then
  n = redis.call('APPEND', KEYS[1], ARGV[1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return n
`)

// AppendRunLog appends p to the log of run id that the run page streams,
// and returns the log's length. The log stops growing at MaxRunLogBytes
// (the log sink that feeds it caps its output below that).
func (s *Store) AppendRunLog(ctx context.Context, id string, p []byte) (int64, error) {
	return appendRunLog.Run(ctx, s.rdb, []string{s.runLogKey(id)}, p, MaxRunLogBytes, RunTTL.Milliseconds()).Int64()
}

// ReadRunLog returns at most max bytes of run id's log from byte from on,
// and the log's whole length; an unknown run has an empty log.
func (s *Store) ReadRunLog(ctx context.Context, id string, from, max int64) ([]byte, int64, error) {
	k := s.runLogKey(id)
	pipe := s.rdb.Pipeline()
	n := pipe.StrLen(ctx, k)
	var chunk *redis.StringCmd
	if max > 0 {
		chunk = pipe.GetRange(ctx, k, from, from+max-1)
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, 0, err
	}
	if chunk == nil {
		return nil, n.Val(), nil
	}
	return []byte(chunk.Val()), n.Val(), nil
}
