package github

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/mlbot/mlbot/bot/forgesim"
)

// The OAuth web application flow, as GitHub documents it for OAuth apps:
// GET /login/oauth/authorize shows the sign-in page, the user's answer
// sends the browser to the redirect URI with a code and the state, and
// POST /login/oauth/access_token trades the code for a token (errors come
// back with status 200 and an "error" field, as GitHub answers them).
// GET /user answers with the token's user.

// oauthSim is the OAuth part of the simulator's state.
type oauthSim struct {
	server forgesim.OAuthServer
	users  map[string]int64 // lower-case login → id
}

const oauthDocs = "https://docs.github.com/apps/oauth-apps/maintaining-oauth-apps/troubleshooting-oauth-app-access-token-request-errors"

func (s *Simulator) oauthRoutes() {
	s.oauth.server.SubpathRedirects = true
	s.mux.HandleFunc("GET /login/oauth/authorize", s.oauthAuthorize)
	s.mux.HandleFunc("POST /login/oauth/authorize", s.oauthDecide)
	s.mux.HandleFunc("POST /login/oauth/access_token", s.oauthToken)
	s.route("GET /user", authToken, s.getUser)
}

// AddOAuthApp registers an OAuth app whose users sign in on the
// simulator and come back to callbackURL (or a path below it).
func (s *Simulator) AddOAuthApp(clientID, clientSecret, callbackURL string) {
	s.oauth.server.AddClient(clientID, clientSecret, callbackURL)
}

// OAuthUserID returns the id GET /user reports for login, the same for
// every token of that user.
func (s *Simulator) OAuthUserID(login string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.oauthUserLocked(login)
}

func (s *Simulator) oauthUserLocked(login string) int64 {
	if s.oauth.users == nil {
		s.oauth.users = map[string]int64{}
	}
	k := strings.ToLower(login)
	if id, ok := s.oauth.users[k]; ok {
		return id
	}
	s.nextID++
	s.oauth.users[k] = s.nextID
	return s.nextID
}

func (s *Simulator) oauthAuthorize(w http.ResponseWriter, r *http.Request) {
	req := forgesim.ParseAuthorizeRequest(r)
	redirect, err := s.oauth.server.Check(req)
	switch err {
	case forgesim.ErrUnknownClient:
		// GitHub shows its 404 page for an unknown client id.
		http.Error(w, "Not Found", http.StatusNotFound)
		return
	case forgesim.ErrRedirectMismatch:
		// GitHub sends the user to the app's registered callback.
		http.Redirect(w, r, forgesim.RedirectWith(redirect, url.Values{
			"error":             {"redirect_uri_mismatch"},
			"error_description": {"The redirect_uri MUST match the registered callback URL for this application."},
			"state":             {req.State}}), http.StatusFound)
		return
	}
	s.oauth.server.ServeConsent(w, "GitHub", "/login/oauth/authorize", redirect, req)
}

func (s *Simulator) oauthDecide(w http.ResponseWriter, r *http.Request) {
	req := forgesim.ParseAuthorizeRequest(r)
	redirect, err := s.oauth.server.Check(req)
	if err != nil {
		http.Error(w, "Not Found", http.StatusNotFound)
		return
	}
	if r.Form.Get("cancel") != "" {
		http.Redirect(w, r, forgesim.RedirectWith(redirect, url.Values{
			"error": {"access_denied"}, "error_description": {"The user has denied your application access."}, "state": {req.State}}), http.StatusFound)
		return
	}
	login := strings.TrimSpace(r.Form.Get("login"))
	if login == "" {
		http.Error(w, "a username is required", http.StatusUnprocessableEntity)
		return
	}
	code := s.oauth.server.Grant(req, login)
	http.Redirect(w, r, forgesim.RedirectWith(redirect, url.Values{"code": {code}, "state": {req.State}}), http.StatusFound)
}

func (s *Simulator) oauthToken(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	f := r.Form
	login, scope, oerr := s.oauth.server.Redeem(f.Get("client_id"), f.Get("client_secret"), f.Get("code"), f.Get("redirect_uri"), f.Get("code_verifier"))
	answer := url.Values{}
	if oerr != nil {
		// GitHub's words for RFC 6749's.
		code := map[string]string{"invalid_client": "incorrect_client_credentials", "invalid_grant": "bad_verification_code"}[oerr.Code]
		desc := map[string]string{"invalid_client": "The client_id and/or client_secret passed are incorrect.",
			"invalid_grant": "The code passed is incorrect or expired."}[oerr.Code]
		answer = url.Values{"error": {code}, "error_description": {desc}, "error_uri": {oauthDocs + "#" + strings.ReplaceAll(code, "_", "-")}}
	} else {
		token := "gho_" + randomHex(18)
		s.mu.Lock()
		s.oauthUserLocked(login)
		// A user's token reads the user; it may touch no repository
		// here, where mlbot never uses it for one.
		s.tokens[token] = &grant{user: login, repos: map[string]bool{}}
		s.mu.Unlock()
		answer = url.Values{"access_token": {token}, "scope": {scope}, "token_type": {"bearer"}}
	}
	// GitHub answers in the format the Accept header asks for, with
	// status 200 even for an error.
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		m := map[string]string{}
		for k := range answer {
			m[k] = answer.Get(k)
		}
		writeJSON(w, http.StatusOK, m)
		return
	}
	w.Header().Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	w.Write([]byte(answer.Encode()))
}

// getUser answers GET /user: the user of an OAuth token, the bot's login
// for a personal token, and 403 for an installation token, as GitHub
// refuses it.
func (s *Simulator) getUser(w http.ResponseWriter, r *http.Request) {
	token := bearerToken(r)
	s.mu.Lock()
	g := s.tokens[token]
	login := s.BotLogin
	switch {
	case g != nil && g.user != "":
		login = g.user
	case g != nil && g.installation != 0:
		s.mu.Unlock()
		writeError(w, http.StatusForbidden, "Resource not accessible by integration", "https://docs.github.com/rest/users/users#get-the-authenticated-user")
		return
	}
	id := s.oauthUserLocked(login)
	web := s.WebURL
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"login": login, "id": id, "type": "User", "name": nil, "site_admin": false,
		"html_url": strings.TrimSuffix(web, "/") + "/" + login,
	})
}

// bearerToken is the token of r's Authorization header.
func bearerToken(r *http.Request) string {
	auth := r.Header.Get("Authorization")
	if t, ok := strings.CutPrefix(auth, "Bearer "); ok {
		return t
	}
	t, _ := strings.CutPrefix(auth, "token ")
	return t
}
