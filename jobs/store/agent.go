package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// An agent session is what mlbot keeps of a run whose steps `mlbot agent`
// runs in a container or pod (package web/agentsrv drives it): the job the
// agent fetches, the hash of its bearer token, and what the agent pushed
// back (log, metric files, artifact records, step reports, its end). Every
// key of a session expires at the same instant, fixed when it was opened,
// and CloseAgent deletes them all. The job and the step reports are JSON
// the store does not look into.

// ErrNoAgent is returned for an agent session that was never opened, has
// expired or was closed.
var ErrNoAgent = errors.New("no such agent session")

// ErrAgentLimit is returned when a session already holds MaxAgentFiles
// files of a kind or MaxAgentSteps step reports, or a metric file is over
// MaxAgentMetricBytes.
var ErrAgentLimit = errors.New("agent session limit reached")

// AgentOffsetError is AppendAgentLog's refusal of a chunk that does not
// start where the log ends.
type AgentOffsetError struct {
	// Have is the log's length (every byte accepted, stored or not).
	Have int64
}

// Error describes the mismatch.
func (e *AgentOffsetError) Error() string {
	return fmt.Sprintf("agent log: the chunk does not start at the log's length %d", e.Have)
}

// AgentSession is an agent session's own record.
type AgentSession struct {
	// ID is the run id the session was opened under.
	ID string
	// Job is the job as the caller of OpenAgent gave it (JSON).
	Job []byte
	// TokenHash is the sha256 of the bearer token, in hex.
	TokenHash string
	// Expires is when the session and everything of it expire.
	Expires time.Time
	// LogBytes is the log's length: every byte accepted, also those past
	// MaxAgentLogBytes that were not stored.
	LogBytes int64
	// Done is true once the agent reported its end; Error is what it said.
	Done  bool
	Error string
	// Copied is how much of the log the runner watching the run has
	// copied into the run's own log (SetAgentCopied): a runner that
	// re-attaches to the run goes on from there.
	Copied int64
}

// AgentArtifact is the record of an uploaded artifact.
type AgentArtifact struct {
	// Digest is "sha256:<hex>".
	Digest string
	// Size is the artifact's length in bytes.
	Size int64
}

// OpenAgent opens agent session id with job (JSON) and the sha256 (hex)
// of its token, expiring after ttl, unless it is open already: created
// is false then and nothing changes.
func (s *Store) OpenAgent(ctx context.Context, id string, job []byte, tokenHash string, ttl time.Duration) (created bool, err error) {
	if ttl <= 0 {
		return false, fmt.Errorf("open agent %s: ttl %v is not positive", id, ttl)
	}
	expires := time.Now().Add(ttl).UnixMilli()
	tk := s.agentTokenKey(tokenHash)
	// The token first: a session must never be found without the key
	// that lets its agent in.
	ok, err := s.rdb.SetNX(ctx, tk, id, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("open agent %s: %w", id, err)
	}
	if !ok {
		return false, fmt.Errorf("open agent %s: the token is in use", id)
	}
	n, err := openAgentScript.Run(ctx, s.rdb, []string{s.agentKey(id, "session")}, job, tokenHash, expires).Int()
	if err == nil && n == 1 {
		return true, nil
	}
	// Open already (or failed): the fresh token must not stay valid.
	if derr := s.rdb.Del(ctx, tk).Err(); derr != nil && err == nil {
		err = derr
	}
	if err != nil {
		return false, fmt.Errorf("open agent %s: %w", id, err)
	}
	return false, nil
}

var openAgentScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 1 then return 0 end
redis.call("HSET", KEYS[1], "job", ARGV[1], "token", ARGV[2], "expires", ARGV[3], "logn", "0", "done", "0", "error", "")
redis.call("PEXPIREAT", KEYS[1], ARGV[3])
return 1`)

// AgentByToken returns the session whose token has sha256 tokenHash (hex);
// ErrNoAgent when there is none. The caller compares TokenHash with its
// own in constant time.
func (s *Store) AgentByToken(ctx context.Context, tokenHash string) (*AgentSession, error) {
	id, err := s.rdb.Get(ctx, s.agentTokenKey(tokenHash)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNoAgent
	}
	if err != nil {
		return nil, fmt.Errorf("agent token: %w", err)
	}
	return s.GetAgent(ctx, id)
}

// GetAgent returns agent session id; ErrNoAgent when there is none.
func (s *Store) GetAgent(ctx context.Context, id string) (*AgentSession, error) {
	h, err := s.rdb.HGetAll(ctx, s.agentKey(id, "session")).Result()
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", id, err)
	}
	if len(h) == 0 {
		return nil, fmt.Errorf("agent %s: %w", id, ErrNoAgent)
	}
	exp, err1 := strconv.ParseInt(h["expires"], 10, 64)
	logn, err2 := strconv.ParseInt(h["logn"], 10, 64)
	var copied int64
	var err3 error
	if c, ok := h["copied"]; ok {
		copied, err3 = strconv.ParseInt(c, 10, 64)
	}
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, fmt.Errorf("agent %s: malformed session: %w", id, err)
	}
	return &AgentSession{ID: id, Job: []byte(h["job"]), TokenHash: h["token"], Expires: time.UnixMilli(exp),
		LogBytes: logn, Done: h["done"] == "1", Error: h["error"], Copied: copied}, nil
}

// AppendAgentLog appends chunk to session id's log if offset is the log's
// length, and returns the new length. Otherwise it returns an
// *AgentOffsetError with the length. Past MaxAgentLogBytes of stored log,
// bytes are counted but not kept.
func (s *Store) AppendAgentLog(ctx context.Context, id string, offset int64, chunk []byte) (int64, error) {
	res, err := appendAgentLogScript.Run(ctx, s.rdb, []string{s.agentKey(id, "session"), s.agentKey(id, "log")},
		offset, chunk, MaxAgentLogBytes).Int64Slice()
	if err != nil {
		return 0, fmt.Errorf("agent %s log: %w", id, err)
	}
	switch res[0] {
	case -1:
		return 0, fmt.Errorf("agent %s log: %w", id, ErrNoAgent)
	case 0:
		return 0, &AgentOffsetError{Have: res[1]}
	}
	return res[1], nil
}

// The length is kept with HINCRBY: a Lua number written back as a string
// would turn into exponent notation once it is large.
var appendAgentLogScript = redis.NewScript(`
local exp = redis.call("HGET", KEYS[1], "expires")
if not exp then return {-1, 0} end
local n = tonumber(redis.call("HGET", KEYS[1], "logn"))
if tonumber(ARGV[1]) ~= n then return {0, n} end
local room = tonumber(ARGV[3]) - redis.call("STRLEN", KEYS[2])
if room > 0 and #ARGV[2] > 0 then
  local part = ARGV[2]
  if #part > room then part = string.sub(part, 1, room) end
  redis.call("APPEND", KEYS[2], part)
  redis.call("PEXPIREAT", KEYS[2], exp)
end
return {1, redis.call("HINCRBY", KEYS[1], "logn", #ARGV[2])}`)

// AgentLog is a piece of an agent session's log, as ReadAgentLog returns it.
type AgentLog struct {
	// Data is the stored log from the offset asked for, at most the
	// length asked for.
	Data []byte
	// Stored is how many bytes of the log are kept (at most
	// MaxAgentLogBytes); Total is the log's length, Stored included.
	Stored, Total int64
}

// ReadAgentLog returns at most max bytes of session id's stored log from
// byte from on, with the log's stored and total lengths.
func (s *Store) ReadAgentLog(ctx context.Context, id string, from, max int64) (AgentLog, error) {
	var out AgentLog
	if from < 0 || max <= 0 {
		return out, fmt.Errorf("agent %s log: bad range %d+%d", id, from, max)
	}
	var data *redis.StringCmd
	var stored *redis.IntCmd
	var total *redis.StringCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		data = p.GetRange(ctx, s.agentKey(id, "log"), from, from+max-1)
		stored = p.StrLen(ctx, s.agentKey(id, "log"))
		total = p.HGet(ctx, s.agentKey(id, "session"), "logn")
		return nil
	})
	if errors.Is(err, redis.Nil) {
		return out, fmt.Errorf("agent %s log: %w", id, ErrNoAgent)
	}
	if err != nil {
		return out, fmt.Errorf("agent %s log: %w", id, err)
	}
	out.Total, err = strconv.ParseInt(total.Val(), 10, 64)
	if err != nil {
		return out, fmt.Errorf("agent %s log: length: %w", id, err)
	}
	out.Data, out.Stored = []byte(data.Val()), stored.Val()
	return out, nil
}

