package gitlab

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mlbot/mlbot/bot/forgesim"
)

// GitLab as an OAuth 2.0 identity provider, as its API documents it
// (built on Doorkeeper): GET /oauth/authorize shows the sign-in page and
// insists on response_type=code and a registered redirect URI, the user's
// answer sends the browser back with a code and the state, and POST
// /oauth/token trades the code (grant_type=authorization_code) for a
// token that expires in two hours, answering errors with status 400 or 401
// and RFC 6749's error codes. GET /api/v4/user answers with the token's
// user.

// oauthSim is the OAuth part of the simulator's state.
type oauthSim struct {
	server forgesim.OAuthServer
	tokens map[string]oauthToken
}

type oauthToken struct {
	userID  int64
	expires time.Time
}

// oauthTokenTTL is the lifetime of the access tokens GitLab issues.
const oauthTokenTTL = 2 * time.Hour

// oauthScopes are the scopes an application may ask users for here.
var oauthScopes = []string{"read_user", "read_api", "api", "openid", "profile", "email"}

// AddOAuthApp registers an application whose users sign in on the
// simulator and come back to redirectURI, which must be given exactly.
func (s *Simulator) AddOAuthApp(clientID, clientSecret, redirectURI string) {
	s.oauth.server.AddClient(clientID, clientSecret, redirectURI)
}

// serveOAuth answers the OAuth endpoints and GET /api/v4/user for an
// OAuth token, and reports whether r was one of them.
func (s *Simulator) serveOAuth(w http.ResponseWriter, r *http.Request) bool {
	switch {
	case r.URL.Path == "/oauth/authorize" && r.Method == http.MethodGet:
		s.oauthAuthorize(w, r)
	case r.URL.Path == "/oauth/authorize" && r.Method == http.MethodPost:
		s.oauthDecide(w, r)
	case r.URL.Path == "/oauth/token" && r.Method == http.MethodPost:
		s.oauthToken(w, r)
	case r.URL.Path == "/api/v4/user" && r.Method == http.MethodGet:
		return s.oauthUser(w, r)
	default:
		return false
	}
	return true
}

// checkAuthorize answers a bad authorization request as Doorkeeper does
// and reports whether req may go on, with the redirect URI.
func (s *Simulator) checkAuthorize(w http.ResponseWriter, r *http.Request, req forgesim.AuthorizeRequest) (string, bool) {
	redirect, err := s.oauth.server.Check(req)
	switch {
	case err == forgesim.ErrUnknownClient:
		http.Error(w, "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.", http.StatusUnauthorized)
		return "", false
	case err == forgesim.ErrRedirectMismatch || req.RedirectURI == "":
		// Doorkeeper never redirects to a URI it does not know.
		http.Error(w, "The redirect uri included is not valid.", http.StatusBadRequest)
		return "", false
	case req.ResponseType != "code":
		http.Redirect(w, r, forgesim.RedirectWith(redirect, url.Values{"error": {"unsupported_response_type"},
			"error_description": {"The authorization server does not support this response type."}, "state": {req.State}}), http.StatusFound)
		return "", false
	}
	for _, sc := range strings.Fields(req.Scope) {
		if !slices.Contains(oauthScopes, sc) {
			http.Redirect(w, r, forgesim.RedirectWith(redirect, url.Values{"error": {"invalid_scope"},
				"error_description": {"The requested scope is invalid, unknown, or malformed."}, "state": {req.State}}), http.StatusFound)
			return "", false
		}
	}
	return redirect, true
}

func (s *Simulator) oauthAuthorize(w http.ResponseWriter, r *http.Request) {
	req := forgesim.ParseAuthorizeRequest(r)
	if redirect, ok := s.checkAuthorize(w, r, req); ok {
		s.oauth.server.ServeConsent(w, "GitLab", "/oauth/authorize", redirect, req)
	}
}

