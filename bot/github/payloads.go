package github

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"embed"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The templates are real deliveries (see payloads/README.md): overwriting
// fields of a real body keeps every field a consumer might read, which a
// hand-written minimal body would not.
//
//go:embed payloads/*.json
var payloadFS embed.FS

const (
	pushTemplate         = "payloads/push.branch.go-scm.json"
	pullRequestTemplate  = "payloads/pull_request.opened.octokit.json"
	issueCommentTemplate = "payloads/issue_comment.created.on-pr.atlantis.json"
)

// Sign returns the X-Hub-Signature-256 value GitHub would send for body
// with secret: "sha256=" and the hex HMAC-SHA256.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return signaturePrefix + hex.EncodeToString(mac.Sum(nil))
}

// PushOptions describes a push delivery. Empty fields get defaults: HTMLURL
// https://github.com/<Repo>, CloneURL HTMLURL+".git", DefaultBranch
// "main", Ref refs/heads/<DefaultBranch>, Before the all-zero SHA (a new
// branch), Sender the repository owner. An all-zero After is a deletion.
type PushOptions struct {
	Repo, CloneURL, HTMLURL, DefaultBranch string
	Ref, Before, After, Sender             string
}

// PushPayload returns the body of a push delivery described by o.
func PushPayload(o PushOptions) []byte {
	r := repoFields{o.Repo, o.CloneURL, o.HTMLURL, o.DefaultBranch}.withDefaults()
	if o.Ref == "" {
		o.Ref = "refs/heads/" + r.defaultBranch
	}
	if o.Before == "" {
		o.Before = zeroSHA
	}
	if o.Sender == "" {
		o.Sender = r.owner()
	}
	m := loadTemplate(pushTemplate)
	r.retarget(m, m["repository"].(map[string]any))
	r.apply(m, "repository")
	deleted := o.After == zeroSHA
	m["ref"], m["before"], m["after"] = o.Ref, o.Before, o.After
	m["created"], m["deleted"], m["forced"] = o.Before == zeroSHA, deleted, false
	m["compare"] = r.htmlURL + "/compare/" + short(o.Before) + "..." + short(o.After)
	setPath(m, o.Sender, "pusher", "name")
	setUser(m, o.Sender, "sender")
	if deleted {
		m["head_commit"], m["commits"] = nil, []any{}
	} else {
		hc, _ := m["head_commit"].(map[string]any)
		hc["id"] = o.After
		hc["url"] = r.htmlURL + "/commit/" + o.After
		hc["timestamp"] = time.Now().UTC().Format(time.RFC3339)
		m["commits"] = []any{hc}
	}
	return mustMarshal(m)
}

// PullRequestOptions describes a pull_request delivery. Action is GitHub's
// ("opened", "synchronize", "closed", …; default "opened"). HeadRepo
// defaults to Repo; a different one makes a pull request from a fork.
// Author also becomes the sender. Empty URLs and branches default as in
// PushOptions; BaseRef defaults to DefaultBranch. UpdatedAt (the pull
// request's updated_at, which a push moves) defaults to now.
type PullRequestOptions struct {
	Action                                 string
	Number                                 int
	Repo, CloneURL, HTMLURL, DefaultBranch string
	HeadRepo, HeadCloneURL, HeadRef        string
	HeadSHA, BaseRef, BaseSHA              string
	Author, AuthorAssociation              string
	Draft, Merged                          bool
	MergeSHA                               string
	UpdatedAt                              time.Time
}

