package registry_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mlbot/mlbot/jobs/deploystate"
	"github.com/mlbot/mlbot/jobs/registry"
	"github.com/mlbot/mlbot/jobs/registry/registrytest"
	"github.com/mlbot/mlbot/jobs/store"
)

// record records a version of repo whose artifacts hold files (path →
// content), made by a pull request when pr is not 0, created at created.
func record(t *testing.T, r *registry.Registry, run string, pr int, created time.Time, files map[string]string) registry.Version {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, files)
	var names []string
	for p := range files {
		names = append(names, p)
	}
	v, err := r.Record(context.Background(), registry.Version{Repo: repo, SHA: "sha-" + run, RunID: run, PR: pr, Created: created}, dir, names)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func versionNumbers(t *testing.T, r *registry.Registry) []int {
	t.Helper()
	vs, err := r.List(context.Background(), repo)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, v := range vs {
		out = append(out, v.Number)
	}
	return out
}

// restorable fails the test unless every artifact of every version of repo
// can be restored with its recorded digest.
func restorable(t *testing.T, r *registry.Registry) {
	t.Helper()
	vs, err := r.List(context.Background(), repo)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	for _, v := range vs {
		for _, a := range v.Artifacts {
			if err := r.Store().Restore(a, filepath.Join(out, fmt.Sprint(v.Number))); err != nil {
				t.Errorf("v%d (%s): %v", v.Number, v.RunID, err)
			}
		}
	}
}

