package github

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	gh "github.com/google/go-github/v60/github"

	"github.com/mlbot/mlbot/bot"
)

// Check run statuses and conclusions, as GitHub spells them.
const (
	CheckQueued     = "queued"
	CheckInProgress = "in_progress"
	CheckCompleted  = "completed"

	ConclusionSuccess   = "success"
	ConclusionFailure   = "failure"
	ConclusionCancelled = "cancelled"
)

// CheckRun is a check run as mlbot writes and reads it: GitHub's check
// run object without the fields mlbot never sets (annotations, images).
type CheckRun struct {
	// ID is GitHub's id, set by CreateCheckRun.
	ID      int64
	Name    string
	HeadSHA string
	// Status is CheckQueued, CheckInProgress or CheckCompleted.
	Status string
	// Conclusion is set once the check run is completed: success,
	// failure, neutral, cancelled, timed_out or action_required.
	Conclusion string
	ExternalID string
	DetailsURL string
	// Title, Summary and Text are the check run's output.
	Title, Summary, Text string
	// Actions are its buttons. GitHub does not return them, so a check
	// run read back has none.
	Actions []bot.CheckAction
	// AppID is the App that created it, as GitHub reports.
	AppID int64
}

// ShowsCheckRuns reports whether CreateStatus creates check runs: only a
// GitHub App may, so a client with a personal access token keeps commit
// statuses.
func (c *Client) ShowsCheckRuns() bool { return c.app != nil }

var _ bot.CheckRunHost = (*Client)(nil)

// CreateCheckRun creates check run cr on cr.HeadSHA (POST
// /repos/{owner}/{repo}/check-runs) and returns it with its id. A
// personal access token gets GitHub's 403: check runs are an App's.
func (c *Client) CreateCheckRun(ctx context.Context, repo bot.Repo, cr CheckRun) (CheckRun, error) {
	cl, owner, name, err := c.restFor(ctx, repo)
	if err != nil {
		return CheckRun{}, err
	}
	status, conclusion, completed := checkFields(cr)
	opts := gh.CreateCheckRunOptions{
		Name:        cr.Name,
		HeadSHA:     cr.HeadSHA,
		DetailsURL:  optional(cr.DetailsURL),
		ExternalID:  optional(cr.ExternalID),
		Status:      status,
		Conclusion:  conclusion,
		CompletedAt: completed,
		Output:      checkOutput(cr),
		Actions:     checkActions(cr.Actions),
	}
	got, resp, err := cl.Checks.CreateCheckRun(ctx, owner, name, opts)
	if err != nil {
		c.forgetOn401(resp, owner, name)
		return CheckRun{}, c.wrap(http.MethodPost, fmt.Sprintf("repos/%s/%s/check-runs", owner, name), err)
	}
	return checkRunOf(got), nil
}

// updateCheckRunBody is GitHub's PATCH body for a check run. go-github's
// UpdateCheckRunOptions drops an empty actions list, which is how a check
// run going back to queued loses the buttons of its last completion; here
// actions is always sent.
type updateCheckRunBody struct {
	Name        string               `json:"name"`
	DetailsURL  *string              `json:"details_url,omitempty"`
	ExternalID  *string              `json:"external_id,omitempty"`
	Status      *string              `json:"status,omitempty"`
	Conclusion  *string              `json:"conclusion,omitempty"`
	CompletedAt *gh.Timestamp        `json:"completed_at,omitempty"`
	Output      *gh.CheckRunOutput   `json:"output,omitempty"`
	Actions     []*gh.CheckRunAction `json:"actions"`
}

// UpdateCheckRun replaces what check run id shows with cr (PATCH
// /repos/{owner}/{repo}/check-runs/{id}): its status, conclusion, output,
// external id, details URL and buttons. A completed check run may go back
// to queued or in progress, as GitHub lets an App do when asked to run a
// check again.
func (c *Client) UpdateCheckRun(ctx context.Context, repo bot.Repo, id int64, cr CheckRun) (CheckRun, error) {
	cl, owner, name, err := c.restFor(ctx, repo)
	if err != nil {
		return CheckRun{}, err
	}
	status, conclusion, completed := checkFields(cr)
	body := updateCheckRunBody{
		Name:        cr.Name,
		DetailsURL:  optional(cr.DetailsURL),
		ExternalID:  optional(cr.ExternalID),
		Status:      status,
		Conclusion:  conclusion,
		CompletedAt: completed,
		Output:      checkOutput(cr),
		Actions:     checkActions(cr.Actions),
	}
	if body.Actions == nil {
		body.Actions = []*gh.CheckRunAction{}
	}
	path := fmt.Sprintf("repos/%s/%s/check-runs/%d", owner, name, id)
	req, err := cl.NewRequest(http.MethodPatch, path, body)
	if err != nil {
		return CheckRun{}, err
	}
	got := new(gh.CheckRun)
	resp, err := cl.Do(ctx, req, got)
	if err != nil {
		c.forgetOn401(resp, owner, name)
		return CheckRun{}, c.wrap(http.MethodPatch, path, err)
	}
	return checkRunOf(got), nil
}

