package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/mlbot/mlbot/bot/forgesim"
	"github.com/mlbot/mlbot/bot/github"
	"github.com/mlbot/mlbot/bot/gitlab"
	"github.com/mlbot/mlbot/configs"
)

// fakeHost is a code host in a box: an API simulator serving git over HTTP,
// one repository with a working copy, and the deliveries a host would send.
// `mlbot demo` and the end-to-end tests both drive mlbot through it.
type fakeHost struct {
	host   simHost
	srv    *httptest.Server
	root   string // bare repositories, served at /<repo>.git
	work   string // the working copy commits are made in
	repo   string // "acme/digits"
	token  string
	secret string
}

// simHost is what differs between GitHub and GitLab in a sandbox.
type simHost interface {
	name() string
	handler() http.Handler
	faults() *forgesim.Faults
	recorder() *forgesim.Recorder
	configure(cfg *configs.Server, apiURL, token, secret string)
	webURL(repo string) string
	pushDelivery(url string, d pushEvent) *http.Request
	prDelivery(url string, d prEvent) *http.Request
	statuses(repo, sha string) []hostStatus
	comments(repo string, number int) []hostComment
	grant(repo, user, permission string)
	comment(url string, d commentEvent) *http.Request
	addComment(repo string, number int, author, body string) int64
	deployments(repo string) []hostDeployment
	commitComments(repo, sha string) []string
	addOAuthApp(clientID, secret, callback string)
	setLogin(cfg *configs.Server, clientID, secret string)
}

// hostDeployment is a deployment record on the host; States are the states
// it went through, in GitHub's words (GitLab's "failed" reads "failure",
// "running" reads "in_progress").
type hostDeployment struct {
	Environment, SHA string
	// Description is what the record says (GitHub; GitLab deployments
	// have none).
	Description string
	States      []string
}

// commentEvent is a new comment on pull request Number.
type commentEvent struct {
	Repo, CloneURL   string
	Number           int
	ID               int64
	Body, Author     string
	Association      string
	HeadRef, HeadSHA string
	Action           string // "created" (default), "edited", "deleted"
	OnIssue          bool
	Secret, Token    string
	// Created is when the host says the comment was written (default now).
	Created time.Time
}

// pushEvent is a push to the default branch (or a deletion).
type pushEvent struct {
	Repo, CloneURL, Before, After, Branch, Secret, Token string
}

// prEvent is a pull/merge request event. Action is host-neutral: opened,
// updated (new commits), reopened, closed, merged.
type prEvent struct {
	Action                    string
	Repo, CloneURL            string
	Number                    int
	HeadRef, HeadSHA, BaseSHA string
	OldRev                    string
	Fork, Draft               bool
	Author, Association       string
	MergeSHA                  string
	Secret, Token             string
	// Updated is the pull request's updated_at, which the host moves with
	// each push (default now).
	Updated time.Time
}

// hostStatus and hostComment are what a reviewer sees on the host, in
// mlbot's vocabulary (GitLab's "failed" reads "failure").
type hostStatus struct{ Context, State, Description, TargetURL string }
type hostComment struct {
	ID        int64
	Author    string
	Body      string
	Edits     int
	Reactions []string
}

// newFakeHost starts a simulator of forge ("github" or "gitlab") with repo
// created empty, served over HTTP on loopback.
func newFakeHost(forge, dir, repo string) (*fakeHost, error) {
	var h simHost
	switch forge {
	case "github":
		h = &githubHost{sim: github.NewSimulator()}
	case "gitlab":
		h = &gitlabHost{sim: gitlab.NewSimulator()}
	default:
		return nil, fmt.Errorf("unknown forge %q (github or gitlab)", forge)
	}
	sb := &fakeHost{host: h, root: filepath.Join(dir, "host"), work: filepath.Join(dir, "work"), repo: repo,
		token: "fakehost-token-" + randomHex(8), secret: "fakehost-secret-" + randomHex(8)}
	bare := filepath.Join(sb.root, repo+".git")
	if err := os.MkdirAll(bare, 0o755); err != nil {
		return nil, err
	}
	if err := gitCmd(bare, "init", "--bare", "--quiet", "--initial-branch=main"); err != nil {
		return nil, err
	}
	if err := gitCmd(dir, "init", "--quiet", "--initial-branch=main", sb.work); err != nil {
		return nil, err
	}
	if err := gitCmd(sb.work, "remote", "add", "origin", bare); err != nil {
		return nil, err
	}
	switch h := h.(type) {
	case *githubHost:
		h.sim.AddToken(sb.token)
		h.sim.ServeGit(sb.root)
	case *gitlabHost:
		h.sim.AddToken(sb.token)
		h.sim.AddProject(4242, repo)
		h.sim.ServeGit(sb.root)
	}
	sb.srv = httptest.NewServer(h.handler())
	return sb, nil
}

