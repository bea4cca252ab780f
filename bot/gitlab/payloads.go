package gitlab

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The builders start from real GitLab payloads (see payloads/README.md) so
// that deliveries carry every field GitLab sends, not only those mlbot
// reads today.
//
//go:embed payloads/*.json
var payloadFS embed.FS

// UserAgent is the User-Agent GitLab sends with webhooks; NewDeliveryRequest
// uses it.
const UserAgent = "GitLab/17.11.0"

// PushOptions describes a Push Hook delivery. Empty fields keep the base
// payload's value, except as noted.
type PushOptions struct {
	ProjectID int64
	// Path is the project's full path ("group/project").
	Path string
	// CloneURL defaults to WebURL + ".git"; WebURL defaults to Path on the
	// base payload's host.
	CloneURL, WebURL string
	DefaultBranch    string
	// Ref defaults to refs/heads/<DefaultBranch>.
	Ref string
	// Before defaults to forty zeros (a new branch). An After of forty
	// zeros makes a branch deletion.
	Before, After string
	// User is the pusher's username.
	User string
}

// MergeRequestOptions describes a Merge Request Hook delivery. Empty
// fields keep the base payload's value, except as noted.
type MergeRequestOptions struct {
	// Action is open (default), reopen, update, close or merge.
	Action string
	// OldRev, on an update, is the previous head: GitLab sets it only when
	// the update pushed commits.
	OldRev string
	// IID defaults to 1.
	IID int
	// ProjectID, Path, CloneURL, WebURL and DefaultBranch describe the
	// target project, as in PushOptions.
	ProjectID                             int64
	Path, CloneURL, WebURL, DefaultBranch string
	// SourceProjectID and SourcePath default to the target's; a different
	// id makes a merge request from a fork.
	SourceProjectID int64
	SourcePath      string
	SourceCloneURL  string
	SourceBranch    string
	// TargetBranch defaults to DefaultBranch.
	TargetBranch string
	// LastCommit is the head SHA; on merge it is also the merge commit
	// unless MergeSHA names a merge commit of its own.
	LastCommit string
	MergeSHA   string
	// Author is the acting user (payload "user"), who on open is the author.
	// AuthorID, when set, is the merge request author's user id (author_id).
	AuthorID int64
	Author   string
	// Draft marks the merge request a draft (and prefixes its title).
	Draft bool
	// ChangesDraft, when set, reports changes.draft as {previous, current}:
	// &[2]bool{true, false} is a draft marked ready.
	ChangesDraft *[2]bool
	// UpdatedAt is the merge request's updated_at, which a push moves;
	// it defaults to now.
	UpdatedAt time.Time
}

// NoteOptions describes a Note Hook delivery: a comment on merge request
// IID, or on issue IID when OnIssue is set. Empty fields keep the base
// payload's value, except as noted.
type NoteOptions struct {
	// Action is create (default) or update.
	Action string
	// Legacy drops event_type and object_attributes.action, as GitLab did
	// before it sent note updates.
	Legacy bool
	// NoteID defaults to a random id.
	NoteID int64
	// CreatedAt is the note's created_at; it defaults to now.
	CreatedAt time.Time
	Body      string
	// Author is the note's author, and AuthorID their user id (user.id);
	// without AuthorID the payload's user has no id.
	Author   string
	AuthorID int64
	OnIssue  bool
	// IID defaults to 1.
	IID int
	// The target project, as in PushOptions.
	ProjectID                             int64
	Path, CloneURL, WebURL, DefaultBranch string
	// The merge request's source, branches and head, as in
	// MergeRequestOptions; ignored for issue notes.
	SourceProjectID int64
	SourcePath      string
	SourceCloneURL  string
	SourceBranch    string
	TargetBranch    string
	LastCommit      string
	Draft           bool
}

