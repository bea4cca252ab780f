package registry

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// How a Record and a collection share the artifact store. A Record stages
// its files in tmp/, then pins every blob it is about to name, then puts
// each in place under sha256/ (or keeps the copy already there), writes the
// version, and unpins. A collection claims each blob no version names, reads
// the versions again, and deletes the blobs still unnamed. A pin is refused
// while a claim holds the blob and a claim while a pin does (one Redis
// script each), so:
//   - a Record that pinned first keeps the blob: the claim is refused;
//   - a collection that claimed first deletes the blob before the Record
//     pins it, and the Record, finding it gone, puts its own copy;
//   - a Record that pinned, wrote its version and unpinned, all between
//     the collection's first reading of the versions and its claim, is
//     found by the second reading.
//
// A blob written during a collection is therefore never deleted, whether
// new or a copy the Record relied on, and whatever the file times say.
const (
	// blobPinTTL bounds a pin whose Record died before unpinning.
	blobPinTTL = time.Hour
	// blobClaimTTL bounds a claim whose collection died holding it; a
	// collection deletes under a claim only within half of it.
	blobClaimTTL = time.Minute
	// pinRetry is how long a Record waits before asking again for a pin
	// that a claim refused: a claimed blob is deleted in microseconds.
	pinRetry = 20 * time.Millisecond
	// collectBatch is how many blobs a collection claims at once.
	collectBatch = 256
	// DefaultTempMaxAge is the age past which a file staged in the
	// store's tmp/ directory is a crashed Record's leftover.
	DefaultTempMaxAge = 24 * time.Hour
)

// pin pins every blob of digests for one Record, waiting while a
// collection deletes one; unpin removes the pins and is never nil.
func (r *Registry) pin(ctx context.Context, digests []string) (unpin func(), err error) {
	token := randomHex(12)
	var pinned []string
	unpin = func() {
		// The pins must go even when the task's context has ended; one
		// left behind only holds its blob until blobPinTTL.
		ctx := context.WithoutCancel(ctx)
		for _, d := range pinned {
			r.db.UnpinBlob(ctx, d, token)
		}
	}
	for _, d := range digests {
		if slices.Contains(pinned, d) {
			continue
		}
		for {
			ok, err := r.db.PinBlob(ctx, d, token, blobPinTTL)
			if err != nil {
				unpin()
				return func() {}, err
			}
			if ok {
				break
			}
			select {
			case <-ctx.Done():
				unpin()
				return func() {}, ctx.Err()
			case <-time.After(pinRetry):
			}
		}
		pinned = append(pinned, d)
	}
	return unpin, nil
}

// Blob is one file of the artifact store.
type Blob struct {
	// Digest is the hex SHA-256 of the bytes, and the file's name.
	Digest  string
	Size    int64
	ModTime time.Time
}

// CollectOptions configures a collection.
type CollectOptions struct {
	// Policy decides which versions are kept.
	Policy Policy
	// DryRun changes nothing: the Collection says what would go.
	DryRun bool
	// Now is the time the policy's ages count from; zero means now.
	Now time.Time
	// TempMaxAge is the age past which a staged file is removed; zero
	// means DefaultTempMaxAge.
	TempMaxAge time.Duration
}

// Collection is what one collection did or, in a dry run, would do.
type Collection struct {
	DryRun  bool
	Started time.Time
	// Repos holds each repository's decision, by repo key.
	Repos []Decision
	// Deleted are the blobs no kept version names, deleted (or, dry, to be
	// deleted).
	Deleted []Blob
	// Held are blobs no version named when the collection began but that
	// it kept: a Record was storing them, or had named them meanwhile.
	Held []Blob
	// StaleTemp counts the leftover staged files removed.
	StaleTemp int
}

// Dropped counts the versions dropped.
func (c *Collection) Dropped() int {
	n := 0
	for _, d := range c.Repos {
		n += len(d.Drop)
	}
	return n
}

// Freed is the size of the deleted blobs.
func (c *Collection) Freed() int64 {
	var n int64
	for _, b := range c.Deleted {
		n += b.Size
	}
	return n
}

// Plan returns what opts.Policy decides for repo's versions at now.
func (r *Registry) Plan(ctx context.Context, repo string, p Policy, now time.Time) (Decision, error) {
	repo = normRepo(repo)
	versions, err := r.List(ctx, repo)
	if err != nil {
		return Decision{}, err
	}
	envs, err := r.Environments(ctx, repo)
	if err != nil {
		return Decision{}, err
	}
	deploys := make(map[string][]Deploy, len(envs))
	for _, env := range envs {
		if deploys[env], err = r.Deploys(ctx, repo, env); err != nil {
			return Decision{}, err
		}
	}
	d := p.Decide(versions, deploys, now)
	d.Repo = repo
	return d, nil
}

