// Package registry records model versions and deployments. Every successful
// pipeline run that names artifacts becomes a version: a number increasing
// per repository, the commit, the metrics and each artifact's path, size and
// SHA-256. The artifact bytes go to a content-addressed ArtifactStore (a
// directory that may be shared by many workers), so a deploy or a rollback
// on any worker ships exactly the bytes that were evaluated.
//
// The records live in Redis, kept by package jobs/store (its keys.go lists
// the keys) behind the narrow Records interface this package declares.
//
// The package imports nothing of mlbot's but internal/workspace and
// jobs/deploystate (both leaves), so that jobs, jobs/store and web may
// import it; jobs/report does not need it (the deploy states it renders
// live in jobs/deploystate).
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mlbot/mlbot/internal/workspace"
)

// Version is one recorded model version of a repository.
type Version struct {
	Repo      string             `json:"repo"`   // repo key, e.g. "github:acme/model" (forge:lowercased full name)
	Number    int                `json:"number"` // 1, 2, 3… per repo
	SHA       string             `json:"sha"`
	RunID     string             `json:"run_id"`
	Metrics   map[string]float64 `json:"metrics"`
	Artifacts []Artifact         `json:"artifacts"`
	Created   time.Time          `json:"created"`
	Reason    string             `json:"reason"` // "push to main", "pull request #3"
	Branch    string             `json:"branch,omitempty"`
	PR        int                `json:"pr,omitempty"`
	Passed    bool               `json:"passed"` // all gates passed
	// Params are the parameter values the run overrode (a sweep's trial).
	Params map[string]string `json:"params,omitempty"`
	// Trusted is true when the run that made the version was trusted: a
	// default-branch commit, or a pull request of an author with write
	// access. Only such a version may be deployed, since a deploy runs the
	// environment's command, with its secrets, in a checkout of the
	// version's commit.
	Trusted bool `json:"trusted"`
}

