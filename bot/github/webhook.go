// Package github is mlbot's GitHub dialect: the webhook verifier and
// normaliser (Webhook), the REST client behind bot.Forge (Client), an HTTP
// simulator of the GitHub API endpoints mlbot calls (Simulator) and builders
// of signed webhook deliveries for the demo and end-to-end tests.
package github

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mlbot/mlbot/bot"
)

// ForgeName is the name this package reports as bot.Event.Forge,
// bot.Repo.Forge and bot.Forge.Name.
const ForgeName = "github"

// The headers GitHub sets on every webhook delivery.
const (
	HeaderSignature256 = "X-Hub-Signature-256"
	HeaderDelivery     = "X-GitHub-Delivery"
	HeaderEvent        = "X-GitHub-Event"
)

const signaturePrefix = "sha256="

// zeroSHA is what GitHub sends as "after" when a ref was deleted and as
// "before" when it was created.
const zeroSHA = "0000000000000000000000000000000000000000"

// Webhook verifies and normalises GitHub webhook deliveries. It implements
// bot.Webhook.
type Webhook struct {
	// Secret is the webhook secret configured on GitHub. When it is empty
	// Authenticate accepts every delivery: the server refuses to start
	// without a secret unless told to explicitly, so an empty secret here
	// is a deliberate choice made elsewhere.
	Secret []byte
}

var _ bot.Webhook = (*Webhook)(nil)

// SignatureError says why a delivery's X-Hub-Signature-256 was refused. It
// wraps bot.ErrUnauthenticated and never carries the secret or the
// expected signature.
type SignatureError struct {
	// Reason is one of "missing", "wrong prefix", "malformed" or "mismatch".
	Reason string
}

func (e *SignatureError) Error() string {
	return "github webhook: " + HeaderSignature256 + " " + e.Reason
}

// Unwrap makes errors.Is(err, bot.ErrUnauthenticated) hold.
func (e *SignatureError) Unwrap() error { return bot.ErrUnauthenticated }

// Forge returns "github".
func (w *Webhook) Forge() string { return ForgeName }

// Authenticate checks the X-Hub-Signature-256 header against an
// HMAC-SHA256 of body. The legacy SHA-1 X-Hub-Signature header is never
// enough on its own: SHA-1 HMACs are what an attacker would downgrade to.
func (w *Webhook) Authenticate(h http.Header, body []byte) error {
	if len(w.Secret) == 0 {
		return nil
	}
	sig := h.Get(HeaderSignature256)
	if sig == "" {
		return &SignatureError{Reason: "missing"}
	}
	hexSig, ok := strings.CutPrefix(sig, signaturePrefix)
	if !ok {
		return &SignatureError{Reason: "wrong prefix"}
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || len(got) != sha256.Size {
		return &SignatureError{Reason: "malformed"}
	}
	mac := hmac.New(sha256.New, w.Secret)
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return &SignatureError{Reason: "mismatch"}
	}
	return nil
}

// Identify returns the X-GitHub-Delivery and X-GitHub-Event headers.
func (w *Webhook) Identify(h http.Header, _ []byte) (delivery, eventType string) {
	return h.Get(HeaderDelivery), h.Get(HeaderEvent)
}

// Handles reports whether eventType is one mlbot routes: push,
// pull_request, issue_comment, and check_run and check_suite (of which
// Precheck lets through only the buttons people press).
func (w *Webhook) Handles(eventType string) bool {
	switch eventType {
	case "push", "pull_request", "issue_comment", "check_run", "check_suite":
		return true
	}
	return false
}

