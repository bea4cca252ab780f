// Package bot receives webhooks from code hosts, turns them into host-neutral
// events and defines the Forge interface through which the rest of mlbot talks
// back to a host (statuses, comments, clone credentials). Each host lives in
// its own subpackage (bot/github, bot/gitlab); nothing outside those packages
// knows which host an event came from beyond the Forge name it carries.
package bot

import "time"

// Kind says what happened in a host-neutral way.
type Kind string

// The event kinds mlbot routes. Anything else is KindOther and ignored.
const (
	KindPing        Kind = "ping"
	KindPush        Kind = "push"
	KindPullRequest Kind = "pull_request"
	KindComment     Kind = "comment"
	KindOther       Kind = "other"
	// KindCheck is a button pressed on one of the host's check runs: its
	// Re-run (ActionRerequested) or an action button mlbot put there
	// (ActionRequestedAction).
	KindCheck Kind = "check"
)

// Action is the normalised action of a pull/merge request event.
type Action string

// Pull/merge request actions. Hosts map their own vocabulary onto these:
// GitHub "synchronize" and a GitLab "update" carrying oldrev are both
// ActionUpdated; GitLab's draft→ready update and GitHub's ready_for_review
// are ActionReady. Title, label or description edits are ActionEdited.
const (
	ActionOpened   Action = "opened"
	ActionUpdated  Action = "updated"
	ActionReopened Action = "reopened"
	ActionReady    Action = "ready"
	ActionClosed   Action = "closed"
	ActionMerged   Action = "merged"
	ActionEdited   Action = "edited"
	ActionCreated  Action = "created" // comments
	ActionDeleted  Action = "deleted" // comments
	ActionOther    Action = "other"
	// ActionRerequested: someone asked a check run, or a whole check
	// suite, to run again.
	ActionRerequested Action = "rerequested"
	// ActionRequestedAction: someone pressed one of a check run's action
	// buttons (CheckRequest.Identifier).
	ActionRequestedAction Action = "requested_action"
)

// Repo identifies a repository (GitHub) or project (GitLab).
type Repo struct {
	// Forge is the host package's name: "github" or "gitlab".
	Forge string `json:"forge"`
	// ID is the host's numeric id (GitLab project id, GitHub repository id).
	ID int64 `json:"id,omitempty"`
	// FullName is "owner/name" on GitHub and the full namespace path on
	// GitLab ("group/subgroup/project"). It is what allowlists match.
	FullName string `json:"full_name"`
	// CloneURL is the HTTPS clone URL taken from the payload.
	CloneURL string `json:"clone_url"`
	// DefaultBranch is the repository's default branch ("main").
	DefaultBranch string `json:"default_branch"`
	// WebURL is the repository's page on the host.
	WebURL string `json:"web_url,omitempty"`
	// Host is the host name as the allowlist spells it ("github.com").
	Host string `json:"host,omitempty"`
}

// PullRequest is a GitHub pull request or a GitLab merge request.
type PullRequest struct {
	Number  int    `json:"number"` // GitHub number, GitLab iid
	Title   string `json:"title,omitempty"`
	URL     string `json:"url,omitempty"`
	Draft   bool   `json:"draft,omitempty"`
	State   string `json:"state,omitempty"`
	HeadSHA string `json:"head_sha"`
	HeadRef string `json:"head_ref,omitempty"`
	// HeadRepo is where the head commit lives; it differs from the event's
	// Repo for pull requests from forks.
	HeadRepo Repo   `json:"head_repo"`
	BaseRef  string `json:"base_ref"`
	BaseSHA  string `json:"base_sha,omitempty"`
	// Fork is true when the head repository is not the base repository.
	Fork   bool   `json:"fork,omitempty"`
	Author string `json:"author,omitempty"`
	// AuthorAssociation is GitHub's author_association (OWNER, MEMBER,
	// COLLABORATOR, CONTRIBUTOR, NONE…); empty on GitLab.
	AuthorAssociation string `json:"author_association,omitempty"`
	// AuthorID is the author's numeric id where the host names the author
	// only by number (GitLab's author_id); Forge.GetPermission accepts it
	// as "id:<n>".
	AuthorID int64  `json:"author_id,omitempty"`
	Merged   bool   `json:"merged,omitempty"`
	MergeSHA string `json:"merge_sha,omitempty"`
	// Updated is the host's last-change time of the pull request as the
	// event carries it (GitHub pull_request.updated_at, GitLab
	// object_attributes.updated_at): at that time its head was HeadSHA.
	// A push moves it, so the event of a new head says from when that head
	// is current. It is the host's clock, never a commit's own date, which
	// whoever made the commit chooses. Zero when the event has none.
	Updated time.Time `json:"updated,omitzero"`
}