// PushPayload builds a Push Hook body.
func PushPayload(o PushOptions) []byte {
	p := loadPayload("push.go-scm.json")
	proj := resolveProject(obj(p, "project"), o.ProjectID, o.Path, o.CloneURL, o.WebURL, o.DefaultBranch)
	proj.apply(obj(p, "project"))
	proj.applyRepository(obj(p, "repository"))
	p["project_id"] = proj.id

	ref := o.Ref
	if ref == "" {
		ref = "refs/heads/" + proj.defaultBranch
	}
	before := or(o.Before, zeroSHA)
	after := or(o.After, str(p["after"]))
	p["ref"], p["before"], p["after"] = ref, before, after
	if o.User != "" {
		p["user_username"], p["user_name"] = o.User, o.User
		p["user_email"] = o.User + "@users.noreply.gitlab.example.com"
	}
	commits := []any{}
	if after == zeroSHA {
		// A deletion has nothing to check out.
		p["checkout_sha"] = nil
	} else {
		p["checkout_sha"] = after
		commits = append(commits, map[string]any{
			"id":        after,
			"message":   "Update model\n",
			"title":     "Update model",
			"timestamp": time.Now().UTC().Format(time.RFC3339),
			"url":       proj.webURL + "/-/commit/" + after,
			"author":    map[string]any{"name": str(p["user_name"]), "email": str(p["user_email"])},
			"added":     []any{},
			"modified":  []any{},
			"removed":   []any{},
		})
	}
	p["commits"], p["total_commits_count"] = commits, len(commits)
	return marshalPayload(p)
}

// MergeRequestPayload builds a Merge Request Hook body.
func MergeRequestPayload(o MergeRequestOptions) []byte {
	p := loadPayload("merge_request.update.new-commit.atlantis.json")
	attrs := obj(p, "object_attributes")
	target := resolveProject(obj(p, "project"), o.ProjectID, o.Path, o.CloneURL, o.WebURL, o.DefaultBranch)
	target.apply(obj(p, "project"))
	target.applyRepository(obj(p, "repository"))
	iid := o.IID
	if iid == 0 {
		iid = 1
	}
	fillMergeRequest(attrs, target, mrFields{
		iid: iid, sourceProjectID: o.SourceProjectID, sourcePath: o.SourcePath, sourceCloneURL: o.SourceCloneURL,
		sourceBranch: o.SourceBranch, targetBranch: o.TargetBranch, lastCommit: o.LastCommit, draft: o.Draft, authorID: o.AuthorID,
	})

	action := or(o.Action, "open")
	attrs["action"] = action
	switch action {
	case "close":
		attrs["state"], attrs["state_id"] = "closed", 2
	case "merge":
		attrs["state"], attrs["state_id"] = "merged", 3
		attrs["merge_commit_sha"] = attrs["last_commit"].(map[string]any)["id"]
		if o.MergeSHA != "" {
			attrs["merge_commit_sha"] = o.MergeSHA
		}
	default:
		attrs["state"], attrs["state_id"] = "opened", 1
	}
	if action != "merge" {
		attrs["merge_commit_sha"] = nil
	}
	if o.OldRev != "" {
		attrs["oldrev"] = o.OldRev
	} else {
		delete(attrs, "oldrev")
	}
	if o.Author != "" {
		p["user"] = map[string]any{
			"id": 1, "name": o.Author, "username": o.Author,
			"avatar_url": "", "email": "[REDACTED]",
		}
	}
	updated := timestamp(o.UpdatedAt)
	attrs["updated_at"] = updated
	changes := map[string]any{"updated_at": map[string]any{"previous": str(attrs["created_at"]), "current": updated}}
	if d := o.ChangesDraft; d != nil {
		changes["draft"] = map[string]any{"previous": d[0], "current": d[1]}
	}
	p["changes"] = changes
	return marshalPayload(p)
}

