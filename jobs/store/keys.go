package store

import (
	"strings"
	"time"

	"github.com/mlbot/mlbot/bot"
)

// Every Redis key mlbot writes outside asynq's own queues is built in this
// file, and every TTL those keys live for is declared here, so that what
// mlbot keeps and for how long can be read in one place (asynq's
// internal/base does the same for its keys). Keys start with the Store's
// prefix (DefaultPrefix); the parts below follow it, joined by ":".

// DefaultPrefix starts every key of the Store mlbot builds.
const DefaultPrefix = "mlbot:"

// TTLs and bounds of what the Store keeps.
const (
	// RunTTL bounds how long run records, and everything indexed by run
	// (baselines, heads, comment ids, approvals, pull requests, merges),
	// are kept. Run logs on disk are cleaned up after it too.
	RunTTL = 90 * 24 * time.Hour

	// IDTTL is how long a dedupe key keeps its id: as long as the runs it
	// names are kept, so a late redelivery finds the run instead of
	// training again.
	IDTTL = RunTTL

	// CancelTTL is how long a request to cancel a run is kept.
	CancelTTL = 24 * time.Hour

	// PermissionTTL is how long a user's permission is trusted before the
	// host is asked again: long enough for a burst of commands, short
	// enough that a revoked member loses power within a minute.
	PermissionTTL = time.Minute

	// WebhookRetention keeps accepted deliveries' task ids so that a
	// redelivery within it is recognised, and marks once-only work done
	// (MarkDone) for as long.
	WebhookRetention = 24 * time.Hour

	// RunRetention keeps finished pipeline, report and deploy task ids,
	// an environment's deploy line, deploy replies and merge notes.
	RunRetention = 7 * 24 * time.Hour

	// HeadHistory bounds the head observations kept per pull request.
	HeadHistory = 100

	// RecentRuns bounds the runs a repository's index of recent runs
	// keeps (the overview and repository pages list them).
	RecentRuns = 500

	// RecentSweeps bounds the sweeps a repository's index of sweeps keeps
	// (the repository page lists them).
	RecentSweeps = 100

	// BaselineHistory bounds the default-branch runs a repository's
	// history keeps for the metric charts.
	BaselineHistory = 200

	// ServedTTL is how long a repository that delivered a webhook stays
	// among those the reconciler lists without delivering another.
	ServedTTL = RunTTL

	// SessionTTL is how long a login to the web pages lasts.
	SessionTTL = 12 * time.Hour

	// LoginStateTTL is how long a login may take between leaving for the
	// code host and coming back: the host's own authorization codes
	// expire after ten minutes.
	LoginStateTTL = 10 * time.Minute

	// MaxRunLogBytes bounds the log of one run kept for the run page; the
	// log sink caps what it sends at the same size (runners.DefaultMaxFileBytes).
	MaxRunLogBytes = 16<<20 + 4096

	// MaxAgentLogBytes bounds the log bytes kept of one agent session:
	// past it, chunks are accepted and counted, so the agent's offset
	// still advances, but not stored.
	MaxAgentLogBytes = 16 << 20

	// MaxAgentFiles bounds the metric files, and separately the artifact
	// records, kept of one agent session.
	MaxAgentFiles = 64

	// MaxAgentSteps bounds the step reports kept of one agent session.
	MaxAgentSteps = 256
)

// RepoKey is the part of a key that names a repository: its forge and its
// full name, lower-cased.
func RepoKey(r bot.Repo) string { return r.Forge + ":" + strings.ToLower(r.FullName) }

// key joins parts under the Store's prefix.
func (s *Store) key(parts ...string) string { return s.prefix + strings.Join(parts, ":") }

// runLogKey holds a run's log as the page streams it (a string that only
// grows, at most MaxRunLogBytes), for RunTTL.
func (s *Store) runLogKey(id string) string { return s.key("runlog", id) }

// examplesKey holds a run's per-example results (report.EncodeExamples:
// compressed, at most report.MaxExamplesBlobBytes), for RunTTL.
func (s *Store) examplesKey(id string) string { return s.key("examples", id) }

// runKey holds a run record (JSON), for RunTTL.
func (s *Store) runKey(id string) string { return s.key("run", id) }

// runsKey is a sorted set of a repository's run ids by creation time, the
// newest RecentRuns of them, for RunTTL from the newest.
func (s *Store) runsKey(repo string) string { return s.key("runs", repo) }

// baselineRunsKey is a sorted set of a repository's default-branch run ids
// by creation time, the newest BaselineHistory of them, for RunTTL from
// the newest.
func (s *Store) baselineRunsKey(repo string) string { return s.key("baselineruns", repo) }

// reposKey is a sorted set of the repositories that have runs, by the
// creation time of their newest run (ms), for RunTTL from the newest;
// repositories without a run for RunTTL leave it.
func (s *Store) reposKey() string { return s.key("repos") }

// servedKey is a hash of the repositories that delivered a webhook, by
// repo key (RepoKey), each the repository as its newest delivery named it
// and when (JSON); the reconciler lists them. Entries older than
// ServedTTL are dropped when it is read.
func (s *Store) servedKey() string { return s.key("served") }