// Comment is a comment on a pull/merge request or issue.
type Comment struct {
	// ID is the host's id of the comment (GitHub comment.id, GitLab
	// object_attributes.id): a comment's commands run once, however often
	// its webhook is delivered.
	ID     int64  `json:"id"`
	Body   string `json:"body"`
	Author string `json:"author,omitempty"`
	// AuthorID is the author's numeric id where the host's payload gives
	// it and Forge.GetPermission takes it as "id:<n>" (GitLab's user.id):
	// the permission is then read by id, with no look-up of the username.
	AuthorID int64 `json:"author_id,omitempty"`
	// OnPullRequest is false for comments on plain issues.
	OnPullRequest bool `json:"on_pull_request,omitempty"`
	// Created is when the host says the comment was written (GitHub
	// comment.created_at, GitLab object_attributes.created_at); zero when
	// the payload has none.
	Created time.Time `json:"created,omitzero"`
}

// Event is a webhook delivery normalised to what mlbot routes on.
type Event struct {
	Forge    string `json:"forge"`
	Delivery string `json:"delivery"`
	// Received is when mlbot accepted the delivery; it orders events of one
	// pull request whatever order workers handle them in.
	Received time.Time `json:"received,omitzero"`
	// Type is the host's own event name (X-GitHub-Event, X-Gitlab-Event).
	Type   string `json:"type"`
	Kind   Kind   `json:"kind"`
	Action Action `json:"action,omitempty"`
	Repo   Repo   `json:"repo"`
	Sender string `json:"sender,omitempty"`

	// Push fields.
	Ref     string `json:"ref,omitempty"`    // full ref, "refs/heads/main"
	Branch  string `json:"branch,omitempty"` // "main" for branch pushes, "" for tags
	Tag     bool   `json:"tag,omitempty"`
	Before  string `json:"before,omitempty"`
	SHA     string `json:"sha,omitempty"` // the pushed head ("after")
	Deleted bool   `json:"deleted,omitempty"`

	PR      *PullRequest  `json:"pr,omitempty"`
	Comment *Comment      `json:"comment,omitempty"`
	Check   *CheckRequest `json:"check,omitempty"`
}

// CheckRequest is what a KindCheck event asks of a check run or a check
// suite. Its PR, when the host named one, is the event's PR: GitHub names
// only pull requests whose head branch is in the repository itself, so a
// fork's pull request is found through ExternalID instead.
type CheckRequest struct {
	// RunID is the host's id of the check run; 0 for a whole suite.
	RunID int64 `json:"run_id,omitempty"`
	// SuiteID is the host's id of the check suite.
	SuiteID int64 `json:"suite_id,omitempty"`
	// Name is the check run's name ("mlbot/train-eval"); "" for a suite.
	Name string `json:"name,omitempty"`
	// HeadSHA is the commit checked.
	HeadSHA string `json:"head_sha"`
	// ExternalID is what mlbot set on the check run: its run's id.
	ExternalID string `json:"external_id,omitempty"`
	// Identifier names the button pressed, for ActionRequestedAction.
	Identifier string `json:"identifier,omitempty"`
	// Updated is when the host last changed the suite (a request to run
	// it again changes it); zero when the payload has none.
	Updated time.Time `json:"updated,omitzero"`
}
