package github

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

const (
	checkRunTemplate   = "payloads/check_run.requested_action.octokit.json"
	checkSuiteTemplate = "payloads/check_suite.rerequested.octokit.json"
)

// CheckPullRequest is a pull request as check_run and check_suite
// payloads name it: number, head and base.
type CheckPullRequest struct {
	Number           int
	HeadRef, HeadSHA string
	BaseRef, BaseSHA string
}

// CheckRunOptions describes a check_run delivery. Action is GitHub's
// ("rerequested" by default, "requested_action" with Identifier,
// "created", "completed"). Empty URLs and branches default as in
// PushOptions; Sender defaults to the repository owner.
type CheckRunOptions struct {
	Action                                 string
	Repo, CloneURL, HTMLURL, DefaultBranch string
	ID, SuiteID, AppID                     int64
	Name, HeadSHA, ExternalID, DetailsURL  string
	Status, Conclusion, Title, Summary     string
	Identifier                             string
	Sender                                 string
	PullRequests                           []CheckPullRequest
}

// CheckRunPayload returns the body of a check_run delivery described by o.
func CheckRunPayload(o CheckRunOptions) []byte {
	r := repoFields{o.Repo, o.CloneURL, o.HTMLURL, o.DefaultBranch}.withDefaults()
	if o.Action == "" {
		o.Action = "rerequested"
	}
	if o.Sender == "" {
		o.Sender = r.owner()
	}
	m := loadTemplate(checkRunTemplate)
	r.retarget(m, m["repository"].(map[string]any))
	r.apply(m, "repository")
	cr := m["check_run"].(map[string]any)
	id := strconv.FormatInt(o.ID, 10)
	api := apiRepoURL(r.fullName)
	cr["id"], cr["node_id"], cr["name"] = o.ID, "CR_"+id, o.Name
	cr["head_sha"], cr["external_id"], cr["details_url"] = o.HeadSHA, o.ExternalID, nullable(o.DetailsURL)
	cr["url"], cr["html_url"] = api+"/check-runs/"+id, r.htmlURL+"/runs/"+id
	cr["status"], cr["conclusion"] = o.Status, nullable(o.Conclusion)
	setPath(cr, nullable(o.Title), "output", "title")
	setPath(cr, nullable(o.Summary), "output", "summary")
	setPath(cr, nil, "output", "text")
	setPath(cr, o.AppID, "app", "id")
	prs := checkPullRequests(r.fullName, o.PullRequests)
	cr["pull_requests"] = prs
	if suite, ok := cr["check_suite"].(map[string]any); ok {
		suite["id"], suite["head_sha"], suite["after"] = o.SuiteID, o.HeadSHA, o.HeadSHA
		suite["url"] = fmt.Sprintf("%s/check-suites/%d", api, o.SuiteID)
		suite["pull_requests"] = prs
		setPath(suite, o.AppID, "app", "id")
		if len(o.PullRequests) > 0 {
			suite["head_branch"] = o.PullRequests[0].HeadRef
		}
	}
	if o.Action == "requested_action" {
		m["requested_action"] = map[string]any{"identifier": o.Identifier}
	} else {
		delete(m, "requested_action")
	}
	setUser(m, o.Sender, "sender")
	m["action"] = o.Action
	return mustMarshal(m)
}

// CheckSuiteOptions describes a check_suite delivery. Action is GitHub's
// ("rerequested" by default). UpdatedAt defaults to now.
type CheckSuiteOptions struct {
	Action                                 string
	Repo, CloneURL, HTMLURL, DefaultBranch string
	ID, AppID                              int64
	HeadSHA, HeadBranch                    string
	UpdatedAt                              time.Time
	Sender                                 string
	PullRequests                           []CheckPullRequest
}

// CheckSuitePayload returns the body of a check_suite delivery described
// by o.
func CheckSuitePayload(o CheckSuiteOptions) []byte {
	r := repoFields{o.Repo, o.CloneURL, o.HTMLURL, o.DefaultBranch}.withDefaults()
	if o.Action == "" {
		o.Action = "rerequested"
	}
	if o.Sender == "" {
		o.Sender = r.owner()
	}
	if o.HeadBranch == "" && len(o.PullRequests) > 0 {
		o.HeadBranch = o.PullRequests[0].HeadRef
	}
	m := loadTemplate(checkSuiteTemplate)
	r.retarget(m, m["repository"].(map[string]any))
	r.apply(m, "repository")
	api := apiRepoURL(r.fullName)
	cs := m["check_suite"].(map[string]any)
	cs["id"], cs["node_id"] = o.ID, "CS_"+strconv.FormatInt(o.ID, 10)
	cs["head_sha"], cs["after"], cs["head_branch"] = o.HeadSHA, o.HeadSHA, nullable(o.HeadBranch)
	cs["url"] = fmt.Sprintf("%s/check-suites/%d", api, o.ID)
	cs["check_runs_url"] = fmt.Sprintf("%s/check-suites/%d/check-runs", api, o.ID)
	cs["status"], cs["conclusion"] = "queued", nil
	cs["updated_at"] = timestamp(o.UpdatedAt)
	cs["pull_requests"] = checkPullRequests(r.fullName, o.PullRequests)
	setPath(cs, o.AppID, "app", "id")
	setPath(cs, o.HeadSHA, "head_commit", "id")
	setUser(m, o.Sender, "sender")
	m["action"] = o.Action
	return mustMarshal(m)
}

// checkPullRequests writes prs the way check payloads list them: both
// sides point at the repository itself.
func checkPullRequests(fullName string, prs []CheckPullRequest) []any {
	api := apiRepoURL(fullName)
	_, name, _ := strings.Cut(fullName, "/")
	out := []any{}
	for _, p := range prs {
		repo := map[string]any{"id": stableID(fullName), "url": api, "name": name}
		out = append(out, map[string]any{
			"url":    fmt.Sprintf("%s/pulls/%d", api, p.Number),
			"id":     stableID(fmt.Sprintf("%s#%d", api, p.Number)),
			"number": p.Number,
			"head":   map[string]any{"ref": p.HeadRef, "sha": p.HeadSHA, "repo": repo},
			"base":   map[string]any{"ref": p.BaseRef, "sha": p.BaseSHA, "repo": repo},
		})
	}
	return out
}