// Close stops the simulator.
func (sb *fakeHost) Close() { sb.srv.Close() }

// cloneURL is the repository's HTTPS clone URL as payloads carry it.
func (sb *fakeHost) cloneURL() string { return sb.srv.URL + "/" + sb.repo + ".git" }

// configure points an mlbot configuration at the sandbox.
func (sb *fakeHost) configure(cfg *configs.Server) {
	sb.host.configure(cfg, sb.srv.URL, sb.token, sb.secret)
	host := strings.TrimPrefix(strings.TrimPrefix(sb.host.webURL(sb.repo), "https://"), "http://")
	owner, _, _ := strings.Cut(sb.repo, "/")
	cfg.RepoAllowlist = []string{strings.SplitN(host, "/", 2)[0] + "/" + owner + "/*"}
}

// The OAuth application people log in to mlbot's pages with through the
// sandbox's host.
const (
	fakeOAuthClientID = "mlbot-pages"
	fakeOAuthSecret   = "fakehost-oauth-secret"
)

// configureLogin makes mlbot's pages need a login through the sandbox's
// host (MLBOT_UI_AUTH=oauth with the host's OAuth client).
func (sb *fakeHost) configureLogin(cfg *configs.Server) {
	sb.host.setLogin(cfg, fakeOAuthClientID, fakeOAuthSecret)
	cfg.UIAuth = configs.UIAuthOAuth
}

// registerLogin registers mlbot, served at publicURL, as an OAuth
// application of the sandbox's host.
func (sb *fakeHost) registerLogin(publicURL string) {
	sb.host.addOAuthApp(fakeOAuthClientID, fakeOAuthSecret, publicURL+"/login/"+sb.host.name()+"/callback")
}

// writeFiles copies fsys (rooted at sub) into the working copy.
func (sb *fakeHost) writeFiles(fsys fs.FS, sub string) error {
	return fs.WalkDir(fsys, sub, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, sub), "/")
		dst := filepath.Join(sb.work, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
}

// edit replaces old with new in a working-copy file.
func (sb *fakeHost) edit(file, old, new string) error {
	p := filepath.Join(sb.work, file)
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if !bytes.Contains(b, []byte(old)) {
		return fmt.Errorf("%s does not contain %q", file, old)
	}
	return os.WriteFile(p, bytes.Replace(b, []byte(old), []byte(new), 1), 0o644)
}

// commit commits every change in the working copy and returns the SHA.
func (sb *fakeHost) commit(msg string) (string, error) {
	if err := gitCmd(sb.work, "add", "-A"); err != nil {
		return "", err
	}
	if err := gitCmd(sb.work, "-c", "user.name=Demo Contributor", "-c", "user.email=demo@example.com", "commit", "--quiet", "--allow-empty", "-m", msg); err != nil {
		return "", err
	}
	return gitOut(sb.work, "rev-parse", "HEAD")
}

// checkout switches the working copy to branch, creating it from the
// current commit when create is set.
func (sb *fakeHost) checkout(branch string, create bool) error {
	if create {
		return gitCmd(sb.work, "checkout", "--quiet", "-b", branch)
	}
	return gitCmd(sb.work, "checkout", "--quiet", branch)
}

// pushBranch pushes branch to the host's repository.
func (sb *fakeHost) pushBranch(branch string) error {
	return gitCmd(sb.work, "push", "--quiet", "--force", "origin", branch)
}

// push returns the signed delivery of a push of after to the default branch.
func (sb *fakeHost) push(webhookURL, before, after string) *http.Request {
	return sb.host.pushDelivery(webhookURL, pushEvent{Repo: sb.repo, CloneURL: sb.cloneURL(), Before: before, After: after,
		Branch: "main", Secret: sb.secret, Token: sb.secret})
}

// pr returns the signed delivery of a pull request event.
func (sb *fakeHost) pr(webhookURL string, e prEvent) *http.Request {
	e.Repo, e.CloneURL, e.Secret, e.Token = sb.repo, sb.cloneURL(), sb.secret, sb.secret
	if e.Number == 0 {
		e.Number = 1
	}
	return sb.host.prDelivery(webhookURL, e)
}