// NotePayload builds a Note Hook body.
func NotePayload(o NoteOptions) []byte {
	base := "note.merge_request.xanzy.json"
	if o.OnIssue {
		base = "note.issue.xanzy.json"
	}
	p := loadPayload(base)
	proj := resolveProject(obj(p, "project"), o.ProjectID, o.Path, o.CloneURL, o.WebURL, o.DefaultBranch)
	proj.apply(obj(p, "project"))
	proj.applyRepository(obj(p, "repository"))
	p["project_id"] = proj.id

	iid := o.IID
	if iid == 0 {
		iid = 1
	}
	noteID := o.NoteID
	if noteID == 0 {
		var b [4]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
		noteID = int64(binary.BigEndian.Uint32(b[:])) + 1
	}
	attrs := obj(p, "object_attributes")
	attrs["id"] = noteID
	attrs["created_at"] = timestamp(o.CreatedAt)
	attrs["updated_at"] = attrs["created_at"]
	attrs["project_id"] = proj.id
	if o.Body != "" {
		attrs["note"] = o.Body
	}
	if o.Author != "" {
		u := map[string]any{"name": o.Author, "username": o.Author, "avatar_url": "", "email": "[REDACTED]"}
		if o.AuthorID != 0 {
			u["id"] = o.AuthorID
		}
		p["user"] = u
	}
	if o.Legacy {
		delete(p, "event_type")
		delete(attrs, "action")
	} else {
		p["event_type"] = "note"
		attrs["action"] = or(o.Action, "create")
	}
	if o.OnIssue {
		attrs["noteable_type"] = "Issue"
		attrs["url"] = fmt.Sprintf("%s/-/issues/%d#note_%d", proj.webURL, iid, noteID)
		issue := obj(p, "issue")
		issue["iid"], issue["project_id"] = iid, proj.id
		return marshalPayload(p)
	}
	attrs["noteable_type"] = "MergeRequest"
	attrs["url"] = fmt.Sprintf("%s/-/merge_requests/%d#note_%d", proj.webURL, iid, noteID)
	fillMergeRequest(obj(p, "merge_request"), proj, mrFields{
		iid: iid, sourceProjectID: o.SourceProjectID, sourcePath: o.SourcePath, sourceCloneURL: o.SourceCloneURL,
		sourceBranch: o.SourceBranch, targetBranch: o.TargetBranch, lastCommit: o.LastCommit, draft: o.Draft,
	})
	return marshalPayload(p)
}

// NewDeliveryRequest returns a POST of body to url with the headers
// GitLab sends: X-Gitlab-Event, X-Gitlab-Token (when token is not empty),
// a fresh X-Gitlab-Event-UUID and Idempotency-Key, Content-Type and
// User-Agent. It panics if url does not parse, as only tests and the demo
// build deliveries.
func NewDeliveryRequest(url, event string, body []byte, token string) *http.Request {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		panic(fmt.Sprintf("gitlab: NewDeliveryRequest: %v", err))
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", UserAgent)
	h.Set(HeaderEvent, event)
	h.Set(HeaderEventUUID, newUUID())
	h.Set("X-Gitlab-Webhook-UUID", newUUID())
	h.Set(HeaderIdempotencyKey, newUUID())
	h.Set("X-Gitlab-Instance", instanceOf(body))
	if token != "" {
		h.Set(HeaderToken, token)
	}
	return req
}

