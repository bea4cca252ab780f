package urlsig

import (
	"errors"
	"net/url"
	"strconv"
	"testing"
	"time"
)

// TestVerify signs a path and attacks the signature the ways a reader of
// a comment could: another path, a later expiry, a forged or truncated
// signature, a key of another purpose or install, no signature at all.
func TestVerify(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	exp := now.Add(time.Hour)
	s, err := New([]byte("0123456789abcdef0123456789abcdef"), "chart images v1")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := New([]byte("0123456789abcdef0123456789abcdef"), "something else")
	install2, _ := New([]byte("fedcba9876543210fedcba9876543210"), "chart images v1")
	const path = "/charts/runs/0123456789abcdef0123456789abcdef.svg"
	good, _ := url.ParseQuery(s.Query(path, exp))
	with := func(key, value string) url.Values {
		q := url.Values{}
		for k, v := range good {
			q[k] = append([]string(nil), v...)
		}
		q.Set(key, value)
		return q
	}
	parse := func(raw string) url.Values { q, _ := url.ParseQuery(raw); return q }
	tests := []struct {
		name string
		path string
		q    url.Values
		at   time.Time
		want error
	}{
		{"valid", path, good, now, nil},
		{"valid until the second before", path, good, exp.Add(-time.Second), nil},
		{"expired at exp", path, good, exp, ErrExpired},
		{"expired later", path, good, exp.Add(24 * time.Hour), ErrExpired},
		{"another run's path", "/charts/runs/fedcba9876543210fedcba9876543210.svg", good, now, ErrBadSignature},
		{"path with a suffix", path + "x", good, now, ErrBadSignature},
		{"expiry pushed later", path, with("exp", strconv.FormatInt(exp.Add(365*24*time.Hour).Unix(), 10)), now, ErrBadSignature},
		{"expiry not a number", path, with("exp", "soon"), now, ErrBadSignature},
		{"signature forged", path, with("sig", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), now, ErrBadSignature},
		{"signature truncated", path, with("sig", good.Get("sig")[:20]), now, ErrBadSignature},
		{"signature not base64", path, with("sig", "%%%"), now, ErrBadSignature},
		{"no signature", path, with("sig", ""), now, ErrMissing},
		{"no expiry", path, with("exp", ""), now, ErrMissing},
		{"nothing", path, url.Values{}, now, ErrMissing},
		{"another purpose's key", path, parse(other.Query(path, exp)), now, ErrBadSignature},
		{"another install's key", path, parse(install2.Query(path, exp)), now, ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Verify(tt.path, tt.q, tt.at)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestNewRefusesAnEmptySecret: a key derived from nothing would let anyone
// sign.
func TestNewRefusesAnEmptySecret(t *testing.T) {
	if _, err := New(nil, "chart images v1"); err == nil {
		t.Fatal("New accepted an empty secret")
	}
}
