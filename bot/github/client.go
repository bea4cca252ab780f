package github

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/bradleyfalzon/ghinstallation/v2"
	"github.com/golang-jwt/jwt/v4"
	gh "github.com/google/go-github/v60/github"

	"github.com/mlbot/mlbot/bot"
)

// DefaultBaseURL is the GitHub.com REST API root, used when
// Options.BaseURL is empty.
const DefaultBaseURL = "https://api.github.com/"

// MaxStatusDescription is the longest commit status description GitHub
// accepts, in characters.
const MaxStatusDescription = 140

// Options configures a Client. Set Token for a personal access token, or
// AppID and PrivateKey for a GitHub App; with neither the client makes
// unauthenticated calls.
type Options struct {
	// BaseURL is the REST API root (MLBOT_GITHUB_API_URL). It is used as
	// given, so GitHub Enterprise users write https://HOST/api/v3/; a
	// missing trailing slash is added. Empty means DefaultBaseURL.
	BaseURL string
	// Token is a personal access token (MLBOT_GITHUB_TOKEN).
	Token string
	// AppID and PrivateKey (PEM) authenticate as a GitHub App, which then
	// acts on each repository through that repository's installation.
	AppID      int64
	PrivateKey []byte
	// HTTPClient supplies the base transport and timeouts; its Transport
	// may carry instrumentation. Nil means http.DefaultClient.
	HTTPClient *http.Client
	// UserAgent is sent on every request. Empty means "mlbot".
	UserAgent string
}

// Client talks to the GitHub REST API on mlbot's behalf. It implements
// bot.Forge and is safe for concurrent use.
type Client struct {
	baseURL   *url.URL
	token     string
	userAgent string
	// http is the caller's client with the User-Agent transport in front;
	// every go-github client below is built on a copy of it.
	httpClient *http.Client
	// rest serves personal-token and anonymous clients; nil for an App.
	rest *gh.Client
	app  *appAuth
	// checks remembers the check runs an App created (see setCheckRun).
	checks checkIDs
	// cond keeps the reconciler's conditional requests and rate budget.
	cond conditional
}

var _ bot.Forge = (*Client)(nil)

// New returns a Client for opts. It fails on an unusable BaseURL, on both
// Token and AppID being set, and on an App without a parsable private key.
func New(opts Options) (*Client, error) {
	raw := opts.BaseURL
	if raw == "" {
		raw = DefaultBaseURL
	}
	if !strings.HasSuffix(raw, "/") {
		raw += "/"
	}
	base, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("github: base URL: %w", err)
	}
	if (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("github: base URL %q is not an absolute http(s) URL", raw)
	}
	if opts.Token != "" && opts.AppID != 0 {
		return nil, errors.New("github: set either a token or an App ID, not both")
	}
	ua := opts.UserAgent
	if ua == "" {
		ua = "mlbot"
	}
	hc := http.Client{}
	if opts.HTTPClient != nil {
		hc = *opts.HTTPClient
	}
	next := hc.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	// ghinstallation's token requests bypass go-github, so the User-Agent
	// GitHub insists on is set in the transport rather than on the client.
	hc.Transport = &userAgentTransport{ua: ua, next: next}

	c := &Client{baseURL: base, token: opts.Token, userAgent: ua, httpClient: &hc}
	if opts.AppID == 0 {
		c.rest = c.newREST(&hc)
		if opts.Token != "" {
			c.rest = c.rest.WithAuthToken(opts.Token)
		}
		return c, nil
	}
	if len(opts.PrivateKey) == 0 {
		return nil, errors.New("github: an App ID needs a private key")
	}
	key, err := jwt.ParseRSAPrivateKeyFromPEM(opts.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("github: App private key: %w", err)
	}
	c.app = &appAuth{id: opts.AppID, key: key, repos: map[string]int64{}, installs: map[int64]*installation{}}
	atr := c.appsTransport()
	jwtClient := hc
	jwtClient.Transport = atr
	c.app.client = c.newREST(&jwtClient)
	return c, nil
}

// Name returns "github".
func (c *Client) Name() string { return ForgeName }