// grant gives user a permission ("read", "write", "maintain", "admin") on
// the repository.
func (sb *fakeHost) grant(user, permission string) { sb.host.grant(sb.repo, user, permission) }

// comment returns the signed delivery of a new comment on a pull request.
func (sb *fakeHost) comment(webhookURL string, e commentEvent) *http.Request {
	e.Repo, e.CloneURL, e.Secret, e.Token = sb.repo, sb.cloneURL(), sb.secret, sb.secret
	if e.Number == 0 {
		e.Number = 1
	}
	if e.ID == 0 {
		// The comment exists on the host before its webhook is sent.
		e.ID = sb.host.addComment(sb.repo, e.Number, e.Author, e.Body)
	}
	return sb.host.comment(webhookURL, e)
}

// statuses are the commit statuses the host holds for sha, oldest first.
func (sb *fakeHost) statuses(sha string) []hostStatus { return sb.host.statuses(sb.repo, sha) }

// comments are the pull request's comments as the host holds them now.
func (sb *fakeHost) comments(number int) []hostComment { return sb.host.comments(sb.repo, number) }

func gitCmd(dir string, args ...string) error {
	_, err := gitOut(dir, args...)
	return err
}

func gitOut(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// githubHost adapts the GitHub simulator. With app set, mlbot talks to it
// as a GitHub App, which shows check runs instead of commit statuses.
type githubHost struct {
	sim *github.Simulator
	app bool
}

func (h *githubHost) name() string                 { return "github" }
func (h *githubHost) handler() http.Handler        { return h.sim }
func (h *githubHost) faults() *forgesim.Faults     { return h.sim.Faults }
func (h *githubHost) recorder() *forgesim.Recorder { return h.sim.Rec }
func (h *githubHost) webURL(repo string) string    { return "https://github.com/" + repo }
func (h *githubHost) configure(cfg *configs.Server, apiURL, token, secret string) {
	cfg.GitHubAPIURL, cfg.GitHubToken, cfg.GitHubWebhookSecret = apiURL+"/", token, secret
}

func (h *githubHost) pushDelivery(url string, d pushEvent) *http.Request {
	body := github.PushPayload(github.PushOptions{Repo: d.Repo, CloneURL: d.CloneURL, Ref: "refs/heads/" + d.Branch, Before: d.Before, After: d.After})
	return github.NewDeliveryRequest(url, "push", body, []byte(d.Secret))
}

func (h *githubHost) prDelivery(url string, d prEvent) *http.Request {
	action := map[string]string{"opened": "opened", "updated": "synchronize", "reopened": "reopened", "closed": "closed", "merged": "closed", "ready": "ready_for_review"}[d.Action]
	o := github.PullRequestOptions{Action: action, Number: d.Number, Repo: d.Repo, CloneURL: d.CloneURL,
		HeadRef: d.HeadRef, HeadSHA: d.HeadSHA, BaseSHA: d.BaseSHA, Draft: d.Draft, Merged: d.Action == "merged", MergeSHA: d.MergeSHA,
		Author: d.Author, AuthorAssociation: d.Association, UpdatedAt: d.Updated}
	if d.Fork {
		o.HeadRepo, o.HeadCloneURL = "fork-owner/"+strings.SplitN(d.Repo, "/", 2)[1], d.CloneURL
	}
	return github.NewDeliveryRequest(url, "pull_request", github.PullRequestPayload(o), []byte(d.Secret))
}

func (h *githubHost) statuses(repo, sha string) []hostStatus {
	if h.app {
		return h.checkStatuses(repo, sha)
	}
	var out []hostStatus
	for _, s := range h.sim.Statuses(repo, sha) {
		out = append(out, hostStatus{Context: s.Context, State: s.State, Description: s.Description, TargetURL: s.TargetURL})
	}
	return out
}

// checkStatuses reads the check runs on sha as the statuses a reviewer
// would take them for: every state each was put in, in the order set,
// with its title as description. A neutral conclusion reads "success",
// as GitHub counts it passed; action_required reads "pending", since it
// waits for a person.
func (h *githubHost) checkStatuses(repo, sha string) []hostStatus {
	type state struct {
		hostStatus
		seq int64
	}
	var all []state
	for _, cr := range h.sim.CheckRuns(repo, sha) {
		for _, st := range cr.History {
			s := "pending"
			switch {
			case st.Status == github.CheckInProgress:
				s = "running"
			case st.Status != github.CheckCompleted, st.Conclusion == "action_required":
			case st.Conclusion == "success", st.Conclusion == "neutral":
				s = "success"
			case st.Conclusion == "cancelled":
				s = "canceled"
			default:
				s = "failure"
			}
			all = append(all, state{hostStatus{Context: cr.Name, State: s, Description: st.Title, TargetURL: cr.DetailsURL}, st.Seq})
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].seq < all[j].seq })
	out := make([]hostStatus, len(all))
	for i, st := range all {
		out[i] = st.hostStatus
	}
	return out
}

