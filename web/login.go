package web

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/jobs/store"
)

// The login: GET /login/{forge} sends the browser to the code host with a
// fresh state (kept in the store and in a cookie of this browser) and a
// PKCE challenge; the host sends it back to /login/{forge}/callback with a
// code, which is traded for the user once the state matches both. The
// person then has a session, and goes back to the page they wanted.

// forgeTitle is how pages name a forge.
func forgeTitle(forge string) string {
	switch forge {
	case "github":
		return "GitHub"
	case "gitlab":
		return "GitLab"
	}
	return forge
}

// redirectURI is where forge sends people back to.
func (s *Server) redirectURI(forge string) string {
	return s.opts.PublicURL + "/login/" + forge + "/callback"
}

// safeNext returns next when it is a path of this site, "/" otherwise, so
// that a login can never be made to send someone elsewhere. A backslash
// anywhere is refused: http.Redirect cleans the path it is given, so
// "/runs/../\\evil.example.com" would reach the browser as
// "/\\evil.example.com", which browsers read as "//evil.example.com".
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || strings.HasPrefix(path.Clean(u.Path), "//") {
		return "/"
	}
	return next
}

// loginURL is where a page sends someone who must log in with forge to
// see it, and come back to r's page.
func loginURL(forge string, r *http.Request) string {
	return "/login/" + forge + "?next=" + url.QueryEscape(r.URL.RequestURI())
}

type loginOption struct {
	Forge, Title, Href string
	// User is who the person is on the forge already, if logged in.
	User string
}

// serveLogin serves GET /login: a button per code host, and who the
// person already is on each.
func (s *Server) serveLogin(w http.ResponseWriter, r *http.Request, p *pageData) {
	next := safeNext(r.URL.Query().Get("next"))
	if s.opts.Auth != AuthOAuth {
		http.Redirect(w, r, next, http.StatusFound)
		return
	}
	p.Title = "Log in"
	var opts []loginOption
	for forge := range s.logins {
		o := loginOption{Forge: forge, Title: forgeTitle(forge), Href: "/login/" + forge + "?next=" + url.QueryEscape(next)}
		if u := p.session.user(forge); u != nil {
			o.User = u.Login
		}
		opts = append(opts, o)
	}
	sort.Slice(opts, func(i, j int) bool { return opts[i].Forge < opts[j].Forge })
	s.render(w, r, loginPageTemplate, p, struct {
		Options []loginOption
		Error   string
	}{opts, p.flash})
}

// serveLoginStart serves GET /login/{forge}: it sends the browser to the
// code host to log in.
func (s *Server) serveLoginStart(w http.ResponseWriter, r *http.Request) {
	forge := r.PathValue("forge")
	login := s.logins[forge]
	if s.opts.Auth != AuthOAuth || login == nil {
		s.notFound(w, r, "no login with "+forgeTitle(forge)+" is configured")
		return
	}
	state, verifier := newToken(), newToken()
	b, _ := json.Marshal(loginState{Forge: forge, Next: safeNext(r.URL.Query().Get("next")), Verifier: verifier})
	if err := s.opts.Sessions.SaveLoginState(r.Context(), state, b); err != nil {
		s.log.Error("login state not saved", "err", err)
		s.unavailable(w, r, "the session store")
		return
	}
	s.setCookie(w, loginCookie, state, "/login/", store.LoginStateTTL)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, login.AuthCodeURL(state, verifier, s.redirectURI(forge)), http.StatusFound)
}

// serveLoginCallback serves GET /login/{forge}/callback, where the code
// host sends the browser back.
func (s *Server) serveLoginCallback(w http.ResponseWriter, r *http.Request) {
	forge := r.PathValue("forge")
	login := s.logins[forge]
	if s.opts.Auth != AuthOAuth || login == nil {
		s.notFound(w, r, "no login with "+forgeTitle(forge)+" is configured")
		return
	}
	ctx := r.Context()
	q := r.URL.Query()
	state := q.Get("state")
	s.setCookie(w, loginCookie, "", "/login/", 0)
	// The state must be the one this browser was given (the cookie) and
	// one mlbot issued and nobody used (the store): a code sent to
	// someone else's browser logs nobody in.
	c, err := r.Cookie(loginCookie)
	if err != nil || state == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(state)) != 1 {
		s.loginFailed(w, r, http.StatusBadRequest, "this login was not started in this browser, or took too long; please log in again"+
			" (open the pages at "+s.opts.PublicURL+", where the host sends you back)")
		return
	}
	b, ok, err := s.opts.Sessions.TakeLoginState(ctx, state)
	if err != nil {
		s.log.Error("login state unreadable", "err", err)
		s.unavailable(w, r, "the session store")
		return
	}
	var ls loginState
	if !ok || json.Unmarshal(b, &ls) != nil || ls.Forge != forge {
		s.loginFailed(w, r, http.StatusBadRequest, "this login expired or was used already; please log in again")
		return
	}
	if e := q.Get("error"); e != "" {
		msg := forgeTitle(forge) + " did not log you in (" + e + ")"
		if d := q.Get("error_description"); d != "" {
			msg += ": " + d
		}
		s.loginFailed(w, r, http.StatusForbidden, msg)
		return
	}
	u, err := login.Exchange(ctx, q.Get("code"), ls.Verifier, s.redirectURI(forge))
	if err != nil {
		s.log.Warn("login refused", "forge", forge, "err", err)
		s.loginFailed(w, r, http.StatusBadGateway, "logging in with "+forgeTitle(forge)+" failed: "+err.Error())
		return
	}
	se, old := s.session(r)
	if se == nil {
		se = &session{Created: time.Now().UTC()}
	}
	if se.Users == nil {
		se.Users = map[string]bot.OAuthUser{}
	}
	se.Users[forge] = u
	if err := s.saveSession(ctx, w, se, old); err != nil {
		s.log.Error("session not saved", "err", err)
		s.unavailable(w, r, "the session store")
		return
	}
	s.log.Info("logged in to the pages", "forge", forge, "user", u.Login)
	http.Redirect(w, r, safeNext(ls.Next), http.StatusFound)
}

// loginFailed shows the login page with why the login failed.
func (s *Server) loginFailed(w http.ResponseWriter, r *http.Request, status int, msg string) {
	p := s.newPage(r)
	p.flash, p.status = msg, status
	s.serveLogin(w, r, p)
}

// serveLogout serves POST /logout: the session ends here and in the
// browser.
func (s *Server) serveLogout(w http.ResponseWriter, r *http.Request) {
	if _, token := s.session(r); token != "" {
		if err := s.opts.Sessions.DeleteSession(r.Context(), token); err != nil {
			s.log.Error("session not deleted", "err", err)
			s.unavailable(w, r, "the session store")
			return
		}
	}
	s.setCookie(w, sessionCookie, "", "/", 0)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
