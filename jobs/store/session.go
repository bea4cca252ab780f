package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Web logins: the pages keep who logged in under an opaque, random cookie
// value, and a login under way under its OAuth state parameter. Both are
// stored by their SHA-256, never as they travel, so that a copy of Redis
// holds nothing a browser could present. What they hold (JSON) is package
// web's to define.

// digest names a secret token in a key.
func digest(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// SaveSession stores login b under the cookie value token, for
// SessionTTL from now.
func (s *Store) SaveSession(ctx context.Context, token string, b []byte) error {
	if err := s.rdb.Set(ctx, s.sessionKey(digest(token)), b, SessionTTL).Err(); err != nil {
		return fmt.Errorf("saving session: %w", err)
	}
	return nil
}

// Session returns the login stored under the cookie value token; ok is
// false when there is none (never made, expired or logged out).
func (s *Store) Session(ctx context.Context, token string) (b []byte, ok bool, err error) {
	b, err = s.rdb.Get(ctx, s.sessionKey(digest(token))).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading session: %w", err)
	}
	return b, true, nil
}

// DeleteSession ends the login stored under the cookie value token.
func (s *Store) DeleteSession(ctx context.Context, token string) error {
	if err := s.rdb.Del(ctx, s.sessionKey(digest(token))).Err(); err != nil {
		return fmt.Errorf("deleting session: %w", err)
	}
	return nil
}

// SaveLoginState stores b, what a login that left for the code host
// must find when it comes back, under its OAuth state parameter, for
// LoginStateTTL.
func (s *Store) SaveLoginState(ctx context.Context, state string, b []byte) error {
	if err := s.rdb.Set(ctx, s.loginStateKey(digest(state)), b, LoginStateTTL).Err(); err != nil {
		return fmt.Errorf("saving login state: %w", err)
	}
	return nil
}

// TakeLoginState returns and forgets what SaveLoginState stored under
// state, so that a state is good for one login only; ok is false when
// there is nothing (unknown, expired or used).
func (s *Store) TakeLoginState(ctx context.Context, state string) (b []byte, ok bool, err error) {
	b, err = s.rdb.GetDel(ctx, s.loginStateKey(digest(state))).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading login state: %w", err)
	}
	return b, true, nil
}