// PullRequestPayload returns the body of a pull_request delivery
// described by o.
func PullRequestPayload(o PullRequestOptions) []byte {
	base := repoFields{o.Repo, o.CloneURL, o.HTMLURL, o.DefaultBranch}.withDefaults()
	head := base
	if o.HeadRepo != "" && !strings.EqualFold(o.HeadRepo, o.Repo) {
		head = repoFields{fullName: o.HeadRepo, cloneURL: o.HeadCloneURL, defaultBranch: base.defaultBranch}.withDefaults()
	}
	if o.Action == "" {
		o.Action = "opened"
	}
	if o.Number == 0 {
		o.Number = 1
	}
	if o.BaseRef == "" {
		o.BaseRef = base.defaultBranch
	}
	if o.Author == "" {
		o.Author = head.owner()
	}
	if o.AuthorAssociation == "" {
		o.AuthorAssociation = "NONE"
	}
	m := loadTemplate(pullRequestTemplate)
	renumber(m, o.Number)
	base.retarget(m, m["repository"].(map[string]any))
	base.apply(m, "repository")
	pr := m["pull_request"].(map[string]any)
	base.apply(pr, "base", "repo")
	head.apply(pr, "head", "repo")
	if head != base {
		setPath(pr, true, "head", "repo", "fork")
	}
	for side, f := range map[string]struct {
		r        repoFields
		ref, sha string
	}{"base": {base, o.BaseRef, o.BaseSHA}, "head": {head, o.HeadRef, o.HeadSHA}} {
		setPath(pr, f.ref, side, "ref")
		setPath(pr, f.sha, side, "sha")
		setPath(pr, f.r.owner()+":"+f.ref, side, "label")
		setUser(pr, f.r.owner(), side, "user")
	}
	m["action"], m["number"] = o.Action, o.Number
	pr["number"] = o.Number
	pr["html_url"] = fmt.Sprintf("%s/pull/%d", base.htmlURL, o.Number)
	pr["draft"], pr["merged"] = o.Draft, o.Merged
	pr["author_association"] = o.AuthorAssociation
	setUser(pr, o.Author, "user")
	setUser(m, o.Author, "sender")
	now := time.Now().UTC().Format(time.RFC3339)
	pr["updated_at"] = timestamp(o.UpdatedAt)
	pr["state"], pr["closed_at"], pr["merged_at"] = "open", nil, nil
	if o.Action == "closed" || o.Merged {
		pr["state"], pr["closed_at"] = "closed", now
	}
	if o.Merged {
		pr["merged_at"] = now
	}
	pr["merge_commit_sha"] = nullable(o.MergeSHA)
	return mustMarshal(m)
}

// IssueCommentOptions describes an issue_comment delivery. Action is
// "created" (default), "edited" or "deleted". OnPullRequest makes the
// issue a pull request, as comments on pull requests are. IssueAuthor
// defaults to Author, CommentID to a random id, CreatedAt to now; URLs and
// branches default as in PushOptions.
type IssueCommentOptions struct {
	Action                                 string
	Number                                 int
	Repo, CloneURL, HTMLURL, DefaultBranch string
	OnPullRequest                          bool
	IssueAuthor                            string
	CommentID                              int64
	Body, Author, AuthorAssociation        string
	CreatedAt                              time.Time
}

