package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/redis/go-redis/v9"
)

// Lock takes a short exclusive lease on name; the returned func releases
// it. ok is false when someone else holds it.
func (s *Store) Lock(ctx context.Context, name string, ttl time.Duration) (release func(), ok bool, err error) {
	l, ok, err := s.Lease(ctx, name, ttl)
	if err != nil || !ok {
		return func() {}, ok, err
	}
	return l.Release, true, nil
}

// Lease is an exclusive, expiring hold on a name. Whoever holds it must
// renew it before it expires; a holder that dies simply lets it lapse.
type Lease struct {
	s          *Store
	key, token string
}

// Lease takes the lease on name for ttl; ok is false when it is held.
func (s *Store) Lease(ctx context.Context, name string, ttl time.Duration) (*Lease, bool, error) {
	var b [12]byte
	rand.Read(b[:])
	l := &Lease{s: s, key: s.lockKey(name), token: hex.EncodeToString(b[:])}
	ok, err := s.rdb.SetNX(ctx, l.key, l.token, ttl).Result()
	if err != nil || !ok {
		return nil, false, err
	}
	return l, true, nil
}

// Renew extends the lease to ttl from now, if it is still ours.
func (l *Lease) Renew(ctx context.Context, ttl time.Duration) (bool, error) {
	n, err := renewScript.Run(ctx, l.s.rdb, []string{l.key}, l.token, ttl.Milliseconds()).Int()
	return n == 1, err
}

// Release gives the lease up, if it is still ours.
func (l *Lease) Release() {
	// Delete only our own lease, in case it expired and was taken.
	releaseScript.Run(context.Background(), l.s.rdb, []string{l.key}, l.token)
}

// Heartbeat renews the lease for ttl at a third of ttl, until the
// returned stop is called. ctx's cancellation does not stop it: the holder
// stops it once it has finished what the lease protects.
func (l *Lease) Heartbeat(ctx context.Context, ttl time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				l.Renew(ctx, ttl)
			}
		}
	}()
	return cancel
}

var renewScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end return 0`)

var releaseScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)