// MaxAgentMetricBytes bounds one metric file of an agent session
// (agentapi.MaxMetricFileBytes).
const MaxAgentMetricBytes = 1 << 20

// PutAgentMetric stores metric file path (slash-separated, relative to the
// agent's workdir) of session id, replacing one of the same path.
// ErrAgentLimit when the file is over MaxAgentMetricBytes or the session
// holds MaxAgentFiles others.
func (s *Store) PutAgentMetric(ctx context.Context, id, path string, data []byte) error {
	if len(data) > MaxAgentMetricBytes {
		return fmt.Errorf("agent %s metric file %s: %d bytes: %w", id, path, len(data), ErrAgentLimit)
	}
	return s.putAgentField(ctx, id, "metrics", path, data)
}

// AgentMetrics returns session id's metric files by path.
func (s *Store) AgentMetrics(ctx context.Context, id string) (map[string][]byte, error) {
	h, err := s.rdb.HGetAll(ctx, s.agentKey(id, "metrics")).Result()
	if err != nil {
		return nil, fmt.Errorf("agent %s metrics: %w", id, err)
	}
	out := make(map[string][]byte, len(h))
	for k, v := range h {
		out[k] = []byte(v)
	}
	return out, nil
}

// AddAgentArtifact records that session id's artifact path (slash-
// separated, relative to the agent's workdir) was uploaded with digest
// and size, replacing a record of the same path. ErrAgentLimit when the
// session holds MaxAgentFiles others.
func (s *Store) AddAgentArtifact(ctx context.Context, id, path string, a AgentArtifact) error {
	return s.putAgentField(ctx, id, "artifacts", path, []byte(a.Digest+" "+strconv.FormatInt(a.Size, 10)))
}

// AgentArtifacts returns session id's artifact records by path.
func (s *Store) AgentArtifacts(ctx context.Context, id string) (map[string]AgentArtifact, error) {
	h, err := s.rdb.HGetAll(ctx, s.agentKey(id, "artifacts")).Result()
	if err != nil {
		return nil, fmt.Errorf("agent %s artifacts: %w", id, err)
	}
	out := make(map[string]AgentArtifact, len(h))
	for k, v := range h {
		digest, size, _ := strings.Cut(v, " ")
		n, err := strconv.ParseInt(size, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("agent %s artifact %s: malformed record %q", id, k, v)
		}
		out[k] = AgentArtifact{Digest: digest, Size: n}
	}
	return out, nil
}

// putAgentField sets field of session id's hash part, within MaxAgentFiles
// fields.
func (s *Store) putAgentField(ctx context.Context, id, part, field string, value []byte) error {
	n, err := putAgentFieldScript.Run(ctx, s.rdb, []string{s.agentKey(id, "session"), s.agentKey(id, part)},
		field, value, MaxAgentFiles).Int()
	if err != nil {
		return fmt.Errorf("agent %s %s %s: %w", id, part, field, err)
	}
	switch n {
	case -1:
		return fmt.Errorf("agent %s %s %s: %w", id, part, field, ErrNoAgent)
	case -2:
		return fmt.Errorf("agent %s %s %s: more than %d files: %w", id, part, field, MaxAgentFiles, ErrAgentLimit)
	}
	return nil
}

var putAgentFieldScript = redis.NewScript(`
local exp = redis.call("HGET", KEYS[1], "expires")
if not exp then return -1 end
if redis.call("HEXISTS", KEYS[2], ARGV[1]) == 0 and redis.call("HLEN", KEYS[2]) >= tonumber(ARGV[3]) then return -2 end
redis.call("HSET", KEYS[2], ARGV[1], ARGV[2])
redis.call("PEXPIREAT", KEYS[2], exp)
return 1`)

// ErrAgentStepGap is returned by AddAgentStep for a report whose index is
// past the next one expected.
var ErrAgentStepGap = errors.New("agent step report out of order")

