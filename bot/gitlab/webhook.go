// Package gitlab is mlbot's GitLab host: the webhook dialect (token check,
// delivery id, normalisation of push, merge request and note events), a
// bot.Forge client over the GitLab REST API v4, an HTTP simulator of the
// endpoints that client calls, and payload builders for the demo and tests.
package gitlab

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/mlbot/mlbot/bot"
)

// ForgeName is the name this package answers to in bot.Event.Forge,
// bot.Repo.Forge and Forge.Name.
const ForgeName = "gitlab"

// GitLab's webhook request headers.
const (
	HeaderEvent          = "X-Gitlab-Event"
	HeaderToken          = "X-Gitlab-Token"
	HeaderEventUUID      = "X-Gitlab-Event-UUID"
	HeaderIdempotencyKey = "Idempotency-Key"
)

// GitLab's X-Gitlab-Event values that mlbot routes.
const (
	EventPush         = "Push Hook"
	EventMergeRequest = "Merge Request Hook"
	EventNote         = "Note Hook"
	EventSystem       = "System Hook"
)

// zeroSHA is the "after" of a push that deleted its ref.
const zeroSHA = "0000000000000000000000000000000000000000"

// Webhook is GitLab's webhook dialect. It implements bot.Webhook.
type Webhook struct {
	// Secret is the webhook's secret token. GitLab sends it verbatim in
	// X-Gitlab-Token (there is no signature over the body). An empty Secret
	// accepts every delivery.
	Secret []byte
}

var _ bot.Webhook = (*Webhook)(nil)

// Forge returns "gitlab".
func (*Webhook) Forge() string { return ForgeName }

// Authenticate compares the X-Gitlab-Token header with Secret in constant
// time. A missing or different token returns an error wrapping
// bot.ErrUnauthenticated.
func (w *Webhook) Authenticate(h http.Header, _ []byte) error {
	if len(w.Secret) == 0 {
		return nil
	}
	got, ok := h[http.CanonicalHeaderKey(HeaderToken)]
	if !ok || len(got) == 0 {
		return fmt.Errorf("gitlab: missing %s header: %w", HeaderToken, bot.ErrUnauthenticated)
	}
	// ConstantTimeCompare returns early on a length mismatch, which would
	// tell an attacker the secret's length; comparing fixed-size digests
	// keeps the timing independent of both lengths.
	gotSum := sha256.Sum256([]byte(got[0]))
	wantSum := sha256.Sum256(w.Secret)
	if subtle.ConstantTimeCompare(gotSum[:], wantSum[:]) != 1 {
		return fmt.Errorf("gitlab: %s does not match: %w", HeaderToken, bot.ErrUnauthenticated)
	}
	return nil
}

// Identify returns the delivery id and X-Gitlab-Event. The delivery id is
// Idempotency-Key when present, because GitLab (17.4 and later) repeats it
// on retries of the same event while X-Gitlab-Event-UUID changes with each
// attempt; older GitLab sends only the latter.
func (*Webhook) Identify(h http.Header, _ []byte) (delivery, eventType string) {
	delivery = h.Get(HeaderIdempotencyKey)
	if delivery == "" {
		delivery = h.Get(HeaderEventUUID)
	}
	return delivery, h.Get(HeaderEvent)
}

// Handles reports whether eventType is a push, merge request, note or
// system hook. Tag pushes, pipelines, deployments and the rest are dropped.
func (*Webhook) Handles(eventType string) bool {
	switch eventType {
	case EventPush, EventMergeRequest, EventNote, EventSystem:
		return true
	}
	return false
}

// systemKinds are the System Hook events mlbot routes.
var systemKinds = map[string]bool{"push": true, "merge_request": true}

