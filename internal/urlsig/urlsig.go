// Package urlsig signs URLs that must work without a login for a while:
// the charts a pull request's comment embeds, which the code host's image
// proxy (GitHub's camo) or a reader's browser fetches without mlbot's
// session cookie. A signature binds one path to one expiry under a key
// every replica of an install shares; nothing else in the URL counts.
package urlsig

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// Errors Verify returns, to compare with errors.Is.
var (
	// ErrMissing is a URL without an expiry or a signature.
	ErrMissing = errors.New("urlsig: no signature")
	// ErrBadSignature is a signature that does not match the path and
	// expiry, or a malformed expiry.
	ErrBadSignature = errors.New("urlsig: bad signature")
	// ErrExpired is a valid signature past its expiry.
	ErrExpired = errors.New("urlsig: expired")
)

// The query parameters a signed URL carries.
const (
	expParam = "exp"
	sigParam = "sig"
)

// Signer signs and verifies paths under one key.
type Signer struct {
	key []byte
}

// New returns a Signer whose key is derived from secret for one purpose
// ("chart images v1", say), so that the same install secret signs
// different kinds of URL with keys that cannot stand in for each other.
// secret must not be empty.
func New(secret []byte, purpose string) (*Signer, error) {
	if len(secret) == 0 {
		return nil, errors.New("urlsig: empty secret")
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("mlbot urlsig\x00" + purpose))
	return &Signer{key: m.Sum(nil)}, nil
}

// Query returns the query string ("exp=…&sig=…") that makes path valid
// until exp (to the second).
func (s *Signer) Query(path string, exp time.Time) string {
	e := strconv.FormatInt(exp.Unix(), 10)
	return url.Values{expParam: {e}, sigParam: {s.mac(path, e)}}.Encode()
}

// Verify checks that q (a request's query) signs path and has not expired
// at now.
func (s *Signer) Verify(path string, q url.Values, now time.Time) error {
	e, sig := q.Get(expParam), q.Get(sigParam)
	if e == "" || sig == "" {
		return ErrMissing
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return ErrBadSignature
	}
	want, _ := base64.RawURLEncoding.DecodeString(s.mac(path, e))
	if !hmac.Equal(got, want) {
		return ErrBadSignature
	}
	unix, err := strconv.ParseInt(e, 10, 64)
	if err != nil {
		return ErrBadSignature
	}
	if !now.Before(time.Unix(unix, 0)) {
		return fmt.Errorf("%w at %s", ErrExpired, time.Unix(unix, 0).UTC().Format(time.RFC3339))
	}
	return nil
}

// mac is the signature of path and the expiry as written in the URL, with
// a separator neither can contain.
func (s *Signer) mac(path, exp string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(path))
	m.Write([]byte{0})
	m.Write([]byte(exp))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
