package forgesim

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
)

// OAuthServer is the authorization server both simulators share: the
// OAuth applications registered with the host, the page on which a user
// says who they are and lets an application know it, and the one-use
// authorization codes (with their PKCE challenges) that the application
// trades for a token. Each simulator frames its requests and errors the
// way its host does. The zero value is ready to use.
type OAuthServer struct {
	// SubpathRedirects accepts a redirect URI below the registered one,
	// as GitHub does; without it only the registered URI itself is
	// accepted, as GitLab does.
	SubpathRedirects bool

	mu      sync.Mutex
	clients map[string]oauthClient
	codes   map[string]oauthCode
}

type oauthClient struct {
	secret, redirectURI string
}

type oauthCode struct {
	AuthorizeRequest
	login   string
	expires time.Time
}

// CodeTTL is how long an authorization code is good for, as on both
// hosts.
const CodeTTL = 10 * time.Minute

// AuthorizeRequest is what an application asks of the authorization page.
type AuthorizeRequest struct {
	ClientID, RedirectURI, State, Scope string
	// ResponseType is "code" (GitLab insists on it; GitHub ignores it).
	ResponseType string
	// Challenge and ChallengeMethod are the PKCE code challenge ("" for
	// none) and its method ("S256" or "plain").
	Challenge, ChallengeMethod string
	// Login prefills the user name (GitHub's login parameter).
	Login string
}

// ParseAuthorizeRequest reads the parameters of an authorization request
// from r's query or form.
func ParseAuthorizeRequest(r *http.Request) AuthorizeRequest {
	r.ParseForm()
	return AuthorizeRequest{
		ClientID: r.Form.Get("client_id"), RedirectURI: r.Form.Get("redirect_uri"), State: r.Form.Get("state"),
		Scope: r.Form.Get("scope"), ResponseType: r.Form.Get("response_type"),
		Challenge: r.Form.Get("code_challenge"), ChallengeMethod: r.Form.Get("code_challenge_method"), Login: r.Form.Get("login"),
	}
}

// Errors of an authorization request.
var (
	// ErrUnknownClient: no application has the client id.
	ErrUnknownClient = errors.New("unknown client")
	// ErrRedirectMismatch: the redirect URI is not the application's.
	ErrRedirectMismatch = errors.New("redirect_uri does not match the registered callback URL")
)

// AddClient registers an OAuth application.
func (o *OAuthServer) AddClient(clientID, clientSecret, redirectURI string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.clients == nil {
		o.clients = map[string]oauthClient{}
	}
	o.clients[clientID] = oauthClient{secret: clientSecret, redirectURI: redirectURI}
}

// Check validates the application and redirect URI of req and returns
// the redirect URI the answer goes to: the request's, or the registered
// one when the request names none. The registered one comes back with
// ErrRedirectMismatch too, for a host that sends the error there.
func (o *OAuthServer) Check(req AuthorizeRequest) (string, error) {
	o.mu.Lock()
	c, ok := o.clients[req.ClientID]
	o.mu.Unlock()
	if !ok {
		return "", ErrUnknownClient
	}
	if req.RedirectURI == "" {
		return c.redirectURI, nil
	}
	if !o.redirectMatches(c.redirectURI, req.RedirectURI) {
		return c.redirectURI, ErrRedirectMismatch
	}
	return req.RedirectURI, nil
}

func (o *OAuthServer) redirectMatches(registered, given string) bool {
	if registered == given {
		return true
	}
	if !o.SubpathRedirects {
		return false
	}
	r, err1 := url.Parse(registered)
	g, err2 := url.Parse(given)
	if err1 != nil || err2 != nil || r.Scheme != g.Scheme || r.Host != g.Host {
		return false
	}
	return g.Path == r.Path || strings.HasPrefix(g.Path, strings.TrimSuffix(r.Path, "/")+"/")
}

