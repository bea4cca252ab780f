package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/mlbot/mlbot/bot"
)

// OAuthOptions configures the GitHub login of mlbot's pages: an OAuth app
// (or a GitHub App's client) registered with the callback URL
// <MLBOT_PUBLIC_URL>/login/github/callback.
type OAuthOptions struct {
	// APIURL is the REST API root (MLBOT_GITHUB_API_URL); the login pages
	// are on the web host it belongs to: github.com for api.github.com,
	// https://HOST for a GitHub Enterprise https://HOST/api/v3/, and the
	// URL's own root otherwise (a simulator serves both).
	APIURL string
	// ClientID and ClientSecret are the OAuth app's
	// (MLBOT_GITHUB_OAUTH_CLIENT_ID, MLBOT_GITHUB_OAUTH_CLIENT_SECRET).
	ClientID, ClientSecret string
	// HTTPClient makes the token and user calls (nil: http.DefaultClient).
	HTTPClient *http.Client
}

// OAuth logs people in to mlbot's pages with their GitHub account. It
// asks for no scope: GET /user answers with a token that has none, and
// what a user may read is asked with mlbot's own credentials.
type OAuth struct {
	flow    bot.OAuthFlow
	userURL string
}

var _ bot.OAuth = (*OAuth)(nil)

// NewOAuth returns the GitHub login of opts.
func NewOAuth(opts OAuthOptions) (*OAuth, error) {
	if opts.ClientID == "" || opts.ClientSecret == "" {
		return nil, errors.New("github oauth: a client id and a client secret are required")
	}
	api := opts.APIURL
	if api == "" {
		api = DefaultBaseURL
	}
	if !strings.HasSuffix(api, "/") {
		api += "/"
	}
	web, err := webRoot(api)
	if err != nil {
		return nil, err
	}
	return &OAuth{
		flow: bot.OAuthFlow{ClientID: opts.ClientID, ClientSecret: opts.ClientSecret,
			AuthURL: web + "/login/oauth/authorize", TokenURL: web + "/login/oauth/access_token", HTTPClient: opts.HTTPClient},
		userURL: api + "user",
	}, nil
}

// webRoot returns the web host of the REST API root api.
func webRoot(api string) (string, error) {
	u, err := url.Parse(api)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("github oauth: API URL %q is not an absolute http(s) URL", api)
	}
	if u.Host == "api.github.com" {
		return "https://github.com", nil
	}
	path := strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/api/v3")
	return u.Scheme + "://" + u.Host + path, nil
}

// Forge implements bot.OAuth.
func (o *OAuth) Forge() string { return "github" }

// AuthCodeURL implements bot.OAuth: GET /login/oauth/authorize.
func (o *OAuth) AuthCodeURL(state, verifier, redirectURI string) string {
	return o.flow.AuthCodeURL(state, verifier, redirectURI)
}

// Exchange implements bot.OAuth: POST /login/oauth/access_token, then
// GET /user with the token.
func (o *OAuth) Exchange(ctx context.Context, code, verifier, redirectURI string) (bot.OAuthUser, error) {
	var u struct {
		Login string `json:"login"`
		ID    int64  `json:"id"`
		Name  string `json:"name"`
	}
	if err := o.flow.User(ctx, code, verifier, redirectURI, o.userURL, &u); err != nil {
		return bot.OAuthUser{}, fmt.Errorf("github: %w", err)
	}
	if u.Login == "" || u.ID == 0 {
		return bot.OAuthUser{}, errors.New("github: GET /user named nobody")
	}
	return bot.OAuthUser{Forge: "github", Login: u.Login, ID: u.ID, Name: u.Name, PermissionName: u.Login}, nil
}