// sessionKey holds a web login (JSON) by the SHA-256 of its cookie, for
// SessionTTL: whoever reads Redis learns no cookie that would log in.
func (s *Store) sessionKey(digest string) string { return s.key("session", digest) }

// loginStateKey holds a login under way (JSON) by the SHA-256 of its
// OAuth state parameter, for LoginStateTTL; it is read once.
func (s *Store) loginStateKey(digest string) string { return s.key("loginstate", digest) }

// idKey maps a dedupe key of kind ("run", "deploy") to its random id, for
// IDTTL.
func (s *Store) idKey(kind, key string) string { return s.key("id", kind, key) }

// baselineKey is a hash of a repository's baseline runs by commit, for
// RunTTL from the newest.
func (s *Store) baselineKey(repo string) string { return s.key("baseline", repo) }

// prHeadKey holds a pull request's newest head commit, for RunTTL.
func (s *Store) prHeadKey(repo string, pr string) string { return s.key("prhead", repo, pr) }

// prHeadAtKey holds the receive time (µs) of the delivery that named the
// pull request's newest head, for RunTTL.
func (s *Store) prHeadAtKey(repo string, pr string) string { return s.key("prhead", repo, pr, "at") }

// prHeadsKey is a sorted set of a pull request's head observations by the
// host's time, the newest HeadHistory of them, for RunTTL.
func (s *Store) prHeadsKey(repo string, pr string) string { return s.key("prheads", repo, pr) }

// commentKey holds the id of mlbot's comment on a pull request, for RunTTL.
func (s *Store) commentKey(repo string, pr string) string { return s.key("comment", repo, pr) }

// sweepKey holds a sweep record (JSON), for RunTTL.
func (s *Store) sweepKey(id string) string { return s.key("sweep", id) }

// sweepsKey is a sorted set of a repository's sweep ids by creation time,
// the newest RecentSweeps of them, for RunTTL from the newest.
func (s *Store) sweepsKey(repo string) string { return s.key("sweeps", repo) }

// prSweepKey holds the id of a pull request's newest sweep, for RunTTL.
func (s *Store) prSweepKey(repo string, pr string) string { return s.key("prsweep", repo, pr) }

// sweepCommentKey holds the id of mlbot's sweep comment on a pull request
// (the second sticky comment, beside commentKey's), for RunTTL.
func (s *Store) sweepCommentKey(repo string, pr string) string {
	return s.key("sweepcomment", repo, pr)
}

// cancelKey holds why run id was asked to stop, for CancelTTL.
func (s *Store) cancelKey(id string) string { return s.key("cancel", id) }

// lockKey holds a lease's token, for the lease's own TTL.
func (s *Store) lockKey(name string) string { return s.key("lock", name) }

// prKey holds what mlbot last learned of a pull request (JSON), for RunTTL.
func (s *Store) prKey(repo string, pr string) string { return s.key("pr", repo, pr) }

// prRunKey holds the run a pull request now follows, for RunTTL.
func (s *Store) prRunKey(repo string, pr string) string { return s.key("prrun", repo, pr) }

// approvedKey holds who approved a pull request's head commit, for RunTTL.
func (s *Store) approvedKey(repo string, pr string, sha string) string {
	return s.key("approved", repo, pr, sha)
}

// doneKey marks once-only work done, for WebhookRetention or the caller's
// TTL.
func (s *Store) doneKey(key string) string { return s.key("done", key) }

// permKey caches a user's permission on a repository, for PermissionTTL.
func (s *Store) permKey(repo string, user string) string { return s.key("perm", repo, user) }

// mergedKey holds the pull request merged as a commit, for RunTTL.
func (s *Store) mergedKey(repo string, sha string) string { return s.key("merged", repo, sha) }

// mergeNotesKey is a hash of the notes kept about a default-branch commit,
// by note key, for RunRetention.
func (s *Store) mergeNotesKey(repo string, sha string) string {
	return s.key("mergenotes", repo, sha)
}

// deployLineKey is the list of deploy ids waiting for an environment, in
// request order, for RunRetention from the newest.
func (s *Store) deployLineKey(repo string, env string) string { return s.key("deployq", repo, env) }

// deployReplyKey holds the reply written when a deploy was refused, for
// RunRetention.
func (s *Store) deployReplyKey(id string) string { return s.key("deployreplybody", id) }

// The model registry's records (package registry, through the Store):
//
//	registry:repos                    set of repo keys
//	registry:{<repo>}:seq             last version number (INCR)
//	registry:{<repo>}:runs            hash run id → version number
//	registry:{<repo>}:versions        hash version number → Version JSON
//	registry:{<repo>}:envs            set of environments deployed to
//	registry:{<repo>}:deploys:<env>   sorted set of deploy ids by request time
//	registry:deploy:<id>              Deploy JSON
//
// The braces are a Redis Cluster hash tag: a repository's keys share a slot,
// so the version-allocation script may touch them together. The registry's
// records do not expire; a deploy history is capped instead (TrimDeploys),
// and versions no retention rule keeps are dropped (DropModelVersion).