// IssueCommentPayload returns the body of an issue_comment delivery
// described by o.
func IssueCommentPayload(o IssueCommentOptions) []byte {
	r := repoFields{o.Repo, o.CloneURL, o.HTMLURL, o.DefaultBranch}.withDefaults()
	if o.Action == "" {
		o.Action = "created"
	}
	if o.Number == 0 {
		o.Number = 1
	}
	if o.Author == "" {
		o.Author = r.owner()
	}
	if o.IssueAuthor == "" {
		o.IssueAuthor = o.Author
	}
	if o.AuthorAssociation == "" {
		o.AuthorAssociation = "NONE"
	}
	if o.CommentID == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		// Below 2^53 so that JavaScript consumers read it exactly, too.
		o.CommentID = int64(binary.BigEndian.Uint64(b[:])>>11) + 1
	}
	m := loadTemplate(issueCommentTemplate)
	renumber(m, o.Number)
	r.retarget(m, m["repository"].(map[string]any))
	r.apply(m, "repository")
	issue := m["issue"].(map[string]any)
	kind := "issues"
	if o.OnPullRequest {
		kind = "pull"
		api := apiRepoURL(r.fullName)
		issue["pull_request"] = map[string]any{
			"url":       fmt.Sprintf("%s/pulls/%d", api, o.Number),
			"html_url":  fmt.Sprintf("%s/pull/%d", r.htmlURL, o.Number),
			"diff_url":  fmt.Sprintf("%s/pull/%d.diff", r.htmlURL, o.Number),
			"patch_url": fmt.Sprintf("%s/pull/%d.patch", r.htmlURL, o.Number),
		}
	} else {
		delete(issue, "pull_request")
	}
	issue["number"] = o.Number
	issue["html_url"] = fmt.Sprintf("%s/%s/%d", r.htmlURL, kind, o.Number)
	setUser(issue, o.IssueAuthor, "user")
	c := m["comment"].(map[string]any)
	id := strconv.FormatInt(o.CommentID, 10)
	c["id"], c["body"], c["author_association"] = o.CommentID, o.Body, o.AuthorAssociation
	c["created_at"] = timestamp(o.CreatedAt)
	c["updated_at"] = c["created_at"]
	c["html_url"] = issue["html_url"].(string) + "#issuecomment-" + id
	c["url"] = apiRepoURL(r.fullName) + "/issues/comments/" + id
	setUser(c, o.Author, "user")
	setUser(m, o.Author, "sender")
	m["action"] = o.Action
	return mustMarshal(m)
}

// NewDeliveryRequest returns a POST of body to url carrying the headers
// GitHub sends with a webhook delivery of event: a random delivery id and,
// when secret is set, both signatures. It panics on an invalid url, as
// httptest.NewRequest does, since it exists for tests and the demo.
func NewDeliveryRequest(url, event string, body, secret []byte) *http.Request {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		panic(fmt.Sprintf("github: NewDeliveryRequest: %v", err))
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "GitHub-Hookshot/"+randomHex(4)[:7])
	h.Set(HeaderEvent, event)
	h.Set(HeaderDelivery, newUUID())
	h.Set("X-GitHub-Hook-ID", "123456789")
	h.Set("X-GitHub-Hook-Installation-Target-Type", "repository")
	h.Set("X-GitHub-Hook-Installation-Target-ID", "987654321")
	if len(secret) > 0 {
		mac := hmac.New(sha1.New, secret)
		mac.Write(body)
		h.Set("X-Hub-Signature", "sha1="+hex.EncodeToString(mac.Sum(nil)))
		h.Set(HeaderSignature256, Sign(secret, body))
	}
	return req
}

// newUUID returns a random (version 4) UUID, the form of GitHub's
// delivery ids.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	x := hex.EncodeToString(b[:])
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:]
}

// repoFields is what the builders put into a repository object.
type repoFields struct {
	fullName, cloneURL, htmlURL, defaultBranch string
}

func (r repoFields) withDefaults() repoFields {
	if r.fullName == "" {
		r.fullName = "acme/model"
	}
	if r.htmlURL == "" {
		r.htmlURL = "https://github.com/" + r.fullName
	}
	r.htmlURL = strings.TrimSuffix(r.htmlURL, "/")
	if r.cloneURL == "" {
		r.cloneURL = r.htmlURL + ".git"
	}
	if r.defaultBranch == "" {
		r.defaultBranch = "main"
	}
	return r
}

func (r repoFields) owner() string {
	owner, _, _ := strings.Cut(r.fullName, "/")
	return owner
}