func (c *Client) newREST(hc *http.Client) *gh.Client {
	cl := gh.NewClient(hc)
	u := *c.baseURL
	cl.BaseURL = &u
	cl.UserAgent = c.userAgent
	return cl
}

type userAgentTransport struct {
	ua   string
	next http.RoundTripper
}

func (t *userAgentTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("User-Agent") == "" {
		r = r.Clone(r.Context())
		r.Header.Set("User-Agent", t.ua)
	}
	return t.next.RoundTrip(r)
}

// appAuth is the GitHub App state: the JWT-authenticated client used to
// find installations, and one installation client per installation id.
type appAuth struct {
	id     int64
	key    *rsa.PrivateKey
	client *gh.Client

	mu       sync.Mutex
	repos    map[string]int64 // lower-case full name → installation id
	installs map[int64]*installation
}

type installation struct {
	tr     *ghinstallation.Transport
	client *gh.Client
}

// appsTransport returns a fresh JWT transport. Each installation gets its
// own because ghinstallation's token refresh writes the shared
// AppsTransport's fields, which races between installations.
func (c *Client) appsTransport() *ghinstallation.AppsTransport {
	atr := ghinstallation.NewAppsTransportFromPrivateKey(c.httpClient.Transport, c.app.id, c.app.key)
	atr.BaseURL = strings.TrimSuffix(c.baseURL.String(), "/")
	return atr
}

// installationFor returns the installation serving repo, looking it up
// with GET /repos/{owner}/{repo}/installation the first time.
func (c *Client) installationFor(ctx context.Context, owner, name string) (*installation, error) {
	key := strings.ToLower(owner + "/" + name)
	c.app.mu.Lock()
	id, ok := c.app.repos[key]
	inst := c.app.installs[id]
	c.app.mu.Unlock()
	if ok && inst != nil {
		return inst, nil
	}
	if !ok {
		found, _, err := c.app.client.Apps.FindRepositoryInstallation(ctx, owner, name)
		if err != nil {
			return nil, c.wrap(http.MethodGet, fmt.Sprintf("repos/%s/%s/installation", owner, name), err)
		}
		id = found.GetID()
	}
	c.app.mu.Lock()
	defer c.app.mu.Unlock()
	c.app.repos[key] = id
	return c.installationLocked(id), nil
}

// installationByID returns the client of installation id, made the first
// time it is asked for.
func (c *Client) installationByID(id int64) *installation {
	c.app.mu.Lock()
	defer c.app.mu.Unlock()
	return c.installationLocked(id)
}

// installationLocked is installationByID with c.app.mu held.
func (c *Client) installationLocked(id int64) *installation {
	if inst := c.app.installs[id]; inst != nil {
		return inst
	}
	itr := ghinstallation.NewFromAppsTransport(c.appsTransport(), id)
	itr.BaseURL = strings.TrimSuffix(c.baseURL.String(), "/")
	hc := *c.httpClient
	hc.Transport = itr
	inst := &installation{tr: itr, client: c.newREST(&hc)}
	c.app.installs[id] = inst
	return inst
}

// forget drops the cached installation of a repository, and its token,
// after GitHub refused that token, so that a reinstalled App or a revoked
// token is replaced on the next call instead of failing until it expires.
func (c *Client) forget(owner, name string) {
	if c.app == nil {
		return
	}
	key := strings.ToLower(owner + "/" + name)
	c.app.mu.Lock()
	if id, ok := c.app.repos[key]; ok {
		delete(c.app.installs, id)
		delete(c.app.repos, key)
	}
	c.app.mu.Unlock()
}

// restFor returns the go-github client that may act on repo.
func (c *Client) restFor(ctx context.Context, repo bot.Repo) (cl *gh.Client, owner, name string, err error) {
	owner, name, ok := strings.Cut(repo.FullName, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return nil, "", "", fmt.Errorf("github: repository name %q is not owner/name", repo.FullName)
	}
	if c.app == nil {
		return c.rest, owner, name, nil
	}
	inst, err := c.installationFor(ctx, owner, name)
	if err != nil {
		return nil, "", "", err
	}
	return inst.client, owner, name, nil
}