// UnmarshalJSON reads a version record. Records written before versions
// carried Trusted count as trusted only when they were made by a
// default-branch run (no pull request), which always ran trusted.
func (v *Version) UnmarshalJSON(b []byte) error {
	type plain Version
	var rec struct {
		plain
		Trusted *bool `json:"trusted"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return err
	}
	*v = Version(rec.plain)
	if rec.Trusted != nil {
		v.Trusted = *rec.Trusted
	} else {
		v.Trusted = v.PR == 0
	}
	return nil
}

// ErrNotFound is wrapped by lookups of a version, deploy or repository the
// registry does not hold.
var ErrNotFound = errors.New("registry: not found")

// ErrBadArtifact is wrapped by Record when the artifact names are at
// fault rather than Redis or the store: a name that matches nothing (which
// also wraps fs.ErrNotExist), leaves the working copy, or names something
// other than a regular file or directory. Retrying cannot help; the run
// failed.
var ErrBadArtifact = errors.New("registry: bad artifact")

// artifactError marks err as the artifact names' fault, keeping its message.
type artifactError struct{ err error }

func (e artifactError) Error() string   { return e.err.Error() }
func (e artifactError) Unwrap() []error { return []error{e.err, ErrBadArtifact} }

// ErrAmbiguous is wrapped by Resolve when an "owner/name" exists on more
// than one forge.
var ErrAmbiguous = errors.New("registry: ambiguous repository")

// Registry reads and writes model versions and deploys in Redis and keeps
// artifact bytes in an ArtifactStore. It is safe for concurrent use, also by
// many processes sharing one Redis.
type Registry struct {
	db    Records
	store *ArtifactStore
}

// Records keeps the registry's versions and deploys, as JSON; the
// *store.Store of package jobs/store satisfies it.
type Records interface {
	// ClaimModelVersion returns the version number of run runID of repo,
	// allocating the repository's next one, atomically, if it has none.
	ClaimModelVersion(ctx context.Context, repo, runID string) (int, error)
	// AddModelVersion stores a version unless it is stored, and lists repo.
	AddModelVersion(ctx context.Context, repo string, number int, b []byte) error
	// ModelVersion returns a version; ok is false when it is not stored.
	ModelVersion(ctx context.Context, repo string, number int) (b []byte, ok bool, err error)
	// ModelVersionOfRun returns the number claimed for a run; ok is false
	// when it claimed none.
	ModelVersionOfRun(ctx context.Context, repo, runID string) (n int, ok bool, err error)
	// ModelVersions returns every version of repo by number.
	ModelVersions(ctx context.Context, repo string) (map[string]string, error)
	// ModelRepos returns the repositories with versions or deploys.
	ModelRepos(ctx context.Context) ([]string, error)
	// SaveDeployRecord stores a deploy and places it in its environment's
	// history by requested, keeping the place it has.
	SaveDeployRecord(ctx context.Context, id, repo, env string, requested time.Time, b []byte) error
	// TrimDeployHistory forgets the deploys of an environment beyond the
	// newest keep.
	TrimDeployHistory(ctx context.Context, repo, env string, keep int) error
	// DeployRecord returns a deploy; ok is false when it is not stored.
	DeployRecord(ctx context.Context, id string) (b []byte, ok bool, err error)
	// DeployHistory returns entries start..stop, newest first, of an
	// environment's history.
	DeployHistory(ctx context.Context, repo, env string, start, stop int64) ([]string, error)
	// DeployRecords returns the deploys of ids, nil for one not stored.
	DeployRecords(ctx context.Context, ids []string) ([][]byte, error)
	// DeployEnvironments returns the environments repo was deployed to.
	DeployEnvironments(ctx context.Context, repo string) ([]string, error)
	// DropModelVersion forgets a version, its run's claim on the number
	// and the number in the run's record.
	DropModelVersion(ctx context.Context, repo string, number int, runID string) error

	// PinBlob tells the collector that a record is about to name a blob,
	// for ttl; ok is false while a collection is deleting it.
	PinBlob(ctx context.Context, digest, token string, ttl time.Duration) (ok bool, err error)
	// UnpinBlob removes token's pin.
	UnpinBlob(ctx context.Context, digest, token string) error
	// BlobPinned reports whether an unexpired pin holds a blob.
	BlobPinned(ctx context.Context, digest string) (bool, error)
	// ClaimBlobDeletion claims a blob for deletion for ttl; ok is false
	// while a pin or another claim holds it.
	ClaimBlobDeletion(ctx context.Context, digest, token string, ttl time.Duration) (ok bool, err error)
	// ReleaseBlobDeletion ends token's claim.
	ReleaseBlobDeletion(ctx context.Context, digest, token string) error
}

// New returns a Registry keeping its records in db and artifacts in
// artifacts.
func New(db Records, artifacts *ArtifactStore) *Registry {
	return &Registry{db: db, store: artifacts}
}

// Store returns the artifact store the registry records into, for a deploy
// that restores a version's artifacts.
func (r *Registry) Store() *ArtifactStore { return r.store }

// normRepo makes repo keys case-insensitive, as forges treat names.
func normRepo(repo string) string { return strings.ToLower(strings.TrimSpace(repo)) }

// Record stores the version made by run v.RunID of repository v.Repo. The
// artifacts are named by names, not by v.Artifacts (which is ignored and
// replaced): each name is a slash-separated path relative to dir, a glob
// (model/*.pt, and ** for any number of directories), or a directory (all
// files beneath it). Every matching file is put in the artifact store and
// its size and digest recorded. Faulty names give an error wrapping
// ErrBadArtifact: one that matches nothing (wrapping fs.ErrNotExist too),
// files outside dir (also through symbolic links), and anything that is not
// a regular file. The next number of the
// repository is then allocated and v.Number is ignored; a zero v.Created
// becomes now.
//
// Record is idempotent per (repo, run id): recording a run again returns the
// version first recorded for it, without reading dir.
func (r *Registry) Record(ctx context.Context, v Version, dir string, names []string) (Version, error) {
	v.Repo = normRepo(v.Repo)
	if v.Repo == "" || v.RunID == "" {
		return Version{}, errors.New("registry: record: repo and run id are required")
	}
	prev, err := r.ByRun(ctx, v.Repo, v.RunID)
	if err != nil {
		return Version{}, err
	}
	if prev != nil {
		return *prev, nil
	}
	arts, unpin, err := r.putArtifacts(ctx, dir, names)
	// The blobs stay pinned until the version naming them is written:
	// until then no record names them, and only the pins keep the
	// collector from deleting them.
	defer unpin()
	if errors.Is(err, ErrBadArtifact) {
		return Version{}, err // names the artifact, for the run's reader
	}
	if err != nil {
		return Version{}, fmt.Errorf("registry: record run %s: %w", v.RunID, err)
	}
	v.Artifacts = arts
	if v.Created.IsZero() {
		v.Created = time.Now().UTC()
	}
	if v.Metrics == nil {
		v.Metrics = map[string]float64{}
	}

	v.Number, err = r.db.ClaimModelVersion(ctx, v.Repo, v.RunID)
	if err != nil {
		return Version{}, fmt.Errorf("registry: allocating a version number: %w", err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return Version{}, fmt.Errorf("registry: record run %s: %w", v.RunID, err)
	}
	// HSETNX, not HSET: when two workers record one run, the number is
	// theirs to share and the first description written wins. A number
	// claimed by a worker that died before this line is filled in by the
	// retry, which finds the claim and writes here.
	if err := r.db.AddModelVersion(ctx, v.Repo, v.Number, b); err != nil {
		return Version{}, fmt.Errorf("registry: saving version %d: %w", v.Number, err)
	}
	stored, err := r.Get(ctx, v.Repo, v.Number)
	if err != nil {
		return Version{}, err
	}
	return *stored, nil
}

// Get returns version number of repo, or an error wrapping ErrNotFound.
func (r *Registry) Get(ctx context.Context, repo string, number int) (*Version, error) {
	repo = normRepo(repo)
	b, ok, err := r.db.ModelVersion(ctx, repo, number)
	if err != nil {
		return nil, fmt.Errorf("registry: reading version %d of %s: %w", number, repo, err)
	}
	if !ok {
		return nil, fmt.Errorf("version %d of %s: %w", number, repo, ErrNotFound)
	}
	var v Version
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("registry: decoding version %d of %s: %w", number, repo, err)
	}
	return &v, nil
}

// ByRun returns the version recorded for run runID of repo, or nil, nil
// when the run recorded none.
func (r *Registry) ByRun(ctx context.Context, repo, runID string) (*Version, error) {
	repo = normRepo(repo)
	n, ok, err := r.db.ModelVersionOfRun(ctx, repo, runID)
	if err != nil {
		return nil, fmt.Errorf("registry: looking up run %s: %w", runID, err)
	}
	if !ok {
		return nil, nil
	}
	v, err := r.Get(ctx, repo, n)
	if errors.Is(err, ErrNotFound) {
		// Claimed by a Record that has not written (or died before
		// writing) the version: the run has no version to show yet.
		return nil, nil
	}
	return v, err
}

// List returns every version of repo, newest first; none for a repository
// the registry does not know.
func (r *Registry) List(ctx context.Context, repo string) ([]Version, error) {
	repo = normRepo(repo)
	all, err := r.db.ModelVersions(ctx, repo)
	if err != nil {
		return nil, fmt.Errorf("registry: listing versions of %s: %w", repo, err)
	}
	out := make([]Version, 0, len(all))
	for field, b := range all {
		var v Version
		if err := json.Unmarshal([]byte(b), &v); err != nil {
			return nil, fmt.Errorf("registry: decoding version %s of %s: %w", field, repo, err)
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number > out[j].Number })
	return out, nil
}

// Repos returns the repo keys that have versions or deploys, sorted.
func (r *Registry) Repos(ctx context.Context) ([]string, error) {
	repos, err := r.db.ModelRepos(ctx)
	if err != nil {
		return nil, fmt.Errorf("registry: listing repositories: %w", err)
	}
	sort.Strings(repos)
	return repos, nil
}

// Resolve turns what a user typed into a repo key: a repo key
// ("github:acme/model") is taken as is, an "owner/name" is looked up on
// every forge. It returns an error wrapping ErrNotFound when no repository
// matches and ErrAmbiguous when several forges have the name.
func (r *Registry) Resolve(ctx context.Context, name string) (string, error) {
	name = normRepo(name)
	repos, err := r.Repos(ctx)
	if err != nil {
		return "", err
	}
	if strings.Contains(name, ":") {
		if slices.Contains(repos, name) {
			return name, nil
		}
		return "", fmt.Errorf("repository %s: %w", name, ErrNotFound)
	}
	var found []string
	for _, k := range repos {
		if _, full, ok := strings.Cut(k, ":"); ok && full == name {
			found = append(found, k)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("repository %s: %w", name, ErrNotFound)
	case 1:
		return found[0], nil
	default:
		return "", fmt.Errorf("repository %s is on several forges (%s); name one: %w", name, strings.Join(found, ", "), ErrAmbiguous)
	}
}

// putArtifacts expands names under dir and stores every file, returning
// the artifacts sorted by path. Nothing is stored unless every file is:
// each is staged first and committed only when all are in. Every blob is
// pinned (see pin) before it is committed; the caller calls unpin, which
// is never nil, once a record names the blobs or it gave up.
func (r *Registry) putArtifacts(ctx context.Context, dir string, names []string) (_ []Artifact, unpin func(), err error) {
	unpin = func() {}
	arts, pending, err := r.stageArtifacts(ctx, dir, names)
	defer func() {
		for _, st := range pending {
			st.discard()
		}
	}()
	if err != nil || len(pending) == 0 {
		return arts, unpin, err
	}
	digests := make([]string, len(pending))
	for i, st := range pending {
		digests[i] = st.digest
	}
	if unpin, err = r.pin(ctx, digests); err != nil {
		return nil, func() {}, fmt.Errorf("pinning the artifacts: %w", err)
	}
	for _, st := range pending {
		if err := st.commit(); err != nil {
			return nil, unpin, err
		}
	}
	return arts, unpin, nil
}

// stageArtifacts expands names under dir and stages every file in the
// store, returning the artifacts and the staged files, which the caller
// commits or discards (also on error).
func (r *Registry) stageArtifacts(ctx context.Context, dir string, names []string) ([]Artifact, []*staged, error) {
	arts := []Artifact{}
	if len(names) == 0 {
		return arts, nil, nil
	}
	if r.store == nil {
		return nil, nil, errors.New("no artifact store configured")
	}
	// Everything is opened through package workspace: artifacts are
	// written by the pipeline, which may run a pull request's code, and a
	// symbolic link to a file of the worker (a key, a token) must not be
	// recorded and later shipped by a deploy, nor a FIFO block the worker.
	ws, err := workspace.Open(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("artifacts: %w", err)
	}
	defer ws.Close()
	files, err := workspace.ExpandArtifacts(ws.FS(), names)
	if err != nil {
		return nil, nil, artifactError{err}
	}
	perFile, perRun := r.store.limits()
	// Sizes first, from fstat on each open handle: a run over a limit fails
	// before a byte is copied, however large (or sparse) its files.
	var total int64
	for _, p := range files {
		f, err := openArtifact(ws, p)
		if err != nil {
			return nil, nil, err
		}
		size := f.Size()
		f.Close()
		if err := checkLimits(p, size, total, perFile, perRun); err != nil {
			return nil, nil, artifactError{err}
		}
		total += size
	}
	// Then the copies, each held to what is left of both limits: a file
	// that grows meanwhile is cut off and refused, not stored.
	var pending []*staged
	ok := false
	defer func() {
		if !ok {
			for _, st := range pending {
				st.discard()
			}
		}
	}()
	total = 0
	for _, p := range files {
		f, err := openArtifact(ws, p)
		if err != nil {
			return nil, nil, err
		}
		if err := checkLimits(p, f.Size(), total, perFile, perRun); err != nil {
			f.Close()
			return nil, nil, artifactError{err}
		}
		allowed := min(perFile, perRun-total)
		st, err := r.store.stage(ctx, f.Reader(ctx, allowed))
		f.Close()
		if tl := (*workspace.TooLargeError)(nil); errors.As(err, &tl) {
			return nil, nil, artifactError{&LimitError{Path: p, Limit: allowed, PerRun: allowed < perFile}}
		}
		if err != nil {
			return nil, nil, fmt.Errorf("artifact %s: %w", p, err)
		}
		pending = append(pending, st)
		total += st.size
		arts = append(arts, Artifact{Path: p, Size: st.size, SHA256: st.digest})
	}
	ok = true
	return arts, pending, nil
}

// openArtifact opens artifact p of ws; a refusal (a FIFO swapped in since
// the expansion, say) is the artifact's fault.
func openArtifact(ws *workspace.Dir, p string) (*workspace.File, error) {
	f, err := ws.Open(p)
	if errors.Is(err, workspace.ErrRefused) {
		return nil, artifactError{fmt.Errorf("artifact %s: %w", p, err)}
	}
	if err != nil {
		return nil, fmt.Errorf("artifact %s: %w", p, err)
	}
	return f, nil
}
