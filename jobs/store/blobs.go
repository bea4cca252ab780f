package store

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The guards of the artifact store's blobs (keys.go): a Record pins each
// blob it is about to name before it puts the blob in place or relies on
// the copy already there, and unpins it once the version naming it is
// written; the retention collector claims a blob before deleting it. A pin
// is refused while a claim is held, and a claim while an unexpired pin is,
// each in one script, so a blob is never deleted under a Record that
// counted on it.

// pinBlobScript adds a pin unless the blob is being deleted.
//
// KEYS[1] pins, KEYS[2] deleting; ARGV[1] token, ARGV[2] expiry (Unix ms),
// ARGV[3] ttl (ms). Returns 1 when pinned, 0 when the blob is claimed.
var pinBlobScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[2]) == 1 then return 0 end
redis.call("ZADD", KEYS[1], ARGV[2], ARGV[1])
if redis.call("PTTL", KEYS[1]) < tonumber(ARGV[3]) then redis.call("PEXPIRE", KEYS[1], ARGV[3]) end
return 1`)

// claimBlobScript claims a blob for deletion unless an unexpired pin
// holds it or another claim does.
//
// KEYS[1] pins, KEYS[2] deleting; ARGV[1] token, ARGV[2] now (Unix ms),
// ARGV[3] ttl (ms). Returns 1 when claimed.
var claimBlobScript = redis.NewScript(`
redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", ARGV[2])
if redis.call("ZCARD", KEYS[1]) > 0 then return 0 end
if redis.call("SET", KEYS[2], ARGV[1], "NX", "PX", ARGV[3]) then return 1 end
return 0`)

// PinBlob pins blob digest for token until ttl from now, telling the
// collector that a record is about to name it. ok is false, and nothing
// is pinned, while a collection is deleting the blob: the caller waits
// and asks again, then stores the blob anew if it is gone.
func (s *Store) PinBlob(ctx context.Context, digest, token string, ttl time.Duration) (ok bool, err error) {
	expiry := time.Now().Add(ttl).UnixMilli()
	n, err := pinBlobScript.Run(ctx, s.rdb, []string{s.blobPinsKey(digest), s.blobDeletingKey(digest)},
		token, expiry, ttl.Milliseconds()).Int()
	return n == 1, err
}

// UnpinBlob removes token's pin on blob digest; other pins stay.
func (s *Store) UnpinBlob(ctx context.Context, digest, token string) error {
	return s.rdb.ZRem(ctx, s.blobPinsKey(digest), token).Err()
}

// BlobPinned reports whether an unexpired pin holds blob digest.
func (s *Store) BlobPinned(ctx context.Context, digest string) (bool, error) {
	n, err := s.rdb.ZCount(ctx, s.blobPinsKey(digest), "("+strconv.FormatInt(time.Now().UnixMilli(), 10), "+inf").Result()
	return n > 0, err
}

// ClaimBlobDeletion claims blob digest for deletion by token for ttl. ok
// is false when a pin holds the blob (a record is about to name it) or
// another claim does. The claimer must release the claim
// (ReleaseBlobDeletion) once the blob is deleted or kept, and must not
// delete it once ttl has passed.
func (s *Store) ClaimBlobDeletion(ctx context.Context, digest, token string, ttl time.Duration) (ok bool, err error) {
	n, err := claimBlobScript.Run(ctx, s.rdb, []string{s.blobPinsKey(digest), s.blobDeletingKey(digest)},
		token, time.Now().UnixMilli(), ttl.Milliseconds()).Int()
	return n == 1, err
}

// ReleaseBlobDeletion ends token's claim on blob digest, if it still holds
// it.
func (s *Store) ReleaseBlobDeletion(ctx context.Context, digest, token string) error {
	return releaseScript.Run(ctx, s.rdb, []string{s.blobDeletingKey(digest)}, token).Err()
}
