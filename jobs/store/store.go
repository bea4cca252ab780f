package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mlbot/mlbot/bot"
)

// Store keeps runs, baselines and comment ids in Redis under one key prefix.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
}

// New returns a Store using keys that start with prefix (DefaultPrefix
// for mlbot).
func New(rdb redis.UniversalClient, prefix string) *Store {
	return &Store{rdb: rdb, prefix: prefix}
}

// SaveRun writes a run, and keeps it in the indexes of its repository's
// runs.
func (s *Store) SaveRun(ctx context.Context, r *Run) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.runKey(r.ID), b, RunTTL)
		s.indexRun(ctx, p, r)
		return nil
	})
	return err
}

// GetRun reads a run; ErrNoRun when it does not exist.
func (s *Store) GetRun(ctx context.Context, id string) (*Run, error) {
	b, err := s.rdb.Get(ctx, s.runKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("run %s: %w", id, ErrNoRun)
	}
	if err != nil {
		return nil, err
	}
	var r Run
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("run %s: %w", id, err)
	}
	return &r, nil
}

// CreateRun stores r unless a run with its id exists, indexing it among
// its repository's runs; it reports whether it created it.
func (s *Store) CreateRun(ctx context.Context, r *Run) (bool, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return false, err
	}
	created, err := s.rdb.SetNX(ctx, s.runKey(r.ID), b, RunTTL).Result()
	if err != nil || !created {
		return created, err
	}
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		s.indexRun(ctx, p, r)
		return nil
	})
	return true, err
}

// idBytes is the size of run and deploy ids: 128 random bits, so that a
// link to a run or deploy page cannot be guessed or computed.
const idBytes = 16

// NewID returns a fresh random id: 32 lower-case hex digits from
// crypto/rand.
func NewID() string {
	var b [idBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand does not fail on the systems mlbot runs on; an id
		// that is not random must never be handed out.
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return hex.EncodeToString(b[:])
}

// ClaimID returns the id that dedupe key of kind ("run", "deploy") stands
// for. The first caller's fresh random id (NewID) is stored, atomically
// and only if the key has none; every later caller gets that same id. The
// key itself may be derived from inputs (repository, commit, comment):
// only the id appears in links.
func (s *Store) ClaimID(ctx context.Context, kind, key string) (string, error) {
	id, err := claimIDScript.Run(ctx, s.rdb, []string{s.idKey(kind, key)}, NewID(), int(IDTTL.Seconds())).Text()
	if err != nil {
		return "", fmt.Errorf("claim %s id: %w", kind, err)
	}
	return id, nil
}

var claimIDScript = redis.NewScript(`
local id = redis.call("GET", KEYS[1])
if id then return id end
redis.call("SET", KEYS[1], ARGV[1], "EX", ARGV[2])
return ARGV[1]`)

// AddBaseline indexes a finished baseline run of branch by its commit.
func (s *Store) AddBaseline(ctx context.Context, repo bot.Repo, sha, runID string) error {
	k := s.baselineKey(RepoKey(repo))
	if err := s.rdb.HSet(ctx, k, sha, runID).Err(); err != nil {
		return err
	}
	// The index lives as long as the runs it points to, renewed by each
	// new baseline.
	return s.rdb.Expire(ctx, k, RunTTL).Err()
}

// FindBaseline returns the run id of the first of shas (newest first) that
// has a baseline run with metrics, and that commit; "" when none has.
func (s *Store) FindBaseline(ctx context.Context, repo bot.Repo, shas []string) (*Run, error) {
	if len(shas) == 0 {
		return nil, nil
	}
	ids, err := s.rdb.HMGet(ctx, s.baselineKey(RepoKey(repo)), shas...).Result()
	if err != nil {
		return nil, err
	}
	for _, v := range ids {
		id, ok := v.(string)
		if !ok || id == "" {
			continue
		}
		r, err := s.GetRun(ctx, id)
		if errors.Is(err, ErrNoRun) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if r.HasMetrics() {
			return r, nil
		}
	}
	return nil, nil
}

// AdvanceHead records sha as the pull request's head unless a delivery
// received later already named another head; fresh is false then. Re-
// recording the current head is fresh, so a retried event still runs.
func (s *Store) AdvanceHead(ctx context.Context, repo bot.Repo, pr int, sha string, received time.Time) (fresh bool, err error) {
	if received.IsZero() {
		received = time.Now()
	}
	r, n := RepoKey(repo), strconv.Itoa(pr)
	res, err := advanceScript.Run(ctx, s.rdb, []string{s.prHeadKey(r, n), s.prHeadAtKey(r, n)}, sha, received.UnixMicro(), int(RunTTL.Seconds())).Int()
	return res == 1, err
}

var advanceScript = redis.NewScript(`
local at = redis.call("GET", KEYS[2])
local head = redis.call("GET", KEYS[1])
if at and tonumber(at) > tonumber(ARGV[2]) and head ~= ARGV[1] then return 0 end
redis.call("SET", KEYS[1], ARGV[1], "EX", ARGV[3])
if not at or tonumber(at) < tonumber(ARGV[2]) then redis.call("SET", KEYS[2], ARGV[2], "EX", ARGV[3]) end
return 1`)

// Errors of HeadAt: the pull request's head at a time cannot be told.
var (
	// ErrNoHeadHistory: no event of the pull request with a head and the
	// host's time was seen.
	ErrNoHeadHistory = errors.New("no head of the pull request is known")
	// ErrBeforeHeads: the time is earlier than every head known.
	ErrBeforeHeads = errors.New("the time is earlier than every known head of the pull request")
)

// RecordHead keeps an observation from a pull request event: by the
// host's clock, at time at the pull request's head was sha. received, when
// mlbot accepted the event, orders observations of the same host second.
// The newest HeadHistory observations are kept, as long as runs.
func (s *Store) RecordHead(ctx context.Context, repo bot.Repo, pr int, sha string, at, received time.Time) error {
	if received.IsZero() {
		received = time.Now()
	}
	k := s.prHeadsKey(RepoKey(repo), strconv.Itoa(pr))
	// Members of one score sort by their bytes: the zero-padded receive
	// time makes the one received last the greatest.
	member := fmt.Sprintf("%020d:%s", received.UnixMicro(), sha)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, k, redis.Z{Score: float64(at.UnixMilli()), Member: member})
		p.ZRemRangeByRank(ctx, k, 0, -HeadHistory-1)
		p.Expire(ctx, k, RunTTL)
		return nil
	})
	if err != nil {
		return fmt.Errorf("record head of #%d: %w", pr, err)
	}
	return nil
}