// The artifact store's blobs (package registry, which keeps the bytes on
// disk) are guarded by two keys per blob while they change hands, so that
// the retention collector never deletes a blob a record is about to name:
//
//	artifacts:{<sha256>}:pins      sorted set of pin tokens by expiry (Unix
//	                               ms): a Record about to name the blob; the
//	                               key expires with its newest pin
//	artifacts:{<sha256>}:deleting  the collector's token while it deletes
//	                               the blob
//
// The hash tag {<sha256>} keeps a blob's two keys in one Redis Cluster slot,
// for the scripts that read one and write the other. Their TTLs are the
// registry's to give (package registry, collect.go): an hour for a pin,
// which a Record removes within a few Redis calls unless it dies, and a
// minute for a claim, which the collector uses within half of it.

// blobPinsKey is the sorted set of pins on blob digest, for the TTL of
// the newest.
func (s *Store) blobPinsKey(digest string) string {
	return s.prefix + "artifacts:{" + digest + "}:pins"
}

// blobDeletingKey holds the token of the collection deleting blob digest,
// for its claim's TTL.
func (s *Store) blobDeletingKey(digest string) string {
	return s.prefix + "artifacts:{" + digest + "}:deleting"
}

// registryRepoKey is key part of registry repository repo (a registry
// repo key, lower-cased).
func (s *Store) registryRepoKey(repo, part string) string {
	return s.prefix + "registry:{" + repo + "}:" + part
}

// registryReposKey is the set of repositories the registry knows.
func (s *Store) registryReposKey() string { return s.prefix + "registry:repos" }

// registryDeployKey holds deploy record id (JSON).
func (s *Store) registryDeployKey(id string) string { return s.prefix + "registry:deploy:" + id }

// An agent session (agent.go) lives for the TTL its Open was given, the
// same for every key of it; Close deletes them all at once. The keys of
// one session share the hash tag {<id>}, so a script may touch them
// together on a Redis Cluster:
//
//	agent:{<id>}:session    hash: job (JSON), token (sha256 hex of the
//	                        bearer token), expires (Unix ms), logn (log
//	                        length including bytes past the cap), done,
//	                        error
//	agent:{<id>}:log        string: the first MaxAgentLogBytes of the log
//	agent:{<id>}:metrics    hash: relative path → metric file's bytes
//	agent:{<id>}:artifacts  hash: relative path → "sha256:<hex> <size>"
//	agent:{<id>}:steps      list of step reports (JSON), in order
//	agent:token:<sha256>    the run id a token hash stands for

// agentKey is part of agent session id's keys.
func (s *Store) agentKey(id, part string) string { return s.prefix + "agent:{" + id + "}:" + part }

// agentKeys are all of agent session id's own keys, the session first.
func (s *Store) agentKeys(id string) []string {
	return []string{s.agentKey(id, "session"), s.agentKey(id, "log"), s.agentKey(id, "metrics"),
		s.agentKey(id, "artifacts"), s.agentKey(id, "steps")}
}

// agentTokenKey maps the sha256 (hex) of an agent's bearer token to its
// run id, for the session's TTL.
func (s *Store) agentTokenKey(tokenHash string) string { return s.prefix + "agent:token:" + tokenHash }

// A pipeline queue's fair line (fair.go) is kept in keys that share the
// hash tag {<queue>} (on a Redis Cluster the prefix's {mlbot} comes first
// and is the tag: still one slot), without TTL (they hold work; the
// scripts delete what empties):
//
//	fair:{<queue>}:ring           list of repo keys with runs waiting, in
//	                              turn order
//	fair:{<queue>}:repo:<repo>    list of a repository's waiting run ids,
//	                              oldest first
//	fair:{<queue>}:tasks          hash run id → its signed task
//	fair:{<queue>}:claims         hash run id → claim expiry (Unix ms)
//	fair:{<queue>}:since          sorted set of run ids by when they
//	                              joined the line (Unix ms)

// fairRingKey is the turn order of queue's fair line.
func (s *Store) fairRingKey(queue string) string { return s.prefix + "fair:{" + queue + "}:ring" }

// fairRepoPrefix starts the key of a repository's runs in queue's fair
// line; the repo key follows it.
func (s *Store) fairRepoPrefix(queue string) string { return s.prefix + "fair:{" + queue + "}:repo:" }

// fairTasksKey is the hash of the tasks of queue's fair line.
func (s *Store) fairTasksKey(queue string) string { return s.prefix + "fair:{" + queue + "}:tasks" }

// fairClaimsKey is the hash of the claims on queue's fair line.
func (s *Store) fairClaimsKey(queue string) string { return s.prefix + "fair:{" + queue + "}:claims" }

// fairSinceKey is the sorted set of queue's waiting runs by the time they
// joined the line.
func (s *Store) fairSinceKey(queue string) string { return s.prefix + "fair:{" + queue + "}:since" }

// asynqPendingKey is asynq's list of queue's pending task ids
// (internal/base.PendingKey); the Store only reads its length.
func asynqPendingKey(queue string) string { return "asynq:{" + queue + "}:pending" }
