package bot

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// State is a commit status state in mlbot's own vocabulary; each host
// maps it onto its own (GitLab says "failed" and "canceled", GitHub has no
// cancelled state and gets "error").
type State string

// Commit status states.
const (
	StatePending  State = "pending"
	StateRunning  State = "running"
	StateSuccess  State = "success"
	StateFailure  State = "failure"
	StateError    State = "error"
	StateCanceled State = "canceled"
)

// Status is a commit status (GitHub) or external commit status (GitLab),
// or a check run where the host has them (see CheckRunHost): one per
// commit and Context, created once and then updated.
type Status struct {
	Context     string // "mlbot/train-eval"
	State       State
	Description string // short; hosts cut it at 140 (GitHub) characters
	TargetURL   string
	// Ref is the branch the commit was pushed to, where the host wants it
	// (GitLab attaches the status to that branch's pipeline); may be "".
	Ref string

	// The fields below are what a check run shows beyond a commit status
	// (GitHub, when mlbot is a GitHub App; see CheckRunHost). Hosts that
	// keep commit statuses show Description alone and ignore them.

	// Title is the check run's one-line headline; Description when empty.
	Title string
	// Summary and Text are the check run's markdown: the summary shown
	// first, the text as details. Each is at most MaxCheckText bytes.
	Summary string
	Text    string
	// ExternalID is mlbot's id of what the check reports (a run or deploy
	// id); the host hands it back when someone presses a button.
	ExternalID string
	// Actions are the buttons of a completed check run, at most
	// MaxCheckActions.
	Actions []CheckAction
	// Conclusion refines State for a check run: a success that judged
	// nothing (ConclusionNeutral), a pending status that waits for a
	// person (ConclusionActionRequired) or a failure by time limit
	// (ConclusionTimedOut). Empty: the conclusion State implies.
	Conclusion Conclusion
}

// Conclusion is a check run conclusion State alone cannot express, in
// GitHub's words.
type Conclusion string

// Check run conclusions beyond success, failure and cancelled.
const (
	// ConclusionNeutral: the run finished without a verdict to give (no
	// base to compare with); it does not block a merge.
	ConclusionNeutral Conclusion = "neutral"
	// ConclusionActionRequired: nothing runs until a person acts (a
	// maintainer's /ok-to-test).
	ConclusionActionRequired Conclusion = "action_required"
	// ConclusionTimedOut: the run reached its time limit.
	ConclusionTimedOut Conclusion = "timed_out"
)

// CheckAction is a button on a check run. Pressing it sends a
// requested_action event carrying Identifier.
type CheckAction struct {
	// Label is the button's text, at most 20 characters.
	Label string
	// Description says what it does, at most 40 characters.
	Description string
	// Identifier names the action to mlbot, at most 20 characters.
	Identifier string
}

// Check run limits, as GitHub documents them.
const (
	// MaxCheckText is the longest check run summary or text. GitHub's
	// reference says characters, but GitHub counts UTF-8 bytes ("summary
	// exceeds a maximum bytesize of 65535", github/docs#35252), so mlbot
	// keeps within that many bytes.
	MaxCheckText = 65535
	// MaxCheckActions is how many buttons a check run may have.
	MaxCheckActions = 3
	// MaxActionLabel, MaxActionDescription and MaxActionIdentifier bound
	// a button's fields, in characters.
	MaxActionLabel       = 20
	MaxActionDescription = 40
	MaxActionIdentifier  = 20
)

// CheckRunHost is implemented by a Forge that may show check runs. A
// host's client shows them only where it can (GitHub, authenticated as a
// GitHub App); elsewhere CreateStatus sets commit statuses as before.
type CheckRunHost interface {
	// ShowsCheckRuns reports whether CreateStatus creates check runs.
	ShowsCheckRuns() bool
}

// Forge is everything mlbot asks of a code host after a webhook arrived.
// Consumers should declare the narrower interface they need; Forge is the
// union each host package implements.
type Forge interface {
	// Name is the host package's name, equal to Event.Forge.
	Name() string
	// CreateStatus sets a commit status on sha, or, where the host shows
	// check runs (CheckRunHost), the check run named st.Context.
	CreateStatus(ctx context.Context, repo Repo, sha string, st Status) error
	// ListComments lists all comments of pull/merge request number,
	// following pagination.
	ListComments(ctx context.Context, repo Repo, number int) ([]Comment, error)
	// CreateComment adds a comment and returns it with its id.
	CreateComment(ctx context.Context, repo Repo, number int, body string) (Comment, error)
	// UpdateComment replaces the body of comment id.
	UpdateComment(ctx context.Context, repo Repo, number int, id int64, body string) error
	// GetPermission returns user's effective permission on repo, including
	// what teams or parent groups grant; PermissionNone for strangers. user
	// is a login, or "id:<n>" for a host that names users by number.
	GetPermission(ctx context.Context, repo Repo, user string) (Permission, error)
	// CreateCommitComment comments on commit sha itself, for news about a
	// commit no pull request is known for (a direct push to the default
	// branch).
	CreateCommitComment(ctx context.Context, repo Repo, sha, body string) error
	// CreateReaction acknowledges comment commentID on pull/merge request
	// number with an emoji named as GitHub names reactions ("eyes", "+1").
	CreateReaction(ctx context.Context, repo Repo, number int, commentID int64, emoji string) error
	// CreateDeployment records a deployment of d.SHA to d.Environment and
	// returns it with the host's id.
	CreateDeployment(ctx context.Context, repo Repo, d Deployment) (Deployment, error)
	// UpdateDeployment sets the state of deployment id.
	UpdateDeployment(ctx context.Context, repo Repo, id int64, st DeploymentStatus) error
	// CloneAuth returns the value of an HTTP Authorization header that lets
	// git fetch repo over HTTPS, or "" when no credentials are configured.
	CloneAuth(ctx context.Context, repo Repo) (string, error)
}

// MaxCommentLength is the longest comment body mlbot posts: GitHub refuses
// bodies of 65,536 characters or more, and GitLab's limit is larger.
const MaxCommentLength = 65535

// ErrNotFound is wrapped by forge errors for a 404 from the host.
var ErrNotFound = errors.New("not found on host")

// HostError is a non-2xx answer from a code host's API.
type HostError struct {
	Forge      string
	Method     string
	Path       string
	StatusCode int
	Message    string
}

func (e *HostError) Error() string {
	return fmt.Sprintf("%s API %s %s: %d %s", e.Forge, e.Method, e.Path, e.StatusCode, e.Message)
}

// Temporary reports whether retrying the same call later may succeed
// (5xx answers, timeouts behind a proxy).
func (e *HostError) Temporary() bool {
	return e.StatusCode >= 500 || e.StatusCode == http.StatusRequestTimeout
}

// Unwrap lets errors.Is(err, ErrNotFound) see 404s.
func (e *HostError) Unwrap() error {
	if e.StatusCode == http.StatusNotFound {
		return ErrNotFound
	}
	return nil
}

// RateLimitError is returned when a host refused a call for its rate
// limits (GitHub primary or secondary limits, GitLab 429). RetryAfter is
// how long the host asked us to wait.
type RateLimitError struct {
	Forge      string
	RetryAfter time.Duration
	Message    string
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("%s API rate limited, retry after %s: %s", e.Forge, e.RetryAfter, e.Message)
}