// HeadAt returns the pull request's head at time t by the host's clock:
// the newest observation (RecordHead) at or before t; of several in the
// same host millisecond, the one received last. ErrNoHeadHistory or
// ErrBeforeHeads when it cannot be told.
func (s *Store) HeadAt(ctx context.Context, repo bot.Repo, pr int, t time.Time) (string, error) {
	k := s.prHeadsKey(RepoKey(repo), strconv.Itoa(pr))
	got, err := s.rdb.ZRevRangeByScore(ctx, k, &redis.ZRangeBy{Max: strconv.FormatInt(t.UnixMilli(), 10), Min: "-inf", Count: 1}).Result()
	if err != nil {
		return "", fmt.Errorf("head of #%d at %s: %w", pr, t.Format(time.RFC3339), err)
	}
	if len(got) == 0 {
		n, err := s.rdb.ZCard(ctx, k).Result()
		if err != nil {
			return "", fmt.Errorf("head of #%d at %s: %w", pr, t.Format(time.RFC3339), err)
		}
		if n == 0 {
			return "", ErrNoHeadHistory
		}
		return "", ErrBeforeHeads
	}
	_, sha, _ := strings.Cut(got[0], ":")
	return sha, nil
}

// Head returns the newest head commit recorded for a pull request, or "".
func (s *Store) Head(ctx context.Context, repo bot.Repo, pr int) (string, error) {
	v, err := s.rdb.Get(ctx, s.prHeadKey(RepoKey(repo), strconv.Itoa(pr))).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, err
}

// CommentID returns the id of mlbot's comment on a pull request, or 0.
func (s *Store) CommentID(ctx context.Context, repo bot.Repo, pr int) (int64, error) {
	v, err := s.rdb.Get(ctx, s.commentKey(RepoKey(repo), strconv.Itoa(pr))).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return v, err
}

// SetCommentID remembers mlbot's comment on a pull request (0 forgets it).
func (s *Store) SetCommentID(ctx context.Context, repo bot.Repo, pr int, id int64) error {
	k := s.commentKey(RepoKey(repo), strconv.Itoa(pr))
	if id == 0 {
		return s.rdb.Del(ctx, k).Err()
	}
	return s.rdb.Set(ctx, k, id, RunTTL).Err()
}

// RequestCancel asks that run id stop, for reason; a pipeline checks it
// before starting and when its context is cancelled.
func (s *Store) RequestCancel(ctx context.Context, id, reason string) error {
	return s.rdb.Set(ctx, s.cancelKey(id), reason, CancelTTL).Err()
}

