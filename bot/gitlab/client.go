package gitlab

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/time/rate"

	gl "gitlab.com/gitlab-org/api/client-go"

	"github.com/mlbot/mlbot/bot"
)

// DefaultBaseURL is used when Options.BaseURL is empty.
const DefaultBaseURL = "https://gitlab.com"

// notesPerPage is GitLab's largest page size; fewer pages mean fewer calls
// against the rate limit.
const notesPerPage = 100

// Options configures a Client.
type Options struct {
	// BaseURL is the GitLab instance (MLBOT_GITLAB_URL), such as
	// https://gitlab.com or https://gitlab.example.com; the API is reached
	// under /api/v4 of it. Empty means DefaultBaseURL.
	BaseURL string
	// Token is a personal, project or group access token, sent as
	// PRIVATE-TOKEN. Empty makes unauthenticated calls.
	Token string
	// HTTPClient makes the calls; nil uses a pooled client of gl's.
	HTTPClient *http.Client
}

// Client talks to one GitLab instance's REST API v4. It implements
// bot.Forge and is safe for concurrent use.
type Client struct {
	api   *gl.Client
	token string
	// base is the instance's URL, whose host alone receives the token.
	base string
	// rate is what the reconciler's calls last learned of the rate limit.
	rate rateWatch
}

var _ bot.Forge = (*Client)(nil)

// New returns a Client for opts. It makes no request.
func New(opts Options) (*Client, error) {
	base := opts.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("gitlab: base URL %q: %w", base, err)
	}
	// gl only logs a warning for a bad URL and then fails on every call;
	// a misconfiguration should stop mlbot at start instead.
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("gitlab: base URL %q: want http(s)://host[/path]", base)
	}
	clientOpts := []gl.ClientOptionFunc{
		gl.WithBaseURL(base),
		// mlbot retries whole tasks with backoff through its queue; retries
		// inside the client would multiply with those and hold a worker.
		gl.WithoutRetries(),
		gl.WithCustomRetryMax(0),
		gl.WithURLWarningLogger(slog.New(slog.DiscardHandler)),
		gl.WithUserAgent("mlbot"),
		// client-go sets its limiter up lazily from the first answer's
		// RateLimit-Limit, racing concurrent first calls (the race detector
		// catches it). mlbot paces itself on GitLab's 429 + Retry-After, so
		// an unlimited limiter, set before any call, is both safe and right.
		gl.WithCustomLimiter(rate.NewLimiter(rate.Inf, 0)),
	}
	if opts.HTTPClient != nil {
		clientOpts = append(clientOpts, gl.WithHTTPClient(opts.HTTPClient))
	}
	api, err := gl.NewClient(opts.Token, clientOpts...)
	if err != nil {
		return nil, fmt.Errorf("gitlab: new client: %w", err)
	}
	return &Client{api: api, token: opts.Token, base: base}, nil
}

// Name returns "gitlab".
func (*Client) Name() string { return ForgeName }

// projectID returns how the API addresses repo: by numeric id when the
// payload gave one (stable across renames), else by its full path, which gl
// escapes ("group/sub/project" → "group%2Fsub%2Fproject").
func projectID(repo bot.Repo) (any, string, error) {
	switch {
	case repo.ID != 0:
		id := strconv.FormatInt(repo.ID, 10)
		return repo.ID, id, nil
	case repo.FullName != "":
		return repo.FullName, gl.PathEscape(repo.FullName), nil
	}
	return nil, "", errors.New("gitlab: repository has neither id nor full name")
}

// glState maps mlbot's status states onto GitLab's: GitLab says "failed"
// for both failure and error, and spells "canceled" with one l.
func glState(s bot.State) (gl.BuildStateValue, error) {
	switch s {
	case bot.StatePending:
		return gl.Pending, nil
	case bot.StateRunning:
		return gl.Running, nil
	case bot.StateSuccess:
		return gl.Success, nil
	case bot.StateFailure, bot.StateError:
		return gl.Failed, nil
	case bot.StateCanceled:
		return gl.Canceled, nil
	}
	return "", fmt.Errorf("gitlab: unknown status state %q", s)
}

// CreateStatus sets the external commit status st.Context on sha
// (POST /projects/:id/statuses/:sha). Setting the state a status already
// has succeeds: some GitLab versions refuse that transition with a 400,
// and a task run twice must not fail for it.
func (c *Client) CreateStatus(ctx context.Context, repo bot.Repo, sha string, st bot.Status) error {
	pid, pidPath, err := projectID(repo)
	if err != nil {
		return err
	}
	state, err := glState(st.State)
	if err != nil {
		return err
	}
	opt := &gl.SetCommitStatusOptions{State: state, Name: gl.Ptr(st.Context)}
	if st.Ref != "" {
		opt.Ref = gl.Ptr(st.Ref)
	}
	if st.TargetURL != "" {
		opt.TargetURL = gl.Ptr(st.TargetURL)
	}
	if st.Description != "" {
		opt.Description = gl.Ptr(st.Description)
	}
	_, resp, err := c.api.Commits.SetCommitStatus(pid, sha, opt, gl.WithContext(ctx))
	if err == nil {
		return nil
	}
	apiErr := apiError(http.MethodPost, "/projects/"+pidPath+"/statuses/"+sha, resp, err)
	var he *bot.HostError
	if errors.As(apiErr, &he) && he.StatusCode == http.StatusBadRequest &&
		strings.Contains(he.Message, "Cannot transition status") {
		return nil
	}
	return apiErr
}

