package web

import (
	"context"

	"github.com/mlbot/mlbot/jobs/registry"
	"github.com/mlbot/mlbot/jobs/store"
)

// RunReader reads runs; store.Store satisfies it.
type RunReader interface {
	// GetRun returns the run with id, or an error wrapping store.ErrNoRun
	// when there is none.
	GetRun(ctx context.Context, id string) (*store.Run, error)
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
	// Get returns version number of repo.
	Get(ctx context.Context, repo string, number int) (*registry.Version, error)
	// List returns the versions of repo, newest first.
	List(ctx context.Context, repo string) ([]registry.Version, error)
	// Environments lists the environments repo was deployed to.
	Environments(ctx context.Context, repo string) ([]string, error)
	// Current returns the deploy that runs in env now, or nil.
	Current(ctx context.Context, repo, env string) (*registry.Deploy, error)
}

// Actions are what a page may ask mlbot to do rather than read. The pages
// of today only read; the UI of issue 9 offers these, and the job client
// is what satisfies it.
type Actions interface {
	// Cancel asks the run with id to stop.
	Cancel(ctx context.Context, runID string) error
	// Retrain asks for the run with id to run again on the same commit.
	Retrain(ctx context.Context, runID string) error
}