// CancelReason returns why run id was asked to stop, or "".
func (s *Store) CancelReason(ctx context.Context, id string) (string, error) {
	v, err := s.rdb.Get(ctx, s.cancelKey(id)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, err
}

// SavePullRequest keeps what mlbot last learned of a pull request, for
// comment commands, whose payloads do not carry the head commit.
func (s *Store) SavePullRequest(ctx context.Context, repo bot.Repo, pr *bot.PullRequest) error {
	b, err := json.Marshal(pr)
	if err != nil {
		return err
	}
	return s.rdb.Set(ctx, s.prKey(RepoKey(repo), strconv.Itoa(pr.Number)), b, RunTTL).Err()
}

// PullRequest returns the stored pull request, or nil when mlbot has not
// seen it.
func (s *Store) PullRequest(ctx context.Context, repo bot.Repo, number int) (*bot.PullRequest, error) {
	b, err := s.rdb.Get(ctx, s.prKey(RepoKey(repo), strconv.Itoa(number))).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var pr bot.PullRequest
	if err := json.Unmarshal(b, &pr); err != nil {
		return nil, err
	}
	return &pr, nil
}

// SetCurrentRun records the run a pull request's status and comment now
// follow, for /cancel.
func (s *Store) SetCurrentRun(ctx context.Context, repo bot.Repo, number int, runID string) error {
	return s.rdb.Set(ctx, s.prRunKey(RepoKey(repo), strconv.Itoa(number)), runID, RunTTL).Err()
}

// CurrentRun returns the pull request's current run id, or "".
func (s *Store) CurrentRun(ctx context.Context, repo bot.Repo, number int) (string, error) {
	v, err := s.rdb.Get(ctx, s.prRunKey(RepoKey(repo), strconv.Itoa(number))).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, err
}

// Approve records a trusted member's /ok-to-test for one head commit.
func (s *Store) Approve(ctx context.Context, repo bot.Repo, number int, sha, by string) error {
	return s.rdb.Set(ctx, s.approvedKey(RepoKey(repo), strconv.Itoa(number), sha), by, RunTTL).Err()
}

// Approved reports whether sha of the pull request was approved.
func (s *Store) Approved(ctx context.Context, repo bot.Repo, number int, sha string) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.approvedKey(RepoKey(repo), strconv.Itoa(number), sha)).Result()
	return n == 1, err
}

// MarkDone records that a piece of once-only work (a command of a
// delivery) is done; Done asks.
func (s *Store) MarkDone(ctx context.Context, key string) error {
	return s.MarkDoneFor(ctx, key, WebhookRetention)
}

// MarkDoneFor is MarkDone for work that must stay done for ttl.
func (s *Store) MarkDoneFor(ctx context.Context, key string, ttl time.Duration) error {
	return s.rdb.Set(ctx, s.doneKey(key), 1, ttl).Err()
}

// Done reports whether MarkDone was called for key.
func (s *Store) Done(ctx context.Context, key string) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.doneKey(key)).Result()
	return n == 1, err
}

// Once runs act unless key is marked done, and marks key done for ttl
// once act succeeds: the at-least-once delivery of a task becomes "once
// act has succeeded", so a task retried after a later step failed does
// not act again. A failed act leaves key unmarked for the retry; a crash
// between act and the mark, the one gap left, acts again.
func (s *Store) Once(ctx context.Context, key string, ttl time.Duration, act func() error) error {
	if done, err := s.Done(ctx, key); err != nil || done {
		return err
	}
	if err := act(); err != nil {
		return err
	}
	return s.MarkDoneFor(ctx, key, ttl)
}

// CachePermission remembers a user's permission on a repository briefly.
func (s *Store) CachePermission(ctx context.Context, repo bot.Repo, user string, p bot.Permission) error {
	return s.rdb.Set(ctx, s.permKey(RepoKey(repo), strings.ToLower(user)), string(p), PermissionTTL).Err()
}

// CachedPermission returns a cached permission; ok is false on a miss.
func (s *Store) CachedPermission(ctx context.Context, repo bot.Repo, user string) (p bot.Permission, ok bool, err error) {
	v, err := s.rdb.Get(ctx, s.permKey(RepoKey(repo), strings.ToLower(user))).Result()
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	return bot.Permission(v), err == nil, err
}

// SetMergedPR remembers which pull request a merge commit came from, so
// that the default branch's run of it can answer in that thread.
func (s *Store) SetMergedPR(ctx context.Context, repo bot.Repo, sha string, number int) error {
	return s.rdb.Set(ctx, s.mergedKey(RepoKey(repo), sha), number, RunTTL).Err()
}

// MergedPR returns the pull request merged as sha, or 0.
func (s *Store) MergedPR(ctx context.Context, repo bot.Repo, sha string) (int, error) {
	n, err := s.rdb.Get(ctx, s.mergedKey(RepoKey(repo), sha)).Int()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return n, err
}
