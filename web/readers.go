package web

import (
	"context"

	"github.com/mlbot/mlbot/bot"
	"github.com/mlbot/mlbot/jobs/registry"
	"github.com/mlbot/mlbot/jobs/store"
)

// RunReader reads runs and the lists the pages show of them; the store
// satisfies it.
type RunReader interface {
	// GetRun returns the run with id, or an error wrapping store.ErrNoRun
	// when there is none.
	GetRun(ctx context.Context, id string) (*store.Run, error)
	// RunRepos returns the repository keys (store.RepoKey) with runs, the
	// most recently active first.
	RunRepos(ctx context.Context) ([]string, error)
	// RecentRuns returns the newest n runs of a repository, newest first.
	RecentRuns(ctx context.Context, repo string, n int) ([]*store.Run, error)
	// BaselineRuns returns a repository's recent default-branch runs,
	// oldest first.
	BaselineRuns(ctx context.Context, repo string) ([]*store.Run, error)
	// GetRuns returns the runs of ids in their order, leaving out those
	// whose records expired.
	GetRuns(ctx context.Context, ids []string) ([]*store.Run, error)
}

// DeployReader reads deploy records; registry.Registry satisfies it.
type DeployReader interface {
	// GetDeploy returns the deploy with id, or an error wrapping
	// registry.ErrNotFound when there is none.
	GetDeploy(ctx context.Context, id string) (*registry.Deploy, error)
}

// ModelReader reads model versions and what is deployed where;
// registry.Registry satisfies it.
type ModelReader interface {
	// Resolve turns a repo key or an "owner/name" into a repo key, with
	// registry.ErrNotFound or registry.ErrAmbiguous when it cannot.
	Resolve(ctx context.Context, name string) (string, error)
	// Repos returns the repo keys that have versions or deploys.
	Repos(ctx context.Context) ([]string, error)
	// Get returns version number of repo.
	Get(ctx context.Context, repo string, number int) (*registry.Version, error)
	// List returns the versions of repo, newest first.
	List(ctx context.Context, repo string) ([]registry.Version, error)
	// Environments lists the environments repo was deployed to.
	Environments(ctx context.Context, repo string) ([]string, error)
	// Current returns the deploy that runs in env now, or nil.
	Current(ctx context.Context, repo, env string) (*registry.Deploy, error)
	// Deploys returns the deploy history of repo's env, newest first.
	Deploys(ctx context.Context, repo, env string) ([]registry.Deploy, error)
}

// SessionStore keeps the logins to the pages and the logins under way,
// and remembers briefly what the code hosts said about who may read a
// repository; the store satisfies it.
type SessionStore interface {
	// SaveSession stores a login under its cookie value.
	SaveSession(ctx context.Context, token string, b []byte) error
	// Session returns the login stored under a cookie value.
	Session(ctx context.Context, token string) (b []byte, ok bool, err error)
	// DeleteSession ends a login.
	DeleteSession(ctx context.Context, token string) error
	// SaveLoginState stores a login under way by its OAuth state.
	SaveLoginState(ctx context.Context, state string, b []byte) error
	// TakeLoginState returns and forgets a login under way.
	TakeLoginState(ctx context.Context, state string) (b []byte, ok bool, err error)
	// CachePermission remembers a user's permission on a repository
	// briefly (store.PermissionTTL).
	CachePermission(ctx context.Context, repo bot.Repo, user string, p bot.Permission) error
	// CachedPermission returns a remembered permission; ok is false on a
	// miss.
	CachedPermission(ctx context.Context, repo bot.Repo, user string) (p bot.Permission, ok bool, err error)
}

// PermissionAsker asks a code host what a user may do on a repository,
// with mlbot's own credentials; each forge's client satisfies it.
type PermissionAsker interface {
	// GetPermission returns user's permission on repo (user as
	// bot.OAuthUser.PermissionName names them).
	GetPermission(ctx context.Context, repo bot.Repo, user string) (bot.Permission, error)
}

// Actions are what a page may ask mlbot to do rather than read. The pages
// of today only read; the job client is what will satisfy it.
type Actions interface {
	// Cancel asks the run with id to stop.
	Cancel(ctx context.Context, runID string) error
	// Retrain asks for the run with id to run again on the same commit.
	Retrain(ctx context.Context, runID string) error
}
