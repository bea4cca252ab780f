package github

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	gh "github.com/google/go-github/v60/github"

	"github.com/mlbot/mlbot/bot"
)

// What the reconciler's calls (ListOpenPullRequests, BranchHead,
// CommitStatuses, InstallationRepos) ask of GitHub's rate limit. Listings
// are conditional requests: GitHub answers an unchanged listing with 304
// Not Modified, which does not count against the primary rate limit when
// the request is authenticated, and the body kept from the last 200 is
// used. And they stop, with bot.ErrRateBudgetLow, once the limit's last
// answer left less than RateReserve of it: that much stays for what
// webhooks ask.
const (
	// RateReserve is the share of the primary rate limit the reconciler
	// leaves untouched.
	RateReserve = 0.1
	// maxCachedListings bounds the listings kept for conditional requests.
	maxCachedListings = 4096
	// maxListingBytes bounds one listing page read.
	maxListingBytes = 16 << 20
)

// conditional is the reconciler's state: the validators and bodies of the
// listings it read, and the rate limit each go-github client last saw.
type conditional struct {
	mu    sync.Mutex
	pages map[string]cachedPage
	rates map[*gh.Client]gh.Rate
}

// cachedPage is a listing page as its last 200 answered it.
type cachedPage struct {
	etag string
	body []byte
	next string
}

func (c *conditional) page(u string) (cachedPage, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pages[u]
	return p, ok
}

func (c *conditional) put(u string, p cachedPage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pages == nil {
		c.pages = map[string]cachedPage{}
	}
	if _, ok := c.pages[u]; !ok && len(c.pages) >= maxCachedListings {
		// Drop an arbitrary page: it costs one full read again, not more.
		for k := range c.pages {
			delete(c.pages, k)
			break
		}
	}
	c.pages[u] = p
}

