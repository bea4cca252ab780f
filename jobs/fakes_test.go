package jobs

// The fakes of the jobs package's tests live here, in one place: a code host
// that records what mlbot tells it, and a runner that runs nothing.

import (
	"context"
	"fmt"
	"sync"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/runners"
)

// fakeStatus is one CreateStatus call as the fake forge received it.
type fakeStatus struct {
	Repo   bot.Repo
	SHA    string
	Status bot.Status
}

// fakeForge is a bot.Forge that records statuses and keeps comments in
// memory. Its name is "github" unless set, so that it pairs with
// github.Webhook in a ForgeSet.
type fakeForge struct {
	name string

	mu       sync.Mutex
	statuses []fakeStatus
	comments map[int][]bot.Comment
	nextID   int64
	// statusErr, when set, is returned by CreateStatus (after recording).
	statusErr error
	// perms are the users' permissions; anyone else has write.
	perms     map[string]bot.Permission
	reactions []string
	// commitComments are the comments on commits, by SHA.
	commitComments map[string][]string
	// checks makes it a host that shows check runs (bot.CheckRunHost).
	checks bool
	// listErrs is how many ListComments calls fail (with a 502) before
	// they succeed again.
	listErrs int
	// lostCreates is how many CreateComment calls create the comment but
	// answer with a 502, as when the host's answer is lost.
	lostCreates int
}

// ShowsCheckRuns reports checks.
func (f *fakeForge) ShowsCheckRuns() bool { return f.checks }

var _ bot.Forge = (*fakeForge)(nil)

func (f *fakeForge) Name() string {
	if f.name == "" {
		return "github"
	}
	return f.name
}

func (f *fakeForge) CreateStatus(_ context.Context, repo bot.Repo, sha string, st bot.Status) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statuses = append(f.statuses, fakeStatus{Repo: repo, SHA: sha, Status: st})
	return f.statusErr
}

func (f *fakeForge) ListComments(_ context.Context, _ bot.Repo, number int) ([]bot.Comment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.listErrs > 0 {
		f.listErrs--
		return nil, &bot.HostError{Forge: f.Name(), Method: "GET", Path: fmt.Sprintf("issues/%d/comments", number), StatusCode: 502, Message: "Bad Gateway"}
	}
	return append([]bot.Comment(nil), f.comments[number]...), nil
}

func (f *fakeForge) CreateComment(_ context.Context, _ bot.Repo, number int, body string) (bot.Comment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.comments == nil {
		f.comments = map[int][]bot.Comment{}
	}
	f.nextID++
	c := bot.Comment{ID: f.nextID, Body: body, Author: "mlbot", OnPullRequest: true}
	f.comments[number] = append(f.comments[number], c)
	if f.lostCreates > 0 {
		f.lostCreates--
		return bot.Comment{}, &bot.HostError{Forge: f.Name(), Method: "POST", Path: fmt.Sprintf("issues/%d/comments", number), StatusCode: 502, Message: "Bad Gateway"}
	}
	return c, nil
}

func (f *fakeForge) CreateCommitComment(_ context.Context, _ bot.Repo, sha, body string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.commitComments == nil {
		f.commitComments = map[string][]string{}
	}
	f.commitComments[sha] = append(f.commitComments[sha], body)
	return nil
}

func (f *fakeForge) UpdateComment(_ context.Context, _ bot.Repo, number int, id int64, body string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, c := range f.comments[number] {
		if c.ID == id {
			f.comments[number][i].Body = body
			return nil
		}
	}
	return &bot.HostError{Forge: f.Name(), Method: "PATCH", Path: fmt.Sprintf("comments/%d", id), StatusCode: 404, Message: "Not Found"}
}

func (f *fakeForge) CloneAuth(context.Context, bot.Repo) (string, error) { return "", nil }

// GetPermission answers from perms, and "write" for anyone not in it.
func (f *fakeForge) GetPermission(_ context.Context, _ bot.Repo, user string) (bot.Permission, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.perms[user]; ok {
		return p, nil
	}
	return bot.PermissionWrite, nil
}

// CreateDeployment records nothing and returns id 1.
func (f *fakeForge) CreateDeployment(_ context.Context, _ bot.Repo, d bot.Deployment) (bot.Deployment, error) {
	d.ID = 1
	return d, nil
}

// UpdateDeployment accepts any state change.
func (f *fakeForge) UpdateDeployment(context.Context, bot.Repo, int64, bot.DeploymentStatus) error {
	return nil
}

// CreateReaction records the reaction.
func (f *fakeForge) CreateReaction(_ context.Context, _ bot.Repo, _ int, id int64, emoji string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reactions = append(f.reactions, fmt.Sprintf("%d:%s", id, emoji))
	return nil
}

// recordedStatuses returns a copy of every status set so far.
func (f *fakeForge) recordedStatuses() []fakeStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeStatus(nil), f.statuses...)
}

// fakeRunner is a runners.Runner that runs nothing: it records each spec
// and answers with result.
type fakeRunner struct {
	mu     sync.Mutex
	specs  []runners.Spec
	result runners.Result
	err    error
}

var _ runners.Runner = (*fakeRunner)(nil)

func (r *fakeRunner) Run(_ context.Context, spec runners.Spec) (runners.Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.specs = append(r.specs, spec)
	return r.result, r.err
}
