package gitlab

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	gl "gitlab.com/gitlab-org/api/client-go"

	"github.com/mlbot/mlbot/bot"
)

// RateReserve is the share of GitLab's rate limit (RateLimit-Limit) that
// the reconciler's calls (ListOpenPullRequests, BranchHead,
// CommitStatuses) leave untouched: once an answer says less than it is
// left (RateLimit-Remaining), they return bot.ErrRateBudgetLow until the
// limit's reset (RateLimit-Reset), keeping the rest for what webhooks ask.
const RateReserve = 0.1

// rateWatch is the rate limit as GitLab's last answer to a reconciler call
// described it.
type rateWatch struct {
	mu               sync.Mutex
	limit, remaining int
	reset            time.Time
}

func (r *rateWatch) observe(resp *gl.Response) {
	if resp == nil || resp.Response == nil {
		return
	}
	limit, err1 := strconv.Atoi(resp.Header.Get("RateLimit-Limit"))
	remaining, err2 := strconv.Atoi(resp.Header.Get("RateLimit-Remaining"))
	reset, err3 := strconv.ParseInt(resp.Header.Get("RateLimit-Reset"), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || limit <= 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.limit, r.remaining, r.reset = limit, remaining, time.Unix(reset, 0)
}

func (r *rateWatch) budget() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.limit == 0 || !time.Now().Before(r.reset) || float64(r.remaining) >= RateReserve*float64(r.limit) {
		return nil
	}
	return fmt.Errorf("gitlab: %d of %d calls left until %s: %w", r.remaining, r.limit, r.reset.UTC().Format(time.RFC3339), bot.ErrRateBudgetLow)
}

// ListOpenPullRequests returns repo's open merge requests (GET
// /projects/:id/merge_requests?state=opened), following pagination, each
// with its head commit, author and whether its source project is another
// (a fork).
func (c *Client) ListOpenPullRequests(ctx context.Context, repo bot.Repo) ([]bot.PullRequest, error) {
	pid, pidPath, err := projectID(repo)
	if err != nil {
		return nil, err
	}
	opt := &gl.ListProjectMergeRequestsOptions{ListOptions: gl.ListOptions{PerPage: notesPerPage, Page: 1}, State: gl.Ptr("opened")}
	var out []bot.PullRequest
	for {
		if err := c.rate.budget(); err != nil {
			return nil, err
		}
		mrs, resp, err := c.api.MergeRequests.ListProjectMergeRequests(pid, opt, gl.WithContext(ctx))
		c.rate.observe(resp)
		if err != nil {
			return nil, apiError(http.MethodGet, "/api/v4/projects/"+pidPath+"/merge_requests", resp, err)
		}
		for _, mr := range mrs {
			out = append(out, listedMergeRequest(mr))
		}
		next := nextPage(resp)
		if next <= opt.Page {
			return out, nil
		}
		opt.Page = next
	}
}

// listedMergeRequest reads a listed merge request as a webhook's would
// read.
func listedMergeRequest(mr *gl.BasicMergeRequest) bot.PullRequest {
	pr := bot.PullRequest{
		Number:   int(mr.IID),
		Title:    mr.Title,
		URL:      mr.WebURL,
		Draft:    mr.Draft,
		State:    mr.State,
		HeadSHA:  mr.SHA,
		HeadRef:  mr.SourceBranch,
		HeadRepo: bot.Repo{Forge: ForgeName, ID: mr.SourceProjectID},
		BaseRef:  mr.TargetBranch,
		Fork:     mr.SourceProjectID != mr.TargetProjectID,
	}
	if mr.Author != nil {
		pr.Author, pr.AuthorID = mr.Author.Username, mr.Author.ID
	}
	if mr.UpdatedAt != nil {
		pr.Updated = *mr.UpdatedAt
	}
	return pr
}

// BranchHead returns the commit branch points at (GET
// /projects/:id/repository/branches/:branch).
func (c *Client) BranchHead(ctx context.Context, repo bot.Repo, branch string) (string, error) {
	pid, pidPath, err := projectID(repo)
	if err != nil {
		return "", err
	}
	if err := c.rate.budget(); err != nil {
		return "", err
	}
	b, resp, err := c.api.Branches.GetBranch(pid, branch, gl.WithContext(ctx))
	c.rate.observe(resp)
	if err != nil {
		return "", apiError(http.MethodGet, "/api/v4/projects/"+pidPath+"/repository/branches/"+gl.PathEscape(branch), resp, err)
	}
	if b.Commit == nil || b.Commit.ID == "" {
		return "", fmt.Errorf("gitlab: branch %s of %s names no commit", branch, repo.FullName)
	}
	return b.Commit.ID, nil
}

// CommitStatuses returns the newest status of each name on sha (GET
// /projects/:id/repository/commits/:sha/statuses, which lists the latest
// of each unless all=true), following pagination.
func (c *Client) CommitStatuses(ctx context.Context, repo bot.Repo, sha string) ([]bot.CommitStatus, error) {
	pid, pidPath, err := projectID(repo)
	if err != nil {
		return nil, err
	}
	opt := &gl.GetCommitStatusesOptions{ListOptions: gl.ListOptions{PerPage: notesPerPage, Page: 1}}
	var out []bot.CommitStatus
	for {
		if err := c.rate.budget(); err != nil {
			return nil, err
		}
		sts, resp, err := c.api.Commits.GetCommitStatuses(pid, sha, opt, gl.WithContext(ctx))
		c.rate.observe(resp)
		if err != nil {
			return nil, apiError(http.MethodGet, "/api/v4/projects/"+pidPath+"/repository/commits/"+sha+"/statuses", resp, err)
		}
		for _, st := range sts {
			out = append(out, bot.CommitStatus{Context: st.Name, State: st.Status})
		}
		next := nextPage(resp)
		if next <= opt.Page {
			return out, nil
		}
		opt.Page = next
	}
}