// ListCheckRunsForRef returns the latest check run of each name on ref
// (GET /repos/{owner}/{repo}/commits/{ref}/check-runs), newest first,
// following pagination. A name other than "" keeps that name only; an
// App sees only its own check runs.
func (c *Client) ListCheckRunsForRef(ctx context.Context, repo bot.Repo, ref, checkName string) ([]CheckRun, error) {
	cl, owner, name, err := c.restFor(ctx, repo)
	if err != nil {
		return nil, err
	}
	opts := &gh.ListCheckRunsOptions{Filter: gh.String("latest"), ListOptions: gh.ListOptions{PerPage: 100}}
	if checkName != "" {
		opts.CheckName = gh.String(checkName)
	}
	if c.app != nil {
		opts.AppID = gh.Int64(c.app.id)
	}
	var out []CheckRun
	for {
		res, resp, err := cl.Checks.ListCheckRunsForRef(ctx, owner, name, ref, opts)
		if err != nil {
			c.forgetOn401(resp, owner, name)
			return nil, c.wrap(http.MethodGet, fmt.Sprintf("repos/%s/%s/commits/%s/check-runs", owner, name, ref), err)
		}
		for _, r := range res.CheckRuns {
			out = append(out, checkRunOf(r))
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

// setCheckRun shows st as the check run named st.Context on sha: the one
// mlbot created before, found in memory or else through the list
// endpoint, is updated; only when there is none is one created. Calls
// for one commit and name are serialised within the process, so that two
// of them never both create one.
func (c *Client) setCheckRun(ctx context.Context, repo bot.Repo, sha string, st bot.Status) error {
	cr, err := checkRunFor(sha, st)
	if err != nil {
		return err
	}
	key := repoKey(repo.FullName) + "@" + sha + "#" + st.Context
	unlock := c.checks.lock(key)
	defer unlock()
	id, known := c.checks.get(key)
	if !known {
		runs, err := c.ListCheckRunsForRef(ctx, repo, sha, st.Context)
		if err != nil {
			return err
		}
		for _, r := range runs {
			if r.Name == st.Context {
				id = r.ID
				break
			}
		}
	}
	if id != 0 {
		_, err := c.UpdateCheckRun(ctx, repo, id, cr)
		if err == nil {
			c.checks.put(key, id)
			return nil
		}
		if !errors.Is(err, bot.ErrNotFound) {
			return err
		}
		// Gone (the App was reinstalled, or GitHub dropped old runs):
		// make a new one.
	}
	got, err := c.CreateCheckRun(ctx, repo, cr)
	if err != nil {
		return err
	}
	c.checks.put(key, got.ID)
	return nil
}

// checkRunFor turns a status into the check run that shows it.
func checkRunFor(sha string, st bot.Status) (CheckRun, error) {
	cr := CheckRun{Name: st.Context, HeadSHA: sha, ExternalID: st.ExternalID, DetailsURL: st.TargetURL,
		Title: st.Title, Summary: st.Summary, Text: st.Text, Actions: st.Actions}
	switch st.State {
	case bot.StatePending:
		cr.Status = CheckQueued
		if st.Conclusion == bot.ConclusionActionRequired {
			cr.Status, cr.Conclusion = CheckCompleted, string(bot.ConclusionActionRequired)
		}
	case bot.StateRunning:
		cr.Status = CheckInProgress
	case bot.StateSuccess:
		cr.Status, cr.Conclusion = CheckCompleted, ConclusionSuccess
		if st.Conclusion == bot.ConclusionNeutral {
			cr.Conclusion = string(bot.ConclusionNeutral)
		}
	case bot.StateFailure, bot.StateError:
		// Check runs have no "error": mlbot's own failures fail the check.
		cr.Status, cr.Conclusion = CheckCompleted, ConclusionFailure
		if st.Conclusion == bot.ConclusionTimedOut {
			cr.Conclusion = string(bot.ConclusionTimedOut)
		}
	case bot.StateCanceled:
		cr.Status, cr.Conclusion = CheckCompleted, ConclusionCancelled
	default:
		return CheckRun{}, fmt.Errorf("github: unknown commit status state %q", st.State)
	}
	if cr.Title == "" {
		cr.Title = st.Description
	}
	if cr.Title == "" {
		cr.Title = st.Context
	}
	if cr.Summary == "" {
		cr.Summary = cr.Title
	}
	if cr.Status != CheckCompleted {
		// Buttons belong to a finished check: pressing Deploy while the
		// run is still going would only be refused.
		cr.Actions = nil
	}
	return cr, nil
}

// checkFields returns the status, conclusion and completion time GitHub
// is sent for cr.
func checkFields(cr CheckRun) (status, conclusion *string, completed *gh.Timestamp) {
	status = gh.String(cr.Status)
	if cr.Status == CheckCompleted && cr.Conclusion != "" {
		conclusion = gh.String(cr.Conclusion)
		completed = &gh.Timestamp{Time: time.Now().UTC().Truncate(time.Second)}
	}
	return status, conclusion, completed
}

// checkOutput is cr's output within GitHub's limits: a title on one
// line, summary and text of at most bot.MaxCheckText bytes.
func checkOutput(cr CheckRun) *gh.CheckRunOutput {
	title := strings.Join(strings.Fields(cr.Title), " ")
	out := &gh.CheckRunOutput{
		Title:   gh.String(truncate(title, maxCheckTitle)),
		Summary: gh.String(truncateBytes(cr.Summary, bot.MaxCheckText)),
	}
	if cr.Text != "" {
		out.Text = gh.String(truncateBytes(cr.Text, bot.MaxCheckText))
	}
	return out
}

// maxCheckTitle bounds a check run's title, which GitHub shows on one
// line beside the check's name.
const maxCheckTitle = 255

// checkActions returns the buttons GitHub accepts: at most three, labels
// and descriptions cut to their limits, and none whose identifier is
// empty or too long, since a cut identifier would name another action.
func checkActions(as []bot.CheckAction) []*gh.CheckRunAction {
	var out []*gh.CheckRunAction
	for _, a := range as {
		if a.Identifier == "" || utf8.RuneCountInString(a.Identifier) > bot.MaxActionIdentifier || a.Label == "" {
			continue
		}
		out = append(out, &gh.CheckRunAction{
			Label:       truncate(a.Label, bot.MaxActionLabel),
			Description: truncate(a.Description, bot.MaxActionDescription),
			Identifier:  a.Identifier,
		})
		if len(out) == bot.MaxCheckActions {
			break
		}
	}
	return out
}

func checkRunOf(r *gh.CheckRun) CheckRun {
	return CheckRun{
		ID: r.GetID(), Name: r.GetName(), HeadSHA: r.GetHeadSHA(), Status: r.GetStatus(), Conclusion: r.GetConclusion(),
		ExternalID: r.GetExternalID(), DetailsURL: r.GetDetailsURL(),
		Title: r.GetOutput().GetTitle(), Summary: r.GetOutput().GetSummary(), Text: r.GetOutput().GetText(),
		AppID: r.GetApp().GetID(),
	}
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return gh.String(s)
}

// checkIDs remembers the id of the check run of each commit and name,
// for at most maxCheckIDs of them (the oldest is forgotten first: it is
// found again through the list endpoint), and serialises the calls for
// one commit and name.
type checkIDs struct {
	locks [64]sync.Mutex

	mu    sync.Mutex
	ids   map[string]int64
	order []string
}

const maxCheckIDs = 4096

// lock locks key's stripe and returns its unlock.
func (m *checkIDs) lock(key string) func() {
	h := fnv.New32a()
	h.Write([]byte(key))
	l := &m.locks[h.Sum32()%uint32(len(m.locks))]
	l.Lock()
	return l.Unlock
}

func (m *checkIDs) get(key string) (int64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id, ok := m.ids[key]
	return id, ok
}

func (m *checkIDs) put(key string, id int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ids == nil {
		m.ids = map[string]int64{}
	}
	if _, ok := m.ids[key]; !ok {
		m.order = append(m.order, key)
		if len(m.order) > maxCheckIDs {
			delete(m.ids, m.order[0])
			m.order = m.order[1:]
		}
	}
	m.ids[key] = id
}
