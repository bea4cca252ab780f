package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"golang.org/x/oauth2"
)

// OAuthUser is a person who logged in to mlbot's pages through a code
// host.
type OAuthUser struct {
	// Forge is the host package's name: "github" or "gitlab".
	Forge string `json:"forge"`
	// Login is the user's name on the host (GitHub login, GitLab
	// username), as pages show it.
	Login string `json:"login"`
	// ID is the host's number for the user, which survives a rename.
	ID int64 `json:"id"`
	// Name is the user's display name, if they set one.
	Name string `json:"name,omitempty"`
	// PermissionName is how Forge.GetPermission names the user: the login
	// on GitHub, "id:<n>" on GitLab.
	PermissionName string `json:"permission_name"`
}

// OAuth is a code host's OAuth 2.0 login: the authorization-code flow
// with PKCE (RFC 7636). mlbot asks only who the user is; the token the
// host hands out is used for that once and never kept, and what the user
// may read is asked of the host with mlbot's own credentials
// (Forge.GetPermission).
type OAuth interface {
	// Forge is the host package's name.
	Forge() string
	// AuthCodeURL returns the host's page on which the user lets mlbot
	// know who they are; the host then sends the browser to redirectURI
	// with a code and state. verifier is the PKCE code verifier whose
	// S256 challenge the URL carries.
	AuthCodeURL(state, verifier, redirectURI string) string
	// Exchange trades the code the host sent back (with the verifier and
	// the redirect URI of AuthCodeURL) for a token, and returns the user
	// it belongs to.
	Exchange(ctx context.Context, code, verifier, redirectURI string) (OAuthUser, error)
}

// OAuthFlow is the part of the authorization-code flow GitHub and GitLab
// share; each host's package gives it its endpoints and reads its user.
type OAuthFlow struct {
	// ClientID and ClientSecret identify mlbot's OAuth application.
	ClientID, ClientSecret string
	// AuthURL is the host's authorization page, TokenURL its token
	// endpoint.
	AuthURL, TokenURL string
	// Scopes are those asked for (none where the host's default suffices).
	Scopes []string
	// HTTPClient makes the calls to the host (nil: http.DefaultClient).
	HTTPClient *http.Client
}

func (f *OAuthFlow) config(redirectURI string) *oauth2.Config {
	return &oauth2.Config{
		ClientID: f.ClientID, ClientSecret: f.ClientSecret, RedirectURL: redirectURI, Scopes: f.Scopes,
		// Both hosts document the credentials as form parameters.
		Endpoint: oauth2.Endpoint{AuthURL: f.AuthURL, TokenURL: f.TokenURL, AuthStyle: oauth2.AuthStyleInParams},
	}
}

func (f *OAuthFlow) client() *http.Client {
	if f.HTTPClient != nil {
		return f.HTTPClient
	}
	return http.DefaultClient
}

// AuthCodeURL returns the authorization page's URL for state, with the
// S256 challenge of verifier and the redirect URI.
func (f *OAuthFlow) AuthCodeURL(state, verifier, redirectURI string) string {
	return f.config(redirectURI).AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))
}

// Token trades code for an access token.
func (f *OAuthFlow) Token(ctx context.Context, code, verifier, redirectURI string) (string, error) {
	ctx = context.WithValue(ctx, oauth2.HTTPClient, f.client())
	tok, err := f.config(redirectURI).Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode != "" {
			// The host's own words ("bad_verification_code: The code
			// passed is incorrect or expired."), without the body.
			return "", fmt.Errorf("oauth token: %s: %s", re.ErrorCode, re.ErrorDescription)
		}
		return "", fmt.Errorf("oauth token: %w", err)
	}
	return tok.AccessToken, nil
}

// User trades code for an access token (Token) and reads the token's
// owner, the API resource at userURL, into v: all of a host's Exchange
// but the shape of its user.
func (f *OAuthFlow) User(ctx context.Context, code, verifier, redirectURI, userURL string, v any) error {
	token, err := f.Token(ctx, code, verifier, redirectURI)
	if err != nil {
		return err
	}
	return f.GetJSON(ctx, token, userURL, v)
}

// GetJSON reads the API resource at url as the token's owner into v.
func (f *OAuthFlow) GetJSON(ctx context.Context, token, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	resp, err := f.client().Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, strings.TrimSpace(string(body[:min(len(body), 200)])))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}