// Parse normalises a delivery body of the given X-GitHub-Event type. Event
// types mlbot does not route come back as bot.KindOther ("ping" as
// bot.KindPing) with whatever repository and sender they carry. Delivery
// is left empty: it lives in a header, which the caller has.
//
// For issue_comment events PR is always set (Number and Author come from
// the issue), because GitHub treats pull requests as issues; whether the
// comment is on a pull request at all is Comment.OnPullRequest.
func (w *Webhook) Parse(eventType string, body []byte) (*bot.Event, error) {
	ev := &bot.Event{Forge: ForgeName, Type: eventType}
	var err error
	switch eventType {
	case "push":
		err = parsePush(ev, body)
	case "pull_request":
		err = parsePullRequest(ev, body)
	case "issue_comment":
		err = parseIssueComment(ev, body)
	case "check_run":
		err = parseCheckRun(ev, body)
	case "check_suite":
		err = parseCheckSuite(ev, body)
	default:
		ev.Kind = bot.KindOther
		if eventType == "ping" {
			ev.Kind = bot.KindPing
		}
		err = parseOther(ev, body)
	}
	if err != nil {
		return nil, fmt.Errorf("github webhook: parse %q event: %w", eventType, err)
	}
	return ev, nil
}

// The payload structs below decode only the fields mlbot reads: full
// payloads are 10–30 kB, and decoding them into go-github's event types
// costs several times more on the ingress path.

type user struct {
	Login string `json:"login"`
}

type repository struct {
	ID            int64  `json:"id"`
	FullName      string `json:"full_name"`
	CloneURL      string `json:"clone_url"`
	HTMLURL       string `json:"html_url"`
	DefaultBranch string `json:"default_branch"`
	// MasterBranch is what push payloads of older GitHub versions carry
	// instead of default_branch.
	MasterBranch string `json:"master_branch"`
}

func (r *repository) repo() bot.Repo {
	if r == nil {
		return bot.Repo{Forge: ForgeName}
	}
	def := r.DefaultBranch
	if def == "" {
		def = r.MasterBranch
	}
	return bot.Repo{
		Forge:         ForgeName,
		ID:            r.ID,
		FullName:      r.FullName,
		CloneURL:      r.CloneURL,
		DefaultBranch: def,
		WebURL:        r.HTMLURL,
		Host:          hostOf(r.HTMLURL),
	}
}