// Precheck implements bot.Prechecker for System Hooks, which share one
// event type for every kind of event: a body naming no kind is refused,
// kinds mlbot does not route are ignored before anything is queued.
func (*Webhook) Precheck(eventType string, body []byte) error {
	if eventType != EventSystem {
		return nil
	}
	var head struct {
		ObjectKind string `json:"object_kind"`
		EventName  string `json:"event_name"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return fmt.Errorf("gitlab: System Hook body: %w", err)
	}
	kind := head.ObjectKind
	if kind == "" {
		kind = head.EventName
	}
	switch {
	case kind == "":
		return errors.New("gitlab: System Hook body has neither object_kind nor event_name")
	case !systemKinds[kind]:
		return fmt.Errorf("gitlab: System Hook event %q: %w", kind, bot.ErrIgnoredEvent)
	}
	return nil
}

// Parse normalises a GitLab webhook body into a bot.Event. System hooks
// are dispatched on their object_kind (or event_name); event types and
// kinds mlbot does not route come back as bot.KindOther. A body that is not
// valid JSON is an error.
func (*Webhook) Parse(eventType string, body []byte) (*bot.Event, error) {
	var head struct {
		ObjectKind string `json:"object_kind"`
		EventName  string `json:"event_name"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return nil, fmt.Errorf("gitlab: parse %q body: %w", eventType, err)
	}
	kind := ""
	switch eventType {
	case EventPush:
		kind = "push"
	case EventMergeRequest:
		kind = "merge_request"
	case EventNote:
		kind = "note"
	case EventSystem:
		// System hooks reuse the project hook payloads for pushes and merge
		// requests but label them all "System Hook"; merge requests carry
		// only object_kind, repository_update and the rest only event_name.
		kind = head.ObjectKind
		if kind == "" {
			kind = head.EventName
		}
	}
	var (
		ev  *bot.Event
		err error
	)
	switch kind {
	case "push":
		ev, err = parsePush(body)
	case "merge_request":
		ev, err = parseMergeRequest(body)
	case "note":
		ev, err = parseNote(body)
	default:
		ev = &bot.Event{Kind: bot.KindOther, Action: bot.ActionOther}
	}
	if err != nil {
		return nil, fmt.Errorf("gitlab: parse %q body: %w", eventType, err)
	}
	ev.Forge = ForgeName
	ev.Type = eventType
	if ev.Repo.FullName != "" || ev.Repo.ID != 0 {
		ev.Repo.Forge = ForgeName
	}
	return ev, nil
}

// project is the "project", "source" and "target" object of GitLab payloads.
type project struct {
	ID                int64  `json:"id"`
	PathWithNamespace string `json:"path_with_namespace"`
	GitHTTPURL        string `json:"git_http_url"`
	WebURL            string `json:"web_url"`
	DefaultBranch     string `json:"default_branch"`
}

// repo converts p, using id when the payload's object has no id of its own
// (source and target objects never do; some project objects neither).
func (p project) repo(id int64) bot.Repo {
	if p.ID != 0 {
		id = p.ID
	}
	r := bot.Repo{
		Forge:         ForgeName,
		ID:            id,
		FullName:      p.PathWithNamespace,
		CloneURL:      p.GitHTTPURL,
		DefaultBranch: p.DefaultBranch,
		WebURL:        p.WebURL,
	}
	if u, err := url.Parse(p.WebURL); err == nil {
		// Keep a non-default port: two instances on one host are two hosts
		// to an allowlist.
		r.Host = u.Host
	}
	return r
}

type user struct {
	ID       int64  `json:"id"`
	Username string `json:"username"`
}

type pushPayload struct {
	Ref          string  `json:"ref"`
	Before       string  `json:"before"`
	After        string  `json:"after"`
	ProjectID    int64   `json:"project_id"`
	UserUsername string  `json:"user_username"`
	Project      project `json:"project"`
}

