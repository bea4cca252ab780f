package web

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"time"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/jobs/store"
)

// Cookies of the pages. Both are HttpOnly, SameSite=Lax (sent on the
// top-level navigation back from the code host, never on another site's
// requests) and Secure unless the public URL is http; their values are
// random and mean nothing without the record the store keeps.
const (
	// sessionCookie holds the login to the pages.
	sessionCookie = "mlbot_session"
	// loginCookie holds the OAuth state of a login under way, binding the
	// code host's answer to the browser that asked.
	loginCookie = "mlbot_login"
)

// session is a login to the pages: who the person is on each code host
// they logged in with.
type session struct {
	// Users are the person's accounts, by forge.
	Users   map[string]bot.OAuthUser `json:"users"`
	Created time.Time                `json:"created"`
}

// user returns the account of forge, or nil.
func (se *session) user(forge string) *bot.OAuthUser {
	if se == nil {
		return nil
	}
	if u, ok := se.Users[forge]; ok {
		return &u
	}
	return nil
}

// loginState is what a login that left for the code host must find when
// it comes back.
type loginState struct {
	Forge string `json:"forge"`
	// Next is the page to return to.
	Next string `json:"next"`
	// Verifier is the PKCE code verifier.
	Verifier string `json:"verifier"`
}

// newToken returns a fresh random cookie value or state (256 bits).
func newToken() string { return rand.Text() + rand.Text() }

// session returns the login of r's cookie, and the cookie's value; nil
// when there is none (or the store cannot be read, which a page treats as
// logged out).
func (s *Server) session(r *http.Request) (*session, string) {
	if s.opts.Sessions == nil {
		return nil, ""
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" || len(c.Value) > 128 {
		return nil, ""
	}
	b, ok, err := s.opts.Sessions.Session(r.Context(), c.Value)
	if err != nil {
		s.log.Warn("session unreadable", "err", err)
		return nil, ""
	}
	if !ok {
		return nil, ""
	}
	var se session
	if err := json.Unmarshal(b, &se); err != nil {
		return nil, ""
	}
	return &se, c.Value
}

// saveSession stores se under a fresh cookie value and sets the cookie:
// a login never keeps the cookie it came with, so that a value planted in
// the browser before the login logs nobody in.
func (s *Server) saveSession(ctx context.Context, w http.ResponseWriter, se *session, old string) error {
	b, err := json.Marshal(se)
	if err != nil {
		return err
	}
	token := newToken()
	if err := s.opts.Sessions.SaveSession(ctx, token, b); err != nil {
		return err
	}
	if old != "" {
		s.opts.Sessions.DeleteSession(ctx, old)
	}
	s.setCookie(w, sessionCookie, token, "/", store.SessionTTL)
	return nil
}

// setCookie sets (maxAge > 0) or clears (maxAge 0) a cookie of the pages.
func (s *Server) setCookie(w http.ResponseWriter, name, value, path string, maxAge time.Duration) {
	c := &http.Cookie{Name: name, Value: value, Path: path, HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
		MaxAge: int(maxAge.Seconds())}
	if maxAge <= 0 {
		c.Value, c.MaxAge = "", -1
	}
	http.SetCookie(w, c)
}