var consentPage = template.Must(template.New("consent").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in to {{.Host}} (simulator)</title></head>
<body style="font:15px system-ui,sans-serif;max-width:28em;margin:4em auto">
<h1>Sign in to {{.Host}}</h1>
<p>This is mlbot's {{.Host}} simulator. <b>{{.Req.ClientID}}</b> asks who you are{{if .Req.Scope}} (scope <code>{{.Req.Scope}}</code>){{end}}; it will come back to <code>{{.Redirect}}</code>.</p>
<form method="post" action="{{.Action}}">
<p><label>Username <input name="login" id="login" value="{{.Req.Login}}" autocomplete="username" required autofocus></label></p>
<input type="hidden" name="client_id" value="{{.Req.ClientID}}">
<input type="hidden" name="redirect_uri" value="{{.Req.RedirectURI}}">
<input type="hidden" name="state" value="{{.Req.State}}">
<input type="hidden" name="scope" value="{{.Req.Scope}}">
<input type="hidden" name="response_type" value="{{.Req.ResponseType}}">
<input type="hidden" name="code_challenge" value="{{.Req.Challenge}}">
<input type="hidden" name="code_challenge_method" value="{{.Req.ChallengeMethod}}">
<p><button type="submit" name="authorize" value="1" id="authorize">Authorize</button>
<button type="submit" name="cancel" value="1" id="cancel" formnovalidate>Cancel</button></p>
</form></body></html>
`))

// ServeConsent writes host's sign-in page ("GitHub") of req, whose form
// posts to action and whose answer goes to redirect.
func (o *OAuthServer) ServeConsent(w http.ResponseWriter, host, action, redirect string, req AuthorizeRequest) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "deny")
	consentPage.Execute(w, struct {
		Host, Action, Redirect string
		Req                    AuthorizeRequest
	}{host, action, redirect, req})
}

// Grant issues a one-use authorization code of login for req.
func (o *OAuthServer) Grant(req AuthorizeRequest, login string) string {
	code := randomText(20)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.codes == nil {
		o.codes = map[string]oauthCode{}
	}
	o.codes[code] = oauthCode{AuthorizeRequest: req, login: login, expires: time.Now().Add(CodeTTL)}
	return code
}

// OAuthError is an error of the token endpoint in RFC 6749's words.
type OAuthError struct {
	// Code is "invalid_client", "invalid_grant", …
	Code, Description string
}

func (e *OAuthError) Error() string { return e.Code + ": " + e.Description }

// Redeem trades code for the user it was granted to, checking the
// application's credentials, that the redirect URI is the one the code
// was issued for, and the PKCE verifier. A code is good once, and gone
// after any attempt. The error's Code is the RFC 6749 one
// (invalid_client, invalid_grant); hosts that use other words map it.
func (o *OAuthServer) Redeem(clientID, clientSecret, code, redirectURI, verifier string) (login, scope string, err *OAuthError) {
	o.mu.Lock()
	defer o.mu.Unlock()
	c, ok := o.clients[clientID]
	if !ok || subtle.ConstantTimeCompare([]byte(c.secret), []byte(clientSecret)) != 1 {
		return "", "", &OAuthError{"invalid_client", "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method."}
	}
	g, ok := o.codes[code]
	delete(o.codes, code)
	bad := &OAuthError{"invalid_grant", "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client."}
	if !ok || time.Now().After(g.expires) || g.ClientID != clientID {
		return "", "", bad
	}
	if redirectURI != "" && g.RedirectURI != "" && redirectURI != g.RedirectURI {
		return "", "", bad
	}
	if g.Challenge != "" && !pkceMatches(g.Challenge, g.ChallengeMethod, verifier) {
		return "", "", bad
	}
	return g.login, g.Scope, nil
}

// pkceMatches checks verifier against challenge (RFC 7636 section 4.6).
func pkceMatches(challenge, method, verifier string) bool {
	if verifier == "" {
		return false
	}
	want := verifier // "plain", the default
	switch method {
	case "S256":
		sum := sha256.Sum256([]byte(verifier))
		want = base64.RawURLEncoding.EncodeToString(sum[:])
	case "", "plain":
	default:
		return false
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(challenge)) == 1
}

// RedirectWith returns redirect with params added to its query.
func RedirectWith(redirect string, params url.Values) string {
	u, err := url.Parse(redirect)
	if err != nil {
		return redirect
	}
	q := u.Query()
	for k, vs := range params {
		for _, v := range vs {
			if v != "" {
				q.Add(k, v)
			}
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func randomText(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

var (
	formAction  = regexp.MustCompile(`<form method="post" action="([^"]*)">`)
	hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)
)

// SignIn does what a person does on a simulator's sign-in page: it opens
// authorizeURL (the page an application sent the browser to), types login
// and presses Authorize, or Cancel when login is "". It returns where the
// simulator sends the browser next: the application's redirect URI with
// a code or an error. hc must not follow redirects.
func SignIn(hc *http.Client, authorizeURL, login string) (*url.URL, error) {
	resp, err := hc.Get(authorizeURL)
	if err != nil {
		return nil, err
	}
	page, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if loc, err := resp.Location(); err == nil {
		return loc, nil // refused at once, with an error for the application
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("sign-in page: %s: %s", resp.Status, strings.TrimSpace(string(page)))
	}
	m := formAction.FindSubmatch(page)
	if m == nil {
		return nil, errors.New("sign-in page has no form")
	}
	base, err := url.Parse(authorizeURL)
	if err != nil {
		return nil, err
	}
	action, err := base.Parse(html.UnescapeString(string(m[1])))
	if err != nil {
		return nil, err
	}
	form := url.Values{}
	for _, in := range hiddenInput.FindAllSubmatch(page, -1) {
		form.Set(html.UnescapeString(string(in[1])), html.UnescapeString(string(in[2])))
	}
	if login == "" {
		form.Set("cancel", "1")
	} else {
		form.Set("login", login)
		form.Set("authorize", "1")
	}
	resp, err = hc.PostForm(action.String(), form)
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		return nil, fmt.Errorf("sign-in answered %s without a redirect: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return loc, nil
}