// AddAgentStep appends the report (JSON) of step index to session id's,
// if index is the number of reports held; a report of an index held
// already is ignored (added is false), so that a retried request changes
// nothing. ErrAgentStepGap when index is past the next; ErrAgentLimit
// when the session holds MaxAgentSteps.
func (s *Store) AddAgentStep(ctx context.Context, id string, index int, report []byte) (added bool, err error) {
	n, err := addAgentStepScript.Run(ctx, s.rdb, []string{s.agentKey(id, "session"), s.agentKey(id, "steps")},
		report, index, MaxAgentSteps).Int()
	if err != nil {
		return false, fmt.Errorf("agent %s step %d: %w", id, index, err)
	}
	switch n {
	case -1:
		return false, fmt.Errorf("agent %s step %d: %w", id, index, ErrNoAgent)
	case -2:
		return false, fmt.Errorf("agent %s step %d: more than %d: %w", id, index, MaxAgentSteps, ErrAgentLimit)
	case -3:
		return false, fmt.Errorf("agent %s step %d: %w", id, index, ErrAgentStepGap)
	}
	return n == 1, nil
}

var addAgentStepScript = redis.NewScript(`
local exp = redis.call("HGET", KEYS[1], "expires")
if not exp then return -1 end
local n = redis.call("LLEN", KEYS[2])
local i = tonumber(ARGV[2])
if i < n then return 0 end
if i > n then return -3 end
if n >= tonumber(ARGV[3]) then return -2 end
redis.call("RPUSH", KEYS[2], ARGV[1])
redis.call("PEXPIREAT", KEYS[2], exp)
return 1`)

// AgentSteps returns session id's step reports in order.
func (s *Store) AgentSteps(ctx context.Context, id string) ([][]byte, error) {
	l, err := s.rdb.LRange(ctx, s.agentKey(id, "steps"), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("agent %s steps: %w", id, err)
	}
	out := make([][]byte, len(l))
	for i, v := range l {
		out[i] = []byte(v)
	}
	return out, nil
}

// FinishAgent records that session id's agent ended, with errMsg when it
// failed. The first end reported stays: a retried report changes nothing.
func (s *Store) FinishAgent(ctx context.Context, id, errMsg string) error {
	n, err := finishAgentScript.Run(ctx, s.rdb, []string{s.agentKey(id, "session")}, errMsg).Int()
	if err != nil {
		return fmt.Errorf("agent %s done: %w", id, err)
	}
	if n == -1 {
		return fmt.Errorf("agent %s done: %w", id, ErrNoAgent)
	}
	return nil
}

var finishAgentScript = redis.NewScript(`
local done = redis.call("HGET", KEYS[1], "done")
if not done then return -1 end
if done == "1" then return 0 end
redis.call("HSET", KEYS[1], "done", "1", "error", ARGV[1])
return 1`)

// SetAgentCopied records that the log of session id has been copied into
// the run's own log up to offset. The mark only moves forward: a smaller
// offset than the one recorded changes nothing.
func (s *Store) SetAgentCopied(ctx context.Context, id string, offset int64) error {
	n, err := setAgentCopiedScript.Run(ctx, s.rdb, []string{s.agentKey(id, "session")}, offset).Int()
	if err != nil {
		return fmt.Errorf("agent %s copied: %w", id, err)
	}
	if n == -1 {
		return fmt.Errorf("agent %s copied: %w", id, ErrNoAgent)
	}
	return nil
}

var setAgentCopiedScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 0 then return -1 end
local have = tonumber(redis.call("HGET", KEYS[1], "copied") or "0")
if tonumber(ARGV[1]) <= have then return 0 end
redis.call("HSET", KEYS[1], "copied", ARGV[1])
return 1`)

// CloseAgent deletes session id and everything of it, its token first, so
// that the token stops working. Closing a session that is gone is not an
// error.
func (s *Store) CloseAgent(ctx context.Context, id string) error {
	keys := s.agentKeys(id)
	tok, err := s.rdb.HGet(ctx, keys[0], "token").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("close agent %s: %w", id, err)
	}
	if tok != "" {
		if err := s.rdb.Del(ctx, s.agentTokenKey(tok)).Err(); err != nil {
			return fmt.Errorf("close agent %s: %w", id, err)
		}
	}
	if err := s.rdb.Del(ctx, keys...).Err(); err != nil {
		return fmt.Errorf("close agent %s: %w", id, err)
	}
	return nil
}
