package gitlab

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/mlbot/mlbot/bot"
)

// OAuthOptions configures the GitLab login of mlbot's pages: an
// application registered with the redirect URI
// <MLBOT_PUBLIC_URL>/login/gitlab/callback and the read_user scope.
type OAuthOptions struct {
	// BaseURL is the GitLab instance (MLBOT_GITLAB_URL).
	BaseURL string
	// ClientID and ClientSecret are the application's
	// (MLBOT_GITLAB_OAUTH_CLIENT_ID, MLBOT_GITLAB_OAUTH_CLIENT_SECRET).
	ClientID, ClientSecret string
	// HTTPClient makes the token and user calls (nil: http.DefaultClient).
	HTTPClient *http.Client
}

// OAuth logs people in to mlbot's pages with their GitLab account. It
// asks for read_user, the least scope GET /api/v4/user answers to; what a
// user may read is asked with mlbot's own credentials.
type OAuth struct {
	flow    bot.OAuthFlow
	userURL string
}

var _ bot.OAuth = (*OAuth)(nil)

// NewOAuth returns the GitLab login of opts.
func NewOAuth(opts OAuthOptions) (*OAuth, error) {
	if opts.ClientID == "" || opts.ClientSecret == "" {
		return nil, errors.New("gitlab oauth: a client id and a client secret are required")
	}
	base := strings.TrimRight(opts.BaseURL, "/")
	if base == "" {
		base = "https://gitlab.com"
	}
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("gitlab oauth: URL %q is not an absolute http(s) URL", base)
	}
	return &OAuth{
		flow: bot.OAuthFlow{ClientID: opts.ClientID, ClientSecret: opts.ClientSecret,
			AuthURL: base + "/oauth/authorize", TokenURL: base + "/oauth/token", Scopes: []string{"read_user"}, HTTPClient: opts.HTTPClient},
		userURL: base + "/api/v4/user",
	}, nil
}

// Forge implements bot.OAuth.
func (o *OAuth) Forge() string { return "gitlab" }

// AuthCodeURL implements bot.OAuth: GET /oauth/authorize.
func (o *OAuth) AuthCodeURL(state, verifier, redirectURI string) string {
	return o.flow.AuthCodeURL(state, verifier, redirectURI)
}

// Exchange implements bot.OAuth: POST /oauth/token, then GET
// /api/v4/user with the token.
func (o *OAuth) Exchange(ctx context.Context, code, verifier, redirectURI string) (bot.OAuthUser, error) {
	var u struct {
		ID       int64  `json:"id"`
		Username string `json:"username"`
		Name     string `json:"name"`
	}
	if err := o.flow.User(ctx, code, verifier, redirectURI, o.userURL, &u); err != nil {
		return bot.OAuthUser{}, fmt.Errorf("gitlab: %w", err)
	}
	if u.Username == "" || u.ID == 0 {
		return bot.OAuthUser{}, errors.New("gitlab: GET /api/v4/user named nobody")
	}
	return bot.OAuthUser{Forge: "gitlab", Login: u.Username, ID: u.ID, Name: u.Name,
		PermissionName: "id:" + strconv.FormatInt(u.ID, 10)}, nil
}