// TestCollect drops what the policy does not keep, deletes the blobs only
// dropped versions or nothing named, keeps a blob a kept version shares,
// and in a dry run reports the same without changing anything.
func TestCollect(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	old := time.Now().Add(-100 * 24 * time.Hour)
	v1 := record(t, r, "run-1", 0, old, map[string]string{"model.pt": "weights one", "vocab.txt": "shared vocabulary"})
	v2 := record(t, r, "run-2", 0, old, map[string]string{"model.pt": "weights two", "vocab.txt": "shared vocabulary"})
	v3 := record(t, r, "run-3", 4, old, map[string]string{"model.pt": "weights of a pull request"})
	v4 := record(t, r, "run-4", 0, old, map[string]string{"model.pt": "weights four", "vocab.txt": "shared vocabulary"})
	v5 := record(t, r, "run-5", 6, time.Now(), map[string]string{"model.pt": "weights five"})
	// A blob no version names, as a Record that died after putting it
	// leaves.
	orphan := filepath.Join(t.TempDir(), "orphan")
	os.WriteFile(orphan, []byte("nobody names me"), 0o644)
	if _, _, err := r.Store().Put(orphan); err != nil {
		t.Fatal(err)
	}
	for _, d := range []registry.Deploy{
		{ID: "d1", Repo: repo, Env: "production", Version: 1, State: deploystate.Succeeded, Requested: old},
		{ID: "d2", Repo: repo, Env: "production", Version: 4, State: deploystate.Succeeded, Requested: old.Add(time.Hour)},
	} {
		if err := r.SaveDeploy(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	// A staged file of a Record that crashed a day ago, and one of a
	// Record under way.
	tmp := filepath.Join(r.Store().Dir, "tmp")
	stale, fresh := filepath.Join(tmp, "put-stale"), filepath.Join(tmp, "put-fresh")
	os.WriteFile(stale, []byte("x"), 0o444)
	os.WriteFile(fresh, []byte("y"), 0o444)
	os.Chtimes(stale, old, old)

	policy := registry.Policy{Deploys: 2, DefaultBranch: 1, MaxAge: 24 * time.Hour}
	// Kept: v4 runs in production (and is the newest of main), v1 is its
	// rollback target, v5 is a day old at most. Dropped: v2, v3.
	wantDeleted := []string{digest([]byte("weights two")), digest([]byte("weights of a pull request")), digest([]byte("nobody names me"))}
	slices.Sort(wantDeleted)
	blobsBefore := blobs(t, r.Store())

	dry, err := r.Collect(ctx, registry.CollectOptions{Policy: policy, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := deletedDigests(dry); !slices.Equal(got, wantDeleted) {
		t.Errorf("dry run would delete %v, want %v", got, wantDeleted)
	}
	if len(dry.Repos) != 1 || len(dry.Repos[0].Drop) != 2 || dry.Repos[0].Drop[0].Number != v3.Number || dry.Repos[0].Drop[1].Number != v2.Number {
		t.Errorf("dry run decision %+v, want v3 and v2 dropped", dry.Repos)
	}
	if got := versionNumbers(t, r); !slices.Equal(got, []int{5, 4, 3, 2, 1}) {
		t.Errorf("a dry run dropped versions: %v left", got)
	}
	if got := blobs(t, r.Store()); !slices.Equal(got, blobsBefore) {
		t.Errorf("a dry run deleted blobs: %v left of %v", got, blobsBefore)
	}

	c, err := r.Collect(ctx, registry.CollectOptions{Policy: policy})
	if err != nil {
		t.Fatal(err)
	}
	if got := deletedDigests(c); !slices.Equal(got, wantDeleted) {
		t.Errorf("deleted %v, want %v", got, wantDeleted)
	}
	if got := versionNumbers(t, r); !slices.Equal(got, []int{v5.Number, v4.Number, v1.Number}) {
		t.Errorf("versions left %v, want 5 4 1", got)
	}
	for _, b := range wantDeleted {
		if r.Store().Has(b) {
			t.Errorf("blob %s is still stored", b)
		}
	}
	if !r.Store().Has(digest([]byte("shared vocabulary"))) {
		t.Error("the blob kept versions share with a dropped one was deleted")
	}
	restorable(t, r)
	if c.Freed() != int64(len("weights two")+len("weights of a pull request")+len("nobody names me")) || c.Dropped() != 2 {
		t.Errorf("collection freed %d bytes and dropped %d versions", c.Freed(), c.Dropped())
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) || c.StaleTemp != 1 {
		t.Errorf("stale staged file: %v, %d removed", err, c.StaleTemp)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("the staged file of a Record under way was removed: %v", err)
	}
	// The dropped run is forgotten: recording it again makes a new version
	// rather than returning the dropped one.
	if prev, err := r.ByRun(ctx, repo, v2.RunID); err != nil || prev != nil {
		t.Errorf("ByRun of a dropped version's run = %+v, %v", prev, err)
	}
	// A second collection finds nothing more to do.
	again, err := r.Collect(ctx, registry.CollectOptions{Policy: policy})
	if err != nil || again.Dropped() != 0 || len(again.Deleted) != 0 {
		t.Errorf("second collection: %d dropped, %v deleted, %v", again.Dropped(), again.Deleted, err)
	}
}

func deletedDigests(c *registry.Collection) []string {
	var out []string
	for _, b := range c.Deleted {
		out = append(out, b.Digest)
	}
	slices.Sort(out)
	return out
}

// TestCollectWhileStoring runs Records on several goroutines, each with
// its own Registry as separate workers have, while collections run
// back to back on the same Redis and directory. The Records store fresh
// bytes and, above all, bytes the collections are deleting at that moment
// (a blob left by a dropped version or by nobody): a Record that finds
// such a blob in place relies on it instead of writing its own copy. In
// the end every version's every artifact must restore with its digest.
func TestCollectWhileStoring(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := registrytest.Redis(t)
	dir := t.TempDir()
	newReg := func() *registry.Registry {
		return registry.New(store.New(rdb, prefix), &registry.ArtifactStore{Dir: dir})
	}
	collector := newReg()
	const (
		writers   = 4
		perWriter = 40
	)
	// Doomed bytes: half left by old pull request versions, which the
	// policy drops, half by nobody.
	doomed := make([]string, writers*perWriter)
	old := time.Now().Add(-100 * 24 * time.Hour)
	for i := range doomed {
		doomed[i] = fmt.Sprintf("doomed weights %d", i)
		if i%2 == 0 {
			record(t, collector, fmt.Sprintf("old-%d", i), 1, old, map[string]string{"model.pt": doomed[i]})
			continue
		}
		p := filepath.Join(t.TempDir(), "orphan")
		os.WriteFile(p, []byte(doomed[i]), 0o644)
		if _, _, err := collector.Store().Put(p); err != nil {
			t.Fatal(err)
		}
	}
	policy := registry.Policy{MaxAge: time.Hour} // keeps what the writers record

	var wg sync.WaitGroup
	stop := make(chan struct{})
	var collections, deleted int
	var collectErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := collector.Collect(ctx, registry.CollectOptions{Policy: policy})
			if err != nil {
				collectErr = err
				return
			}
			collections++
			deleted += len(c.Deleted)
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	errs := make(chan error, writers*perWriter)
	var writersWG sync.WaitGroup
	for w := range writers {
		writersWG.Add(1)
		go func() {
			defer writersWG.Done()
			reg := newReg()
			for i := range perWriter {
				// Writers take the doomed bytes in the order the
				// collector meets them (it deletes in digest order, and
				// the writers interleave), each once.
				n := i*writers + w
				work := t.TempDir()
				os.WriteFile(filepath.Join(work, "model.pt"), []byte(doomed[n]), 0o644)
				os.WriteFile(filepath.Join(work, "fresh.bin"), []byte(fmt.Sprintf("fresh %d/%d", w, i)), 0o644)
				_, err := reg.Record(ctx, registry.Version{Repo: repo, SHA: "new", RunID: fmt.Sprintf("new-%d-%d", w, i)}, work, []string{"model.pt", "fresh.bin"})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	writersWG.Wait()
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Record: %v", err)
	}
	if collectErr != nil {
		t.Fatalf("Collect: %v", collectErr)
	}
	t.Logf("%d collections deleted %d blobs while %d versions were recorded", collections, deleted, writers*perWriter)
	if collections < 2 || deleted == 0 {
		t.Fatalf("%d collections deleted %d blobs: they did not run beside the Records", collections, deleted)
	}
	restorable(t, collector)
	vs, _ := collector.List(ctx, repo)
	if len(vs) != writers*perWriter {
		t.Errorf("%d versions left, want the %d recorded (the old ones dropped)", len(vs), writers*perWriter)
	}
	// What is left unnamed once the Records are done goes at the next
	// collection, and nothing named does.
	if _, err := collector.Collect(ctx, registry.CollectOptions{Policy: policy}); err != nil {
		t.Fatal(err)
	}
	restorable(t, collector)
	if got, want := len(blobs(t, collector.Store())), 2*writers*perWriter; got != want {
		t.Errorf("%d blobs left, want the %d the versions name", got, want)
	}
}