// CreateStatus shows st on sha. Authenticated as a GitHub App, it sets
// the check run named st.Context (see setCheckRun), with st's title,
// summary, text, external id and buttons. With a personal access token,
// which cannot create check runs, it sets a commit status: GitHub has no
// cancelled state, so StateCanceled becomes "error" with a description
// saying so; StateRunning becomes "pending". Descriptions are cut to 140
// characters.
func (c *Client) CreateStatus(ctx context.Context, repo bot.Repo, sha string, st bot.Status) error {
	if c.ShowsCheckRuns() {
		return c.setCheckRun(ctx, repo, sha, st)
	}
	state, desc := "", st.Description
	switch st.State {
	case bot.StatePending, bot.StateRunning:
		state = "pending"
	case bot.StateSuccess, bot.StateFailure, bot.StateError:
		state = string(st.State)
	case bot.StateCanceled:
		state, desc = "error", "cancelled: "+desc
	default:
		return fmt.Errorf("github: unknown commit status state %q", st.State)
	}
	cl, owner, name, err := c.restFor(ctx, repo)
	if err != nil {
		return err
	}
	rs := &gh.RepoStatus{
		State:       gh.String(state),
		Description: gh.String(truncate(desc, MaxStatusDescription)),
		Context:     gh.String(st.Context),
	}
	if st.TargetURL != "" {
		rs.TargetURL = gh.String(st.TargetURL)
	}
	_, resp, err := cl.Repositories.CreateStatus(ctx, owner, name, sha, rs)
	if err != nil {
		c.forgetOn401(resp, owner, name)
		return c.wrap(http.MethodPost, fmt.Sprintf("repos/%s/%s/statuses/%s", owner, name, sha), err)
	}
	return nil
}

// ListComments returns every comment of pull request number, oldest
// first, following GitHub's pagination 100 at a time.
func (c *Client) ListComments(ctx context.Context, repo bot.Repo, number int) ([]bot.Comment, error) {
	cl, owner, name, err := c.restFor(ctx, repo)
	if err != nil {
		return nil, err
	}
	path := fmt.Sprintf("repos/%s/%s/issues/%d/comments", owner, name, number)
	// GitHub's guide says to follow the Link header's next URL rather than
	// build page numbers: some listings page by cursor.
	next := path + "?per_page=100"
	var out []bot.Comment
	for next != "" {
		req, err := cl.NewRequest(http.MethodGet, next, nil)
		if err != nil {
			return nil, err
		}
		var page []*gh.IssueComment
		resp, err := cl.Do(ctx, req, &page)
		if err != nil {
			c.forgetOn401(resp, owner, name)
			return nil, c.wrap(http.MethodGet, path, err)
		}
		for _, ic := range page {
			out = append(out, comment(ic))
		}
		next = nextLink(resp.Header.Get("Link"))
		if u, err := url.Parse(next); next != "" && (err != nil || (u.IsAbs() && u.Host != cl.BaseURL.Host)) {
			// Never send the token to another host a Link points at.
			return nil, fmt.Errorf("github: list comments: next page on another host: %q", next)
		}
	}
	return out, nil
}

// nextLink returns the URL of rel="next" in a Link header, or "".
func nextLink(header string) string {
	for _, part := range strings.Split(header, ",") {
		segs := strings.Split(part, ";")
		if len(segs) < 2 {
			continue
		}
		for _, attr := range segs[1:] {
			if strings.TrimSpace(attr) == `rel="next"` {
				return strings.Trim(strings.TrimSpace(segs[0]), "<>")
			}
		}
	}
	return ""
}

// CreateComment adds a comment to pull request number.
func (c *Client) CreateComment(ctx context.Context, repo bot.Repo, number int, body string) (bot.Comment, error) {
	cl, owner, name, err := c.restFor(ctx, repo)
	if err != nil {
		return bot.Comment{}, err
	}
	ic, resp, err := cl.Issues.CreateComment(ctx, owner, name, number, &gh.IssueComment{Body: gh.String(body)})
	if err != nil {
		c.forgetOn401(resp, owner, name)
		return bot.Comment{}, c.wrap(http.MethodPost, fmt.Sprintf("repos/%s/%s/issues/%d/comments", owner, name, number), err)
	}
	return comment(ic), nil
}