func (c *conditional) observe(cl *gh.Client, r gh.Rate) {
	if r.Limit == 0 {
		return // an answer without X-RateLimit-* headers
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rates == nil {
		c.rates = map[*gh.Client]gh.Rate{}
	}
	c.rates[cl] = r
}

// budget refuses a call once cl's last answer left less than RateReserve
// of the limit, until the limit's reset.
func (c *conditional) budget(cl *gh.Client) error {
	c.mu.Lock()
	r, ok := c.rates[cl]
	c.mu.Unlock()
	if !ok || !time.Now().Before(r.Reset.Time) {
		return nil
	}
	if float64(r.Remaining) < RateReserve*float64(r.Limit) {
		return fmt.Errorf("github: %d of %d calls left until %s: %w", r.Remaining, r.Limit, r.Reset.Time.UTC().Format(time.RFC3339), bot.ErrRateBudgetLow)
	}
	return nil
}

// getConditional reads the JSON at path (relative to the API root, or an
// absolute next-page link) into v with If-None-Match when the page was
// read before, and returns the next page's link ("" on the last page). A
// 304 hands back the body kept from the last 200.
func (c *Client) getConditional(ctx context.Context, cl *gh.Client, owner, name, path string, v any) (next string, err error) {
	if err := c.cond.budget(cl); err != nil {
		return "", err
	}
	req, err := cl.NewRequest(http.MethodGet, path, nil)
	if err != nil {
		return "", err
	}
	key := req.URL.String()
	cached, ok := c.cond.page(key)
	if ok {
		req.Header.Set("If-None-Match", cached.etag)
	}
	resp, err := cl.BareDo(ctx, req)
	if resp != nil {
		c.cond.observe(cl, resp.Rate)
	}
	if ok && resp != nil && resp.StatusCode == http.StatusNotModified {
		return cached.next, json.Unmarshal(cached.body, v)
	}
	if err != nil {
		c.forgetOn401(resp, owner, name)
		return "", c.wrap(http.MethodGet, strings.SplitN(path, "?", 2)[0], err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxListingBytes))
	if err != nil {
		return "", fmt.Errorf("github: GET %s: %w", path, err)
	}
	next = nextLink(resp.Header.Get("Link"))
	if u, err := url.Parse(next); next != "" && (err != nil || (u.IsAbs() && u.Host != cl.BaseURL.Host)) {
		// Never send the token to another host a Link points at.
		return "", fmt.Errorf("github: GET %s: next page on another host: %q", path, next)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return "", fmt.Errorf("github: GET %s: %w", path, err)
	}
	if etag := resp.Header.Get("ETag"); etag != "" {
		c.cond.put(key, cachedPage{etag: etag, body: body, next: next})
	}
	return next, nil
}

// ListOpenPullRequests returns repo's open pull requests (GET
// /repos/{owner}/{repo}/pulls?state=open), following pagination, each
// with its head commit, author, author association and whether it comes
// from a fork: what admitting its head needs. The pages are conditional
// requests (see RateReserve).
func (c *Client) ListOpenPullRequests(ctx context.Context, repo bot.Repo) ([]bot.PullRequest, error) {
	cl, owner, name, err := c.restFor(ctx, repo)
	if err != nil {
		return nil, err
	}
	var out []bot.PullRequest
	next := fmt.Sprintf("repos/%s/%s/pulls?state=open&per_page=100", owner, name)
	for next != "" {
		var page []*gh.PullRequest
		if next, err = c.getConditional(ctx, cl, owner, name, next, &page); err != nil {
			return nil, err
		}
		for _, pr := range page {
			out = append(out, listedPullRequest(pr))
		}
	}
	return out, nil
}

// listedPullRequest reads a listed pull request as a webhook's would read.
func listedPullRequest(pr *gh.PullRequest) bot.PullRequest {
	out := bot.PullRequest{
		Number:            pr.GetNumber(),
		Title:             pr.GetTitle(),
		URL:               pr.GetHTMLURL(),
		Draft:             pr.GetDraft(),
		State:             pr.GetState(),
		HeadSHA:           pr.GetHead().GetSHA(),
		HeadRef:           pr.GetHead().GetRef(),
		BaseRef:           pr.GetBase().GetRef(),
		BaseSHA:           pr.GetBase().GetSHA(),
		Author:            pr.GetUser().GetLogin(),
		AuthorAssociation: pr.GetAuthorAssociation(),
		Updated:           pr.GetUpdatedAt().Time,
	}
	head, base := pr.GetHead().GetRepo(), pr.GetBase().GetRepo()
	if head != nil {
		out.HeadRepo = repoOf(head)
	}
	// A deleted fork leaves head.repo null: an unknowable head is a fork.
	out.Fork = head == nil || base == nil || !strings.EqualFold(head.GetFullName(), base.GetFullName())
	return out
}

// repoOf reads a repository object as a webhook's repository would read.
func repoOf(r *gh.Repository) bot.Repo {
	return bot.Repo{
		Forge:         ForgeName,
		ID:            r.GetID(),
		FullName:      r.GetFullName(),
		CloneURL:      r.GetCloneURL(),
		DefaultBranch: r.GetDefaultBranch(),
		WebURL:        r.GetHTMLURL(),
		Host:          hostOf(r.GetHTMLURL()),
	}
}

// BranchHead returns the commit branch points at (GET
// /repos/{owner}/{repo}/branches/{branch}), as a conditional request.
func (c *Client) BranchHead(ctx context.Context, repo bot.Repo, branch string) (string, error) {
	cl, owner, name, err := c.restFor(ctx, repo)
	if err != nil {
		return "", err
	}
	var b gh.Branch
	if _, err := c.getConditional(ctx, cl, owner, name, fmt.Sprintf("repos/%s/%s/branches/%s", owner, name, url.PathEscape(branch)), &b); err != nil {
		return "", err
	}
	if b.GetCommit().GetSHA() == "" {
		return "", fmt.Errorf("github: branch %s of %s names no commit", branch, repo.FullName)
	}
	return b.GetCommit().GetSHA(), nil
}

// CommitStatuses returns the newest state of each status context on sha
// (GET /repos/{owner}/{repo}/commits/{ref}/status, GitHub's combined
// status) and, for a GitHub App, which shows check runs instead, the
// latest of its check runs on sha.
func (c *Client) CommitStatuses(ctx context.Context, repo bot.Repo, sha string) ([]bot.CommitStatus, error) {
	cl, owner, name, err := c.restFor(ctx, repo)
	if err != nil {
		return nil, err
	}
	var out []bot.CommitStatus
	next := fmt.Sprintf("repos/%s/%s/commits/%s/status?per_page=100", owner, name, url.PathEscape(sha))
	for next != "" {
		var combined gh.CombinedStatus
		if next, err = c.getConditional(ctx, cl, owner, name, next, &combined); err != nil {
			return nil, err
		}
		for _, st := range combined.Statuses {
			out = append(out, bot.CommitStatus{Context: st.GetContext(), State: st.GetState()})
		}
	}
	if c.app == nil {
		return out, nil
	}
	if err := c.cond.budget(cl); err != nil {
		return nil, err
	}
	runs, err := c.ListCheckRunsForRef(ctx, repo, sha, "")
	if err != nil {
		return nil, err
	}
	for _, r := range runs {
		state := r.Status
		if r.Conclusion != "" {
			state = r.Conclusion
		}
		out = append(out, bot.CommitStatus{Context: r.Name, State: state})
	}
	return out, nil
}

// InstallationRepos returns every repository of every installation of
// the GitHub App (GET /app/installations, then GET
// /installation/repositories with each installation's token), and
// remembers which installation serves each. Without an App it returns
// nothing: a token's repositories are those that deliver webhooks.
func (c *Client) InstallationRepos(ctx context.Context) ([]bot.Repo, error) {
	if c.app == nil {
		return nil, nil
	}
	var ids []int64
	next := "app/installations?per_page=100"
	for next != "" {
		var page []*gh.Installation
		var err error
		if next, err = c.getConditional(ctx, c.app.client, "", "", next, &page); err != nil {
			return nil, err
		}
		for _, in := range page {
			ids = append(ids, in.GetID())
		}
	}
	var out []bot.Repo
	for _, id := range ids {
		inst := c.installationByID(id)
		next := "installation/repositories?per_page=100"
		for next != "" {
			var page gh.ListRepositories
			var err error
			if next, err = c.getConditional(ctx, inst.client, "", "", next, &page); err != nil {
				var he *bot.HostError
				if errors.As(err, &he) && (he.StatusCode == http.StatusNotFound || he.StatusCode == http.StatusForbidden) {
					// Uninstalled or suspended since it was listed.
					break
				}
				return nil, err
			}
			for _, r := range page.Repositories {
				out = append(out, repoOf(r))
				c.app.mu.Lock()
				c.app.repos[strings.ToLower(r.GetFullName())] = id
				c.app.mu.Unlock()
			}
		}
	}
	return out, nil
}