func (h *githubHost) comments(repo string, number int) []hostComment {
	var out []hostComment
	for _, c := range h.sim.Comments(repo, number) {
		out = append(out, hostComment{ID: c.ID, Author: c.User, Body: c.Body, Edits: c.Edits, Reactions: c.Reactions})
	}
	return out
}

func (h *githubHost) addOAuthApp(clientID, secret, callback string) {
	h.sim.AddOAuthApp(clientID, secret, callback)
}

func (h *githubHost) setLogin(cfg *configs.Server, clientID, secret string) {
	cfg.GitHubOAuthClientID, cfg.GitHubOAuthClientSecret = clientID, secret
}

func (h *githubHost) grant(repo, user, permission string) {
	h.sim.SetPermission(repo, user, permission)
}

func (h *githubHost) addComment(repo string, number int, author, body string) int64 {
	return h.sim.AddComment(repo, number, author, body).ID
}

func (h *githubHost) deployments(repo string) []hostDeployment {
	var out []hostDeployment
	for _, d := range h.sim.Deployments(repo) {
		hd := hostDeployment{Environment: d.Environment, SHA: d.SHA, Description: d.Description}
		for _, st := range d.Statuses {
			hd.States = append(hd.States, st.State)
		}
		out = append(out, hd)
	}
	return out
}

func (h *githubHost) commitComments(repo, sha string) []string {
	var out []string
	for _, c := range h.sim.CommitComments(repo, sha) {
		out = append(out, c.Body)
	}
	return out
}

func (h *githubHost) comment(url string, d commentEvent) *http.Request {
	action := d.Action
	if action == "" {
		action = "created"
	}
	body := github.IssueCommentPayload(github.IssueCommentOptions{Action: action, Number: d.Number, Repo: d.Repo, CloneURL: d.CloneURL,
		OnPullRequest: !d.OnIssue, CommentID: d.ID, Body: d.Body, Author: d.Author, AuthorAssociation: d.Association, CreatedAt: d.Created})
	return github.NewDeliveryRequest(url, "issue_comment", body, []byte(d.Secret))
}

// gitlabHost adapts the GitLab simulator.
type gitlabHost struct{ sim *gitlab.Simulator }

const fakeProjectID = 4242

func (h *gitlabHost) name() string                 { return "gitlab" }
func (h *gitlabHost) handler() http.Handler        { return h.sim }
func (h *gitlabHost) faults() *forgesim.Faults     { return h.sim.Faults }
func (h *gitlabHost) recorder() *forgesim.Recorder { return h.sim.Rec }
func (h *gitlabHost) webURL(repo string) string    { return "https://gitlab.example.com/" + repo }
func (h *gitlabHost) configure(cfg *configs.Server, apiURL, token, secret string) {
	cfg.GitLabURL, cfg.GitLabToken, cfg.GitLabWebhookSecret = apiURL, token, secret
}

func (h *gitlabHost) pushDelivery(url string, d pushEvent) *http.Request {
	body := gitlab.PushPayload(gitlab.PushOptions{ProjectID: fakeProjectID, Path: d.Repo, CloneURL: d.CloneURL,
		WebURL: h.webURL(d.Repo), DefaultBranch: "main", Ref: "refs/heads/" + d.Branch, Before: d.Before, After: d.After})
	return gitlab.NewDeliveryRequest(url, "Push Hook", body, d.Token)
}