// Collect applies opts.Policy to every repository: it drops the versions
// the policy does not keep, then deletes the artifact blobs no remaining
// version names, and removes staged files older than opts.TempMaxAge. It is
// safe while other processes record versions into the same store (see the
// comment at the top of collect.go); two collections must not run at once,
// which the caller ensures with a lease. A dry run changes nothing.
func (r *Registry) Collect(ctx context.Context, opts CollectOptions) (*Collection, error) {
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	c := &Collection{DryRun: opts.DryRun, Started: now}
	repos, err := r.Repos(ctx)
	if err != nil {
		return c, err
	}
	dropped := map[string]map[int]bool{}
	for _, repo := range repos {
		// Each repository is decided right before its drops, so that a
		// deploy asked for meanwhile is seen.
		d, err := r.Plan(ctx, repo, opts.Policy, now)
		if err != nil {
			return c, err
		}
		if len(d.Keep)+len(d.Drop) == 0 {
			continue
		}
		dropped[repo] = map[int]bool{}
		for _, v := range d.Drop {
			dropped[repo][v.Number] = true
			if opts.DryRun {
				continue
			}
			if err := r.db.DropModelVersion(ctx, repo, v.Number, v.RunID); err != nil {
				return c, fmt.Errorf("registry: dropping version %d of %s: %w", v.Number, repo, err)
			}
		}
		c.Repos = append(c.Repos, d)
	}
	if r.store == nil || r.store.Dir == "" {
		return c, nil
	}
	skip := dropped
	if !opts.DryRun {
		skip = nil // dropped for real: the records are gone
	}
	named, err := r.namedBlobs(ctx, skip)
	if err != nil {
		return c, err
	}
	all, err := r.store.blobs()
	if err != nil {
		return c, err
	}
	var unnamed []Blob
	for _, b := range all {
		if !named[b.Digest] {
			unnamed = append(unnamed, b)
		}
	}
	if opts.DryRun {
		for _, b := range unnamed {
			pinned, err := r.db.BlobPinned(ctx, b.Digest)
			if err != nil {
				return c, fmt.Errorf("registry: %w", err)
			}
			if pinned {
				c.Held = append(c.Held, b)
			} else {
				c.Deleted = append(c.Deleted, b)
			}
		}
		return c, nil
	}
	for batch := range slices.Chunk(unnamed, collectBatch) {
		if err := r.deleteBlobs(ctx, batch, c); err != nil {
			return c, err
		}
	}
	maxAge := opts.TempMaxAge
	if maxAge <= 0 {
		maxAge = DefaultTempMaxAge
	}
	c.StaleTemp = r.store.sweepTemp(time.Now().Add(-maxAge))
	return c, nil
}

// deleteBlobs claims the blobs of batch, reads the versions again, and
// deletes those still unnamed, within half the claim's TTL.
func (r *Registry) deleteBlobs(ctx context.Context, batch []Blob, c *Collection) error {
	token := randomHex(12)
	var claimed []Blob
	defer func() {
		ctx := context.WithoutCancel(ctx)
		for _, b := range claimed {
			r.db.ReleaseBlobDeletion(ctx, b.Digest, token)
		}
	}()
	claimedAt := time.Now()
	for _, b := range batch {
		ok, err := r.db.ClaimBlobDeletion(ctx, b.Digest, token, blobClaimTTL)
		if err != nil {
			return fmt.Errorf("registry: claiming blob %s: %w", b.Digest, err)
		}
		if ok {
			claimed = append(claimed, b)
		} else {
			c.Held = append(c.Held, b) // a Record is storing it
		}
	}
	if len(claimed) == 0 {
		return nil
	}
	named, err := r.namedBlobs(ctx, nil)
	if err != nil {
		return err
	}
	for _, b := range claimed {
		if named[b.Digest] {
			c.Held = append(c.Held, b)
			continue
		}
		if time.Since(claimedAt) > blobClaimTTL/2 {
			// The claims may lapse before the deletes finish; the rest
			// waits for the next collection.
			return nil
		}
		if err := os.Remove(r.store.blob(b.Digest)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("registry: deleting blob %s: %w", b.Digest, err)
		}
		c.Deleted = append(c.Deleted, b)
	}
	return nil
}

// namedBlobs returns the digests the stored versions name, leaving out
// the versions in skip (by repository and number).
func (r *Registry) namedBlobs(ctx context.Context, skip map[string]map[int]bool) (map[string]bool, error) {
	repos, err := r.Repos(ctx)
	if err != nil {
		return nil, err
	}
	named := map[string]bool{}
	for _, repo := range repos {
		versions, err := r.List(ctx, repo)
		if err != nil {
			return nil, err
		}
		for _, v := range versions {
			if skip[repo][v.Number] {
				continue
			}
			for _, a := range v.Artifacts {
				named[a.SHA256] = true
			}
		}
	}
	return named, nil
}

// blobs lists the store's blobs, sorted by digest. Files whose names are
// not digests are left out (and alone).
func (s *ArtifactStore) blobs() ([]Blob, error) {
	entries, err := os.ReadDir(filepath.Join(s.Dir, "sha256"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("artifact store: %w", err)
	}
	var out []Blob
	for _, e := range entries {
		if !validDigest(e.Name()) || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since the listing
		}
		if err != nil {
			return nil, fmt.Errorf("artifact store: %w", err)
		}
		out = append(out, Blob{Digest: e.Name(), Size: info.Size(), ModTime: info.ModTime()})
	}
	return out, nil
}

// sweepTemp removes the staged files last written before cutoff and
// returns how many it removed.
func (s *ArtifactStore) sweepTemp(cutoff time.Time) int {
	dir := filepath.Join(s.Dir, "tmp")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		info, err := e.Info()
		if err == nil && e.Type().IsRegular() && info.ModTime().Before(cutoff) {
			if os.Remove(filepath.Join(dir, e.Name())) == nil {
				n++
			}
		}
	}
	return n
}