// apply rewrites the repository object at path in m: the template's own
// name and web URL are replaced in every string it holds, then the named
// fields are set.
func (r repoFields) apply(m map[string]any, path ...string) {
	obj, _ := getPath(m, path...).(map[string]any)
	if obj == nil {
		return
	}
	r.retarget(obj, obj)
	owner, name, _ := strings.Cut(r.fullName, "/")
	obj["id"] = stableID(r.fullName)
	obj["name"], obj["full_name"] = name, r.fullName
	obj["html_url"], obj["clone_url"] = r.htmlURL, r.cloneURL
	obj["url"] = apiRepoURL(r.fullName)
	obj["default_branch"] = r.defaultBranch
	obj["fork"] = false
	if _, ok := obj["master_branch"]; ok {
		obj["master_branch"] = r.defaultBranch
	}
	setUser(obj, owner, "owner")
	if o, ok := obj["owner"].(map[string]any); ok {
		if _, ok := o["name"]; ok {
			o["name"] = owner
		}
	}
}

// retarget replaces the name and web URL of the repository object from in
// every string of v, so that URLs elsewhere in a payload (pull request
// links, issue URLs, compare links) name the new repository.
func (r repoFields) retarget(v any, from map[string]any) {
	oldFull, _ := from["full_name"].(string)
	oldWeb, _ := from["html_url"].(string)
	if oldFull == "" {
		return
	}
	walkStrings(v, func(s string) string {
		if oldWeb != "" {
			s = strings.ReplaceAll(s, oldWeb, r.htmlURL)
		}
		return strings.ReplaceAll(s, oldFull, r.fullName)
	})
}

// setUser makes the user object at path in m the account login: the
// template's login is replaced in its URLs and its id derived from login.
func setUser(m map[string]any, login string, path ...string) {
	u, _ := getPath(m, path...).(map[string]any)
	if u == nil {
		return
	}
	if old, _ := u["login"].(string); old != "" {
		walkStrings(u, func(s string) string { return strings.ReplaceAll(s, "/"+old, "/"+login) })
	}
	u["login"] = login
	if _, ok := u["id"]; ok {
		u["id"] = stableID(login)
	}
}

// stableID derives an id from a name, so that the same account or
// repository always has the same id and different ones differ.
func stableID(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte(strings.ToLower(name)))
	return int64(h.Sum64() >> 34)
}

func apiRepoURL(fullName string) string { return "https://api.github.com/repos/" + fullName }

// numberedURL matches the template's pull request or issue number in its
// URLs.
var numberedURL = regexp.MustCompile(`/(pulls|pull|issues)/\d+(\b|$)`)

// renumber puts number into every pull request and issue URL of m.
func renumber(m map[string]any, number int) {
	walkStrings(m, func(s string) string {
		return numberedURL.ReplaceAllString(s, "/${1}/"+strconv.Itoa(number)+"${2}")
	})
}

func walkStrings(v any, f func(string) string) any {
	switch x := v.(type) {
	case string:
		return f(x)
	case map[string]any:
		for k, e := range x {
			x[k] = walkStrings(e, f)
		}
	case []any:
		for i, e := range x {
			x[i] = walkStrings(e, f)
		}
	}
	return v
}

func getPath(m map[string]any, path ...string) any {
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[p]
	}
	return v
}

// setPath sets m[path...] = v where the parent objects exist.
func setPath(m map[string]any, v any, path ...string) {
	if parent, ok := getPath(m, path[:len(path)-1]...).(map[string]any); ok {
		parent[path[len(path)-1]] = v
	}
}

// timestamp writes t as GitHub does ("2019-05-15T15:20:33Z"), now when t
// is zero.
func timestamp(t time.Time) string {
	if t.IsZero() {
		t = time.Now()
	}
	return t.UTC().Format(time.RFC3339)
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// loadTemplate decodes an embedded template, keeping numbers as written
// (ids beyond 2^53, integer timestamps).
func loadTemplate(name string) map[string]any {
	data, err := payloadFS.ReadFile(name)
	if err != nil {
		panic(fmt.Sprintf("github: embedded template %s: %v", name, err))
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		panic(fmt.Sprintf("github: embedded template %s: %v", name, err))
	}
	return m
}

func mustMarshal(m map[string]any) []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("github: encode payload: %v", err))
	}
	return b
}