func (s *Simulator) oauthDecide(w http.ResponseWriter, r *http.Request) {
	req := forgesim.ParseAuthorizeRequest(r)
	redirect, ok := s.checkAuthorize(w, r, req)
	if !ok {
		return
	}
	if r.Form.Get("cancel") != "" {
		http.Redirect(w, r, forgesim.RedirectWith(redirect, url.Values{"error": {"access_denied"},
			"error_description": {"The resource owner or authorization server denied the request."}, "state": {req.State}}), http.StatusFound)
		return
	}
	login := strings.TrimSpace(r.Form.Get("login"))
	if login == "" {
		http.Error(w, "a username is required", http.StatusUnprocessableEntity)
		return
	}
	s.mu.Lock()
	u := s.userLocked(login) // users sign up as they sign in here
	s.mu.Unlock()
	code := s.oauth.server.Grant(req, u.Username)
	http.Redirect(w, r, forgesim.RedirectWith(redirect, url.Values{"code": {code}, "state": {req.State}}), http.StatusFound)
}

func (s *Simulator) oauthToken(w http.ResponseWriter, r *http.Request) {
	params, err := requestParams(r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": err.Error()})
		return
	}
	// Doorkeeper takes the client's credentials from Basic authentication
	// or from the parameters.
	clientID, secret, basic := r.BasicAuth()
	if !basic {
		clientID, secret = params["client_id"], params["client_secret"]
	}
	if gt := params["grant_type"]; gt != "authorization_code" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type",
			"error_description": "The authorization grant type is not supported by the authorization server."})
		return
	}
	login, scope, oerr := s.oauth.server.Redeem(clientID, secret, params["code"], params["redirect_uri"], params["code_verifier"])
	if oerr != nil {
		status := http.StatusBadRequest
		if oerr.Code == "invalid_client" {
			status = http.StatusUnauthorized
			w.Header().Set("WWW-Authenticate", `Bearer realm="Doorkeeper", error="invalid_client"`)
		}
		writeJSON(w, status, map[string]string{"error": oerr.Code, "error_description": oerr.Description})
		return
	}
	token := randomToken()
	now := s.now()
	s.mu.Lock()
	if s.oauth.tokens == nil {
		s.oauth.tokens = map[string]oauthToken{}
	}
	s.oauth.tokens[token] = oauthToken{userID: s.userLocked(login).ID, expires: now.Add(oauthTokenTTL)}
	s.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{"access_token": token, "token_type": "Bearer", "expires_in": int(oauthTokenTTL.Seconds()),
		"refresh_token": randomToken(), "scope": scope, "created_at": now.Unix()})
}

// oauthUser answers GET /api/v4/user for an OAuth token; other tokens go
// on to the API (false), where a bot token gets the bot user.
func (s *Simulator) oauthUser(w http.ResponseWriter, r *http.Request) bool {
	bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	s.mu.Lock()
	t, ok := s.oauth.tokens[bearer]
	var user *User
	if ok && s.now().Before(t.expires) {
		for _, u := range s.users {
			if u.ID == t.userID {
				user = u
			}
		}
	}
	s.mu.Unlock()
	if !ok {
		return false
	}
	if user == nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="Protected by OAuth 2", error="invalid_token", error_description="Token is expired. You can either do re-authorization or token refresh."`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "401 Unauthorized"})
		return true
	}
	writeJSON(w, http.StatusOK, user)
	return true
}

// currentUser answers GET /api/v4/user for a bot token: the bot user.
func (s *Simulator) currentUser(rq *simRequest) {
	writeJSON(rq.w, http.StatusOK, s.userLocked(s.BotUsername))
}

// randomToken returns a fresh token in the shape of GitLab's OAuth
// access tokens.
func randomToken() string {
	var b [32]byte
	rand.Read(b[:]) // crypto/rand.Read never fails
	return "gloas-" + hex.EncodeToString(b[:])
}