func (h *gitlabHost) prDelivery(url string, d prEvent) *http.Request {
	o := gitlab.MergeRequestOptions{IID: d.Number, ProjectID: fakeProjectID, Path: d.Repo, CloneURL: d.CloneURL,
		WebURL: h.webURL(d.Repo), DefaultBranch: "main", SourceBranch: d.HeadRef, TargetBranch: "main",
		LastCommit: d.HeadSHA, Author: d.Author, Draft: d.Draft, MergeSHA: d.MergeSHA, UpdatedAt: d.Updated}
	if d.Author != "" {
		o.AuthorID = h.sim.UserID(d.Author)
	}
	switch d.Action {
	case "opened":
		o.Action = "open"
	case "updated":
		o.Action, o.OldRev = "update", d.OldRev
		if o.OldRev == "" {
			o.OldRev = strings.Repeat("1", 40)
		}
	case "reopened":
		o.Action = "reopen"
	case "closed":
		o.Action = "close"
	case "merged":
		o.Action = "merge"
	case "ready":
		o.Action, o.ChangesDraft = "update", &[2]bool{true, false}
	}
	if d.Fork {
		o.SourceProjectID, o.SourcePath, o.SourceCloneURL = fakeProjectID+1, "fork-owner/"+strings.SplitN(d.Repo, "/", 2)[1], d.CloneURL
	}
	return gitlab.NewDeliveryRequest(url, "Merge Request Hook", gitlab.MergeRequestPayload(o), d.Token)
}

func (h *gitlabHost) statuses(repo, sha string) []hostStatus {
	var out []hostStatus
	for _, s := range h.sim.Statuses(repo, sha) {
		st := s.Status
		if st == "failed" {
			st = "failure"
		}
		out = append(out, hostStatus{Context: s.Name, State: st, Description: s.Description, TargetURL: s.TargetURL})
	}
	return out
}

func (h *gitlabHost) comments(repo string, number int) []hostComment {
	var out []hostComment
	for _, n := range h.sim.Notes(repo, number) {
		if n.System {
			continue
		}
		out = append(out, hostComment{ID: n.ID, Author: n.Author.Username, Body: n.Body, Edits: n.Edits, Reactions: n.Awards})
	}
	return out
}

// gitlabLevels maps GitHub's permission names onto GitLab access levels.
var gitlabLevels = map[string]int{"none": 0, "read": gitlab.AccessReporter, "triage": gitlab.AccessReporter,
	"write": gitlab.AccessDeveloper, "maintain": gitlab.AccessMaintainer, "admin": gitlab.AccessOwner}

func (h *gitlabHost) addOAuthApp(clientID, secret, callback string) {
	h.sim.AddOAuthApp(clientID, secret, callback)
}

func (h *gitlabHost) setLogin(cfg *configs.Server, clientID, secret string) {
	cfg.GitLabOAuthClientID, cfg.GitLabOAuthClientSecret = clientID, secret
}

func (h *gitlabHost) grant(repo, user, permission string) {
	h.sim.SetMember(repo, user, gitlabLevels[permission])
}

func (h *gitlabHost) addComment(repo string, number int, author, body string) int64 {
	n, err := h.sim.AddNote(repo, number, author, body, false)
	if err != nil {
		panic(err) // the fake host created the project
	}
	return n.ID
}

func (h *gitlabHost) deployments(repo string) []hostDeployment {
	var out []hostDeployment
	for _, d := range h.sim.Deployments(repo) {
		hd := hostDeployment{Environment: d.Environment, SHA: d.SHA}
		for _, st := range d.Statuses {
			hd.States = append(hd.States, githubDeployState(st))
		}
		out = append(out, hd)
	}
	return out
}

func (h *gitlabHost) commitComments(repo, sha string) []string {
	var out []string
	for _, c := range h.sim.CommitComments(repo, sha) {
		out = append(out, c.Note)
	}
	return out
}

func (h *gitlabHost) comment(url string, d commentEvent) *http.Request {
	action := map[string]string{"": "create", "created": "create", "edited": "update"}[d.Action]
	var authorID int64
	if d.Author != "" {
		// GitLab's note hooks name the author by id too (user.id).
		authorID = h.sim.UserID(d.Author)
	}
	body := gitlab.NotePayload(gitlab.NoteOptions{Action: action, NoteID: d.ID, Body: d.Body, Author: d.Author, AuthorID: authorID, OnIssue: d.OnIssue,
		IID: d.Number, ProjectID: fakeProjectID, Path: d.Repo, CloneURL: d.CloneURL, WebURL: h.webURL(d.Repo), DefaultBranch: "main",
		SourceBranch: d.HeadRef, TargetBranch: "main", LastCommit: d.HeadSHA, CreatedAt: d.Created})
	return gitlab.NewDeliveryRequest(url, "Note Hook", body, d.Token)
}

// githubDeployState names a GitLab deployment status as GitHub does.
func githubDeployState(st string) string {
	switch st {
	case "failed":
		return "failure"
	case "running":
		return "in_progress"
	}
	return st
}