// ListComments lists the notes of merge request number, oldest first,
// following X-Next-Page. System notes ("added 1 commit", "approved this
// merge request") are not comments anyone wrote and are left out.
func (c *Client) ListComments(ctx context.Context, repo bot.Repo, number int) ([]bot.Comment, error) {
	pid, pidPath, err := projectID(repo)
	if err != nil {
		return nil, err
	}
	opt := &gl.ListMergeRequestNotesOptions{
		ListOptions: gl.ListOptions{PerPage: notesPerPage, Page: 1},
		// GitLab lists newest first by default; ascending matches GitHub
		// and makes "the first mlbot comment" well defined.
		OrderBy: gl.Ptr("created_at"),
		Sort:    gl.Ptr("asc"),
	}
	var out []bot.Comment
	for {
		notes, resp, err := c.api.Notes.ListMergeRequestNotes(pid, int64(number), opt, gl.WithContext(ctx))
		if err != nil {
			return nil, apiError(http.MethodGet, notesPath(pidPath, number), resp, err)
		}
		for _, n := range notes {
			if n.System {
				continue
			}
			out = append(out, noteComment(n))
		}
		next := nextPage(resp)
		if next <= opt.Page {
			return out, nil
		}
		opt.Page = next
	}
}

// nextPage returns the number of the page after resp, or 0 on the last.
// GitLab documents two ways of saying it for offset pagination: the
// X-Next-Page header and a Link header's rel="next" URL. X-Next-Page is
// read first; a Link alone still leads on (GitLab leaves X-Total and
// X-Total-Pages out of large listings, and proxies may drop X- headers).
func nextPage(resp *gl.Response) int64 {
	if resp == nil {
		return 0
	}
	if resp.NextPage > 0 {
		return resp.NextPage
	}
	if resp.NextLink == "" {
		return 0
	}
	u, err := url.Parse(resp.NextLink)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(u.Query().Get("page"), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// CreateComment adds a note to merge request number.
func (c *Client) CreateComment(ctx context.Context, repo bot.Repo, number int, body string) (bot.Comment, error) {
	pid, pidPath, err := projectID(repo)
	if err != nil {
		return bot.Comment{}, err
	}
	n, resp, err := c.api.Notes.CreateMergeRequestNote(pid, int64(number),
		&gl.CreateMergeRequestNoteOptions{Body: gl.Ptr(body)}, gl.WithContext(ctx))
	if err != nil {
		return bot.Comment{}, apiError(http.MethodPost, notesPath(pidPath, number), resp, err)
	}
	return noteComment(n), nil
}

// CreateCommitComment comments on commit sha (POST
// /projects/:id/repository/commits/:sha/comments): what mlbot says about a
// default-branch commit that no merge request is known for.
func (c *Client) CreateCommitComment(ctx context.Context, repo bot.Repo, sha, body string) error {
	pid, pidPath, err := projectID(repo)
	if err != nil {
		return err
	}
	_, resp, err := c.api.Commits.PostCommitComment(pid, sha, &gl.PostCommitCommentOptions{Note: gl.Ptr(body)}, gl.WithContext(ctx))
	if err != nil {
		return apiError(http.MethodPost, "/projects/"+pidPath+"/repository/commits/"+sha+"/comments", resp, err)
	}
	return nil
}

// UpdateComment replaces the body of note id on merge request number.
func (c *Client) UpdateComment(ctx context.Context, repo bot.Repo, number int, id int64, body string) error {
	pid, pidPath, err := projectID(repo)
	if err != nil {
		return err
	}
	_, resp, err := c.api.Notes.UpdateMergeRequestNote(pid, int64(number), id,
		&gl.UpdateMergeRequestNoteOptions{Body: gl.Ptr(body)}, gl.WithContext(ctx))
	if err != nil {
		return apiError(http.MethodPut, notesPath(pidPath, number)+"/"+strconv.FormatInt(id, 10), resp, err)
	}
	return nil
}

// CloneAuth returns a Basic Authorization header for git over HTTPS.
// GitLab takes any access token as the password of user "oauth2".
//
// The payload's clone URL must be the project's URL on the configured
// instance (see bot.CheckCloneURL), with or without a token: a fetch from
// anywhere else is refused before it starts.
func (c *Client) CloneAuth(_ context.Context, repo bot.Repo) (string, error) {
	if repo.CloneURL != "" {
		base := strings.TrimSuffix(strings.TrimSuffix(c.base, "/"), "/api/v4") + "/"
		if err := bot.CheckCloneURL(repo.CloneURL, base, repo.FullName); err != nil {
			return "", fmt.Errorf("gitlab: %w; nothing was fetched and no credential sent", err)
		}
	}
	if c.token == "" {
		return "", nil
	}
	return "Basic " + base64.StdEncoding.EncodeToString([]byte("oauth2:"+c.token)), nil
}

func notesPath(pidPath string, number int) string {
	return "/projects/" + pidPath + "/merge_requests/" + strconv.Itoa(number) + "/notes"
}

func noteComment(n *gl.Note) bot.Comment {
	return bot.Comment{
		ID:            n.ID,
		Body:          n.Body,
		Author:        n.Author.Username,
		OnPullRequest: true,
	}
}