func hostOf(rawURL string) string {
	if rawURL == "" {
		return ""
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

type envelope struct {
	Action     string      `json:"action"`
	Repository *repository `json:"repository"`
	Sender     *user       `json:"sender"`
}

func (e *envelope) fill(ev *bot.Event) {
	ev.Repo = e.Repository.repo()
	if e.Sender != nil {
		ev.Sender = e.Sender.Login
	}
}

type pushPayload struct {
	envelope
	Ref     string `json:"ref"`
	Before  string `json:"before"`
	After   string `json:"after"`
	Deleted bool   `json:"deleted"`
}

func parsePush(ev *bot.Event, body []byte) error {
	var p pushPayload
	if err := decode(body, &p); err != nil {
		return err
	}
	p.fill(ev)
	ev.Kind = bot.KindPush
	ev.Ref, ev.Before, ev.SHA = p.Ref, p.Before, p.After
	ev.Deleted = p.Deleted || p.After == zeroSHA
	if b, ok := strings.CutPrefix(p.Ref, "refs/heads/"); ok {
		ev.Branch = b
	} else if strings.HasPrefix(p.Ref, "refs/tags/") {
		ev.Tag = true
	}
	return nil
}

type gitRef struct {
	Ref  string      `json:"ref"`
	SHA  string      `json:"sha"`
	Repo *repository `json:"repo"`
}

type pullRequest struct {
	Number            int    `json:"number"`
	Title             string `json:"title"`
	HTMLURL           string `json:"html_url"`
	Draft             bool   `json:"draft"`
	State             string `json:"state"`
	Merged            bool   `json:"merged"`
	MergeCommitSHA    string `json:"merge_commit_sha"`
	AuthorAssociation string `json:"author_association"`
	User              *user  `json:"user"`
	Head              gitRef `json:"head"`
	Base              gitRef `json:"base"`
	// UpdatedAt moves with every push to the head (and other changes).
	UpdatedAt string `json:"updated_at"`
}

type pullRequestPayload struct {
	envelope
	PullRequest *pullRequest `json:"pull_request"`
}

func parsePullRequest(ev *bot.Event, body []byte) error {
	var p pullRequestPayload
	if err := decode(body, &p); err != nil {
		return err
	}
	if p.PullRequest == nil {
		return fmt.Errorf("no pull_request object")
	}
	p.fill(ev)
	pr := p.PullRequest
	ev.Kind = bot.KindPullRequest
	ev.Action = pullRequestAction(p.Action, pr.Merged)
	out := &bot.PullRequest{
		Number:            pr.Number,
		Title:             pr.Title,
		URL:               pr.HTMLURL,
		Draft:             pr.Draft,
		State:             pr.State,
		HeadSHA:           pr.Head.SHA,
		HeadRef:           pr.Head.Ref,
		BaseRef:           pr.Base.Ref,
		BaseSHA:           pr.Base.SHA,
		AuthorAssociation: pr.AuthorAssociation,
		Merged:            pr.Merged,
		MergeSHA:          pr.MergeCommitSHA,
		Updated:           parseTime(pr.UpdatedAt),
	}
	if pr.User != nil {
		out.Author = pr.User.Login
	}
	// A deleted fork leaves head.repo null. Treating it as a fork keeps
	// an unknowable head out of trusted runs.
	out.HeadRepo = pr.Head.Repo.repo()
	out.Fork = pr.Head.Repo == nil || pr.Base.Repo == nil ||
		!strings.EqualFold(pr.Head.Repo.FullName, pr.Base.Repo.FullName)
	ev.PR = out
	return nil
}

func pullRequestAction(action string, merged bool) bot.Action {
	switch action {
	case "opened":
		return bot.ActionOpened
	case "synchronize":
		return bot.ActionUpdated
	case "reopened":
		return bot.ActionReopened
	case "ready_for_review":
		return bot.ActionReady
	case "closed":
		if merged {
			return bot.ActionMerged
		}
		return bot.ActionClosed
	case "edited":
		return bot.ActionEdited
	}
	return bot.ActionOther
}

type issueCommentPayload struct {
	envelope
	Issue *struct {
		Number  int    `json:"number"`
		Title   string `json:"title"`
		HTMLURL string `json:"html_url"`
		State   string `json:"state"`
		User    *user  `json:"user"`
		// PullRequest is present (non-null) only on pull requests' issues.
		PullRequest json.RawMessage `json:"pull_request"`
	} `json:"issue"`
	Comment *struct {
		ID        int64  `json:"id"`
		Body      string `json:"body"`
		User      *user  `json:"user"`
		CreatedAt string `json:"created_at"`
	} `json:"comment"`
}

func parseIssueComment(ev *bot.Event, body []byte) error {
	var p issueCommentPayload
	if err := decode(body, &p); err != nil {
		return err
	}
	if p.Issue == nil || p.Comment == nil {
		return fmt.Errorf("no issue or comment object")
	}
	p.fill(ev)
	ev.Kind = bot.KindComment
	switch p.Action {
	case "created":
		ev.Action = bot.ActionCreated
	case "edited":
		ev.Action = bot.ActionEdited
	case "deleted":
		ev.Action = bot.ActionDeleted
	default:
		ev.Action = bot.ActionOther
	}
	onPR := len(p.Issue.PullRequest) > 0 && !bytes.Equal(p.Issue.PullRequest, []byte("null"))
	c := &bot.Comment{ID: p.Comment.ID, Body: p.Comment.Body, OnPullRequest: onPR, Created: parseTime(p.Comment.CreatedAt)}
	if p.Comment.User != nil {
		c.Author = p.Comment.User.Login
	}
	pr := &bot.PullRequest{
		Number: p.Issue.Number,
		Title:  p.Issue.Title,
		URL:    p.Issue.HTMLURL,
		State:  p.Issue.State,
	}
	if p.Issue.User != nil {
		pr.Author = p.Issue.User.Login
	}
	ev.Comment, ev.PR = c, pr
	return nil
}

func parseOther(ev *bot.Event, body []byte) error {
	var p envelope
	if err := decode(body, &p); err != nil {
		return err
	}
	p.fill(ev)
	if ev.Repo.FullName == "" {
		// Installation events and the like name no repository; an empty
		// Repo is clearer than one that only says "github".
		ev.Repo = bot.Repo{}
	}
	return nil
}

// parseTime reads one of GitHub's ISO 8601 timestamps
// ("2019-05-15T15:20:33Z"); zero when it is missing or not one.
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

func decode(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("malformed JSON: %w", err)
	}
	return nil
}