// CreateCommitComment comments on commit sha (POST
// /repos/{owner}/{repo}/commits/{sha}/comments): what mlbot says about a
// default-branch commit that no pull request is known for.
func (c *Client) CreateCommitComment(ctx context.Context, repo bot.Repo, sha, body string) error {
	cl, owner, name, err := c.restFor(ctx, repo)
	if err != nil {
		return err
	}
	_, resp, err := cl.Repositories.CreateComment(ctx, owner, name, sha, &gh.RepositoryComment{Body: gh.String(body)})
	if err != nil {
		c.forgetOn401(resp, owner, name)
		return c.wrap(http.MethodPost, fmt.Sprintf("repos/%s/%s/commits/%s/comments", owner, name, sha), err)
	}
	return nil
}

// UpdateComment replaces the body of comment id. GitHub addresses issue
// comments by id alone, so number is not used.
func (c *Client) UpdateComment(ctx context.Context, repo bot.Repo, _ int, id int64, body string) error {
	cl, owner, name, err := c.restFor(ctx, repo)
	if err != nil {
		return err
	}
	_, resp, err := cl.Issues.EditComment(ctx, owner, name, id, &gh.IssueComment{Body: gh.String(body)})
	if err != nil {
		c.forgetOn401(resp, owner, name)
		return c.wrap(http.MethodPatch, fmt.Sprintf("repos/%s/%s/issues/comments/%d", owner, name, id), err)
	}
	return nil
}

// CloneAuth returns a Basic Authorization header value for git over
// HTTPS with user "x-access-token": the personal token, or for an App the
// repository's installation token (minted or refreshed as needed). It
// returns "" when the client has no credentials.
func (c *Client) CloneAuth(ctx context.Context, repo bot.Repo) (string, error) {
	if repo.CloneURL != "" {
		if err := bot.CheckCloneURL(repo.CloneURL, c.gitBase(), repo.FullName); err != nil {
			return "", fmt.Errorf("github: %w; nothing was fetched and no credential sent", err)
		}
	}
	token := c.token
	if c.app != nil {
		owner, name, ok := strings.Cut(repo.FullName, "/")
		if !ok {
			return "", fmt.Errorf("github: repository name %q is not owner/name", repo.FullName)
		}
		inst, err := c.installationFor(ctx, owner, name)
		if err != nil {
			return "", err
		}
		if token, err = inst.tr.Token(ctx); err != nil {
			return "", c.wrap(http.MethodPost, "app/installations/{id}/access_tokens", err)
		}
	}
	if token == "" {
		return "", nil
	}
	return "Basic " + base64.StdEncoding.EncodeToString([]byte("x-access-token:"+token)), nil
}

// gitBase is where the host serves repositories over HTTPS: github.com
// for an API on api.github.com (X for api.X), the API URL without /api/v3
// for GitHub Enterprise, and the API URL itself when the API is at the root
// of its host, as the simulator serves it.
func (c *Client) gitBase() string {
	u := url.URL{Scheme: c.baseURL.Scheme, Host: c.baseURL.Host}
	if host, ok := strings.CutPrefix(strings.ToLower(c.baseURL.Hostname()), "api."); ok {
		u.Host = host
		if port := c.baseURL.Port(); port != "" {
			u.Host = net.JoinHostPort(host, port)
		}
		u.Path = "/"
	} else {
		u.Path = strings.TrimSuffix(strings.TrimSuffix(c.baseURL.Path, "/"), "/api/v3") + "/"
	}
	return u.String()
}

func (c *Client) forgetOn401(resp *gh.Response, owner, name string) {
	if resp != nil && resp.StatusCode == http.StatusUnauthorized {
		c.forget(owner, name)
	}
}

func comment(ic *gh.IssueComment) bot.Comment {
	// Comments listed or created through a pull request's number are on
	// that pull request; the issue-comments API does not say so itself.
	return bot.Comment{ID: ic.GetID(), Body: ic.GetBody(), Author: ic.GetUser().GetLogin(), OnPullRequest: true}
}

// truncate cuts s to at most n characters, ending in "…" when it cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// truncateBytes cuts s to at most n bytes of UTF-8 without splitting a
// character, ending in "…" when it cut.
func truncateBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ellipsis = "…"
	cut := n - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}
