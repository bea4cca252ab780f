package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/mlbot/mlbot/jobs/deploystate"
)

// Deploy kinds: why a deploy was asked for, which decides the checks it
// gets before it runs.
const (
	// KindMerge deploys a default-branch commit to an on_merge environment.
	KindMerge = "merge"
	// KindRequest is a maintainer's /deploy of a pull request's version.
	KindRequest = "deploy"
	// KindRollback restores a version the environment ran before
	// (/rollback, or an automatic rollback after a failed verification).
	KindRollback = "rollback"
)

// Deploy is one request to ship a model version to an environment, and
// what became of it.
type Deploy struct {
	ID          string    `json:"id"` // unique (see NewDeployID)
	Repo        string    `json:"repo"`
	Env         string    `json:"env"`
	Version     int       `json:"version"`
	SHA         string    `json:"sha"`
	State       string    `json:"state"`  // a state of package deploystate
	Reason      string    `json:"reason"` // "merge of #3", "/deploy by @maria", "/rollback by @maria", "automatic rollback: <why>"
	RequestedBy string    `json:"requested_by,omitempty"`
	PR          int       `json:"pr,omitempty"`
	Requested   time.Time `json:"requested"`
	Started     time.Time `json:"started,omitzero"`
	Finished    time.Time `json:"finished,omitzero"`
	HostID      int64     `json:"host_id,omitempty"` // the host's deployment id
	Detail      string    `json:"detail,omitempty"`
	LogTail     string    `json:"log_tail,omitempty"`
	// Kind is KindMerge, KindRequest or KindRollback ("" for deploys
	// recorded before kinds existed, which are not checked).
	Kind string `json:"kind,omitempty"`
	// Forced is set when a maintainer skipped the check against the
	// version the environment runs (/deploy --force).
	Forced bool `json:"forced,omitempty"`
	// Against is the version the environment ran when the deploy was
	// checked (0: nothing ran there, or the check was skipped).
	Against int `json:"against,omitempty"`
	// Verification is what the environment's verify: block observed
	// after the deploy (nil: it has none, or it did not run).
	Verification *Verification `json:"verification,omitempty"`
}

// Gated reports whether the deploy must be checked against the version
// the environment runs before it runs: merges and /deploy are, unless
// forced; rollbacks restore what ran before and are not.
func (d Deploy) Gated() bool {
	return (d.Kind == KindMerge || d.Kind == KindRequest) && !d.Forced
}

// Done reports whether the deploy reached a final state.
func (d Deploy) Done() bool {
	return deploystate.Done(d.State)
}

// deployHistory is how many deploys are kept per repository and
// environment; older ones are forgotten so the history stays bounded.
const deployHistory = 200

// NewDeployID returns a random deploy id of 128 bits (32 hex digits), so
// that a deploy's page cannot be found by guessing.
func NewDeployID() string { return randomHex(16) }

// SaveDeploy creates or updates deploy d (by its ID) and keeps it in the
// history of its repository and environment, which is ordered by Requested
// (a zero Requested becomes that of the stored deploy, or now) and capped at
// the newest 200.
func (r *Registry) SaveDeploy(ctx context.Context, d Deploy) error {
	d.Repo = normRepo(d.Repo)
	if d.ID == "" || d.Repo == "" || d.Env == "" {
		return errors.New("registry: save deploy: id, repo and env are required")
	}
	if d.Requested.IsZero() {
		prev, err := r.GetDeploy(ctx, d.ID)
		switch {
		case err == nil:
			d.Requested = prev.Requested
		case errors.Is(err, ErrNotFound):
			d.Requested = time.Now().UTC()
		default:
			return err
		}
	}
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("registry: save deploy %s: %w", d.ID, err)
	}
	if err := r.db.SaveDeployRecord(ctx, d.ID, d.Repo, d.Env, d.Requested, b); err != nil {
		return fmt.Errorf("registry: save deploy %s: %w", d.ID, err)
	}
	if err := r.db.TrimDeployHistory(ctx, d.Repo, d.Env, deployHistory); err != nil {
		return fmt.Errorf("registry: trimming deploy history: %w", err)
	}
	return nil
}

// GetDeploy returns the deploy with id, or an error wrapping ErrNotFound.
func (r *Registry) GetDeploy(ctx context.Context, id string) (*Deploy, error) {
	b, ok, err := r.db.DeployRecord(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("registry: reading deploy %s: %w", id, err)
	}
	if !ok {
		return nil, fmt.Errorf("deploy %s: %w", id, ErrNotFound)
	}
	var d Deploy
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("registry: decoding deploy %s: %w", id, err)
	}
	return &d, nil
}

// Deploys returns the history of repo's environment env, newest first.
func (r *Registry) Deploys(ctx context.Context, repo, env string) ([]Deploy, error) {
	out, _, err := r.deploys(ctx, normRepo(repo), env, 0, -1, nil)
	return out, err
}

// Current returns the newest succeeded deploy of repo's environment env:
// the version running there. It is nil when none succeeded.
func (r *Registry) Current(ctx context.Context, repo, env string) (*Deploy, error) {
	repo = normRepo(repo)
	// Read the history a page at a time: the newest success is nearly
	// always among the first few, and deploys carry log tails.
	const page = 20
	for start := int64(0); start < deployHistory; start += page {
		var found *Deploy
		_, n, err := r.deploys(ctx, repo, env, start, start+page-1, func(d Deploy) bool {
			if d.State == deploystate.Succeeded {
				found = &d
				return false
			}
			return true
		})
		if err != nil || found != nil || n < page {
			return found, err
		}
	}
	return nil, nil
}

// deploys reads history entries start..stop (newest first), passing each to
// each (stopping when it returns false) or, when each is nil, returning them.
// n is how many history entries the range held.
func (r *Registry) deploys(ctx context.Context, repo, env string, start, stop int64, each func(Deploy) bool) (_ []Deploy, n int, err error) {
	ids, err := r.db.DeployHistory(ctx, repo, env, start, stop)
	if err != nil {
		return nil, 0, fmt.Errorf("registry: reading deploys of %s %s: %w", repo, env, err)
	}
	out := []Deploy{}
	if len(ids) == 0 {
		return out, len(ids), nil
	}
	records, err := r.db.DeployRecords(ctx, ids)
	if err != nil {
		return nil, 0, fmt.Errorf("registry: reading deploys of %s %s: %w", repo, env, err)
	}
	for i, b := range records {
		if b == nil {
			continue // trimmed by a concurrent SaveDeploy
		}
		var d Deploy
		if err := json.Unmarshal(b, &d); err != nil {
			return nil, 0, fmt.Errorf("registry: decoding deploy %s: %w", ids[i], err)
		}
		if each == nil {
			out = append(out, d)
		} else if !each(d) {
			break
		}
	}
	return out, len(ids), nil
}

// Environments returns the environments repo was ever deployed to, sorted.
func (r *Registry) Environments(ctx context.Context, repo string) ([]string, error) {
	envs, err := r.db.DeployEnvironments(ctx, normRepo(repo))
	if err != nil {
		return nil, fmt.Errorf("registry: listing environments of %s: %w", repo, err)
	}
	sort.Strings(envs)
	return envs, nil
}