// instanceOf returns the scheme and host of the project in body, which
// GitLab sends as X-Gitlab-Instance.
func instanceOf(body []byte) string {
	var p struct {
		Project struct {
			WebURL string `json:"web_url"`
		} `json:"project"`
	}
	if json.Unmarshal(body, &p) != nil {
		return ""
	}
	u, err := url.Parse(p.Project.WebURL)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// timestamp writes t as GitLab's hooks do ("2020-12-08 04:15:39 UTC"),
// now when t is zero.
func timestamp(t time.Time) string {
	if t.IsZero() {
		t = time.Now()
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// projectInfo is a project as the builders write it into a payload.
type projectInfo struct {
	id                                    int64
	path, cloneURL, webURL, defaultBranch string
}

// resolveProject fills the options left empty from base, the payload's
// own project object, deriving URLs from the path on base's host.
func resolveProject(base map[string]any, id int64, path, cloneURL, webURL, defaultBranch string) projectInfo {
	p := projectInfo{
		id:            id,
		path:          or(path, str(base["path_with_namespace"])),
		defaultBranch: or(defaultBranch, str(base["default_branch"])),
		webURL:        webURL,
		cloneURL:      cloneURL,
	}
	if p.id == 0 {
		p.id = num(base["id"])
	}
	if p.webURL == "" {
		if path == "" {
			p.webURL = str(base["web_url"])
		} else {
			p.webURL = hostOf(str(base["web_url"])) + "/" + path
		}
	}
	if p.cloneURL == "" {
		p.cloneURL = p.webURL + ".git"
	}
	return p
}

func (p projectInfo) sshURL() string {
	u, err := url.Parse(p.webURL)
	if err != nil {
		return ""
	}
	return "git@" + u.Hostname() + ":" + p.path + ".git"
}

// apply writes p into a payload's project, source or target object.
func (p projectInfo) apply(m map[string]any) {
	name := p.path[strings.LastIndex(p.path, "/")+1:]
	namespace := ""
	if i := strings.LastIndex(p.path, "/"); i > 0 {
		namespace = p.path[:i]
	}
	m["id"] = p.id
	m["name"] = name
	m["namespace"] = namespace
	m["path_with_namespace"] = p.path
	m["web_url"] = p.webURL
	m["homepage"] = p.webURL
	m["git_http_url"] = p.cloneURL
	m["http_url"] = p.cloneURL
	m["git_ssh_url"] = p.sshURL()
	m["ssh_url"] = p.sshURL()
	m["url"] = p.sshURL()
	m["default_branch"] = p.defaultBranch
}

// applyRepository writes p into the legacy "repository" object.
func (p projectInfo) applyRepository(m map[string]any) {
	m["name"] = p.path[strings.LastIndex(p.path, "/")+1:]
	m["url"] = p.sshURL()
	m["homepage"] = p.webURL
	if _, ok := m["git_http_url"]; ok {
		m["git_http_url"] = p.cloneURL
		m["git_ssh_url"] = p.sshURL()
	}
}

type mrFields struct {
	iid                                    int
	authorID                               int64
	sourceProjectID                        int64
	sourcePath, sourceCloneURL             string
	sourceBranch, targetBranch, lastCommit string
	draft                                  bool
}

// fillMergeRequest writes a merge request's identity, branches, source
// and head into m, the object_attributes of a merge request event or the
// merge_request of a note event.
func fillMergeRequest(m map[string]any, target projectInfo, f mrFields) {
	source := target
	if f.sourceProjectID != 0 {
		source.id = f.sourceProjectID
	}
	if f.sourcePath != "" && f.sourcePath != target.path {
		source = resolveProject(map[string]any{"web_url": target.webURL}, source.id, f.sourcePath, f.sourceCloneURL, "", target.defaultBranch)
	} else if f.sourceCloneURL != "" {
		source.cloneURL = f.sourceCloneURL
	}
	target.apply(obj(m, "target"))
	source.apply(obj(m, "source"))
	m["iid"] = f.iid
	m["id"] = target.id*1000 + int64(f.iid)
	m["url"] = fmt.Sprintf("%s/-/merge_requests/%d", target.webURL, f.iid)
	m["target_project_id"] = target.id
	m["source_project_id"] = source.id
	if f.sourceBranch != "" {
		m["source_branch"] = f.sourceBranch
	}
	m["target_branch"] = or(f.targetBranch, target.defaultBranch)
	last := obj(m, "last_commit")
	if f.lastCommit != "" {
		last["id"] = f.lastCommit
	}
	last["url"] = source.webURL + "/-/commit/" + str(last["id"])
	title := strings.TrimSpace(draftTitle.ReplaceAllString(str(m["title"]), ""))
	if f.draft {
		title = "Draft: " + title
	}
	m["title"] = title
	m["draft"] = f.draft
	m["work_in_progress"] = f.draft
	if f.authorID != 0 {
		m["author_id"] = f.authorID
	}
}

func loadPayload(name string) map[string]any {
	b, err := payloadFS.ReadFile("payloads/" + name)
	if err != nil {
		panic(fmt.Sprintf("gitlab: embedded payload %s: %v", name, err))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	// Keep ids and other numbers exactly as GitLab wrote them.
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		panic(fmt.Sprintf("gitlab: embedded payload %s: %v", name, err))
	}
	return m
}

func marshalPayload(m map[string]any) []byte {
	b, err := json.Marshal(m)
	if err != nil {
		// Only values decoded from JSON or set above are in m.
		panic(fmt.Sprintf("gitlab: marshal payload: %v", err))
	}
	return b
}

// obj returns m[key] as an object, creating it when absent or null.
func obj(m map[string]any, key string) map[string]any {
	if o, ok := m[key].(map[string]any); ok {
		return o
	}
	o := map[string]any{}
	m[key] = o
	return o
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func num(v any) int64 {
	switch n := v.(type) {
	case json.Number:
		i, _ := n.Int64()
		return i
	case int64:
		return n
	case int:
		return int64(n)
	case string:
		i, _ := strconv.ParseInt(n, 10, 64)
		return i
	}
	return 0
}

func hostOf(webURL string) string {
	u, err := url.Parse(webURL)
	if err != nil || u.Host == "" {
		return "https://gitlab.example.com"
	}
	return u.Scheme + "://" + u.Host
}

func or(s, fallback string) string {
	if s != "" {
		return s
	}
	return fallback
}
