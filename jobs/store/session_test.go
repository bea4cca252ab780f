package store

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestSessions(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	const token = "cookie-value-0123456789abcdef"
	if _, ok, err := s.Session(ctx, token); ok || err != nil {
		t.Fatalf("Session before SaveSession = %v, %v", ok, err)
	}
	if err := s.SaveSession(ctx, token, []byte(`{"login":"maria"}`)); err != nil {
		t.Fatal(err)
	}
	b, ok, err := s.Session(ctx, token)
	if err != nil || !ok || string(b) != `{"login":"maria"}` {
		t.Fatalf("Session = %q, %v, %v", b, ok, err)
	}
	if _, ok, _ := s.Session(ctx, token+"x"); ok {
		t.Errorf("another cookie value finds the session")
	}
	// Redis holds no cookie value: a copy of it logs nobody in.
	keys, err := s.rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if strings.Contains(k, token) {
			t.Errorf("key %q holds the cookie value", k)
		}
	}
	ttl, err := s.rdb.TTL(ctx, s.sessionKey(digest(token))).Result()
	if err != nil || ttl < SessionTTL-time.Minute || ttl > SessionTTL {
		t.Errorf("the session lives %s (%v), want %s", ttl, err, SessionTTL)
	}
	if err := s.DeleteSession(ctx, token); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Session(ctx, token); ok {
		t.Errorf("the session outlived DeleteSession")
	}
}

func TestLoginStateIsTakenOnce(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	const state = "state-0123456789abcdef"
	if err := s.SaveLoginState(ctx, state, []byte("next=/runs/x")); err != nil {
		t.Fatal(err)
	}
	ttl, err := s.rdb.TTL(ctx, s.loginStateKey(digest(state))).Result()
	if err != nil || ttl < LoginStateTTL-time.Minute || ttl > LoginStateTTL {
		t.Errorf("the login state lives %s (%v), want %s", ttl, err, LoginStateTTL)
	}
	if _, ok, _ := s.TakeLoginState(ctx, "state-other"); ok {
		t.Errorf("an unknown state was found")
	}
	b, ok, err := s.TakeLoginState(ctx, state)
	if err != nil || !ok || string(b) != "next=/runs/x" {
		t.Fatalf("TakeLoginState = %q, %v, %v", b, ok, err)
	}
	if _, ok, err := s.TakeLoginState(ctx, state); ok || err != nil {
		t.Errorf("a state was taken twice (%v)", err)
	}
}