func parsePush(body []byte) (*bot.Event, error) {
	var p pushPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, err
	}
	ev := &bot.Event{
		Kind:    bot.KindPush,
		Repo:    p.Project.repo(p.ProjectID),
		Sender:  p.UserUsername,
		Ref:     p.Ref,
		Before:  p.Before,
		SHA:     p.After,
		Deleted: p.After == zeroSHA,
	}
	// Tag pushes arrive as "Tag Push Hook" and are not routed, but a system
	// hook can still hand one over as a push: never report it as a branch.
	if name, ok := strings.CutPrefix(p.Ref, "refs/tags/"); ok && name != "" {
		ev.Tag = true
	} else {
		ev.Branch = strings.TrimPrefix(p.Ref, "refs/heads/")
	}
	return ev, nil
}

type lastCommit struct {
	ID string `json:"id"`
}

// mergeRequest is object_attributes of a merge request event and the
// merge_request object of a note event.
type mergeRequest struct {
	IID             int        `json:"iid"`
	Title           string     `json:"title"`
	URL             string     `json:"url"`
	State           string     `json:"state"`
	Draft           bool       `json:"draft"`
	WorkInProgress  bool       `json:"work_in_progress"`
	SourceBranch    string     `json:"source_branch"`
	TargetBranch    string     `json:"target_branch"`
	SourceProjectID int64      `json:"source_project_id"`
	TargetProjectID int64      `json:"target_project_id"`
	Source          project    `json:"source"`
	Target          project    `json:"target"`
	LastCommit      lastCommit `json:"last_commit"`
	MergeCommitSHA  string     `json:"merge_commit_sha"`
	AuthorID        int64      `json:"author_id"`
	Action          string     `json:"action"`
	OldRev          string     `json:"oldrev"`
	// UpdatedAt moves with every push to the source branch (and other
	// changes); last_commit.timestamp is the commit's own date, which its
	// author chooses, and is never used.
	UpdatedAt string `json:"updated_at"`
}

func (m mergeRequest) pullRequest() *bot.PullRequest {
	head := m.Source.repo(0)
	// source_project_id is authoritative; the source object carries an id
	// only in some GitLab versions.
	if m.SourceProjectID != 0 {
		head.ID = m.SourceProjectID
	}
	return &bot.PullRequest{
		Number:   m.IID,
		Title:    m.Title,
		URL:      m.URL,
		Draft:    m.Draft || m.WorkInProgress,
		State:    m.State,
		HeadSHA:  m.LastCommit.ID,
		HeadRef:  m.SourceBranch,
		HeadRepo: head,
		BaseRef:  m.TargetBranch,
		// GitLab merge request payloads carry no target SHA; the pipeline
		// resolves BaseRef itself.
		BaseSHA: "",
		Fork:    m.SourceProjectID != m.TargetProjectID,
		// The author, whoever triggered this event; GetPermission takes it
		// as "id:<n>" when no username is known.
		AuthorID: m.AuthorID,
		Updated:  parseTime(m.UpdatedAt),
	}
}

// boolChange is one entry of a merge request event's "changes".
type boolChange struct {
	Previous *bool `json:"previous"`
	Current  *bool `json:"current"`
}

func (c *boolChange) turnedOff() bool {
	return c != nil && c.Previous != nil && c.Current != nil && *c.Previous && !*c.Current
}

type stringChange struct {
	Previous *string `json:"previous"`
	Current  *string `json:"current"`
}

type mergeRequestPayload struct {
	User             user         `json:"user"`
	Project          project      `json:"project"`
	ObjectAttributes mergeRequest `json:"object_attributes"`
	Changes          struct {
		Draft          *boolChange   `json:"draft"`
		WorkInProgress *boolChange   `json:"work_in_progress"`
		Title          *stringChange `json:"title"`
	} `json:"changes"`
}

// draftTitle matches the title prefixes by which GitLab marks a draft
// ("Draft:", "[Draft]", "(Draft)", and the older "WIP:"/"[WIP]").
var draftTitle = regexp.MustCompile(`(?i)^\s*(\[draft\]|\(draft\)|draft:|\[wip\]|wip:)`)

func parseMergeRequest(body []byte) (*bot.Event, error) {
	var p mergeRequestPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, err
	}
	attrs := p.ObjectAttributes
	ev := &bot.Event{
		Kind:   bot.KindPullRequest,
		Repo:   p.Project.repo(attrs.TargetProjectID),
		Sender: p.User.Username,
		PR:     attrs.pullRequest(),
	}
	switch attrs.Action {
	case "open":
		ev.Action = bot.ActionOpened
		// user is whoever triggered the event; only on open is that
		// certainly the author (the payload has only author_id otherwise).
		ev.PR.Author = p.User.Username
	case "reopen":
		ev.Action = bot.ActionReopened
	case "update":
		ev.Action = mergeRequestUpdate(p)
	case "close":
		ev.Action = bot.ActionClosed
	case "merge":
		ev.Action = bot.ActionMerged
		ev.PR.Merged = true
		ev.PR.MergeSHA = attrs.MergeCommitSHA
	default:
		// approved, unapproved, approval, unapproval and future actions.
		ev.Action = bot.ActionOther
	}
	return ev, nil
}

// mergeRequestUpdate tells a new commit (oldrev is set) from a draft being
// marked ready and from any other edit. GitLab has reported readiness in
// three shapes over the years: changes.draft, changes.work_in_progress, and
// before either existed only a title losing its "Draft:" prefix.
func mergeRequestUpdate(p mergeRequestPayload) bot.Action {
	if p.ObjectAttributes.OldRev != "" {
		return bot.ActionUpdated
	}
	c := p.Changes
	if c.Draft.turnedOff() || c.WorkInProgress.turnedOff() {
		return bot.ActionReady
	}
	if c.Draft == nil && c.WorkInProgress == nil && c.Title != nil &&
		c.Title.Previous != nil && c.Title.Current != nil &&
		draftTitle.MatchString(*c.Title.Previous) && !draftTitle.MatchString(*c.Title.Current) {
		return bot.ActionReady
	}
	return bot.ActionEdited
}

type notePayload struct {
	User             user    `json:"user"`
	ProjectID        int64   `json:"project_id"`
	Project          project `json:"project"`
	ObjectAttributes struct {
		ID           int64  `json:"id"`
		Note         string `json:"note"`
		NoteableType string `json:"noteable_type"`
		Action       string `json:"action"`
		CreatedAt    string `json:"created_at"`
	} `json:"object_attributes"`
	MergeRequest *mergeRequest `json:"merge_request"`
}

func parseNote(body []byte) (*bot.Event, error) {
	var p notePayload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, err
	}
	attrs := p.ObjectAttributes
	ev := &bot.Event{
		Kind:   bot.KindComment,
		Repo:   p.Project.repo(p.ProjectID),
		Sender: p.User.Username,
		Comment: &bot.Comment{
			ID:            attrs.ID,
			Body:          attrs.Note,
			Author:        p.User.Username,
			AuthorID:      p.User.ID,
			OnPullRequest: attrs.NoteableType == "MergeRequest",
			Created:       parseTime(attrs.CreatedAt),
		},
	}
	// Payloads before GitLab 16.x carry no action: they were only ever sent
	// for new notes.
	switch attrs.Action {
	case "", "create":
		ev.Action = bot.ActionCreated
	case "update":
		ev.Action = bot.ActionEdited
	default:
		ev.Action = bot.ActionOther
	}
	if ev.Comment.OnPullRequest && p.MergeRequest != nil {
		ev.PR = p.MergeRequest.pullRequest()
	}
	return ev, nil
}

// timeLayouts are the shapes of GitLab's webhook timestamps: hooks write
// "2020-12-08 04:15:39 UTC", nested objects of newer versions ISO 8601.
var timeLayouts = []string{"2006-01-02 15:04:05 UTC", "2006-01-02 15:04:05 -0700", time.RFC3339Nano}

// parseTime reads a GitLab timestamp; zero when it is missing or in no
// known shape.
func parseTime(s string) time.Time {
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}
