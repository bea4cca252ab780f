package registry_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mlbot/mlbot/jobs/deploystate"
	"github.com/mlbot/mlbot/jobs/registry"
	"github.com/mlbot/mlbot/jobs/registry/registrytest"
	"github.com/mlbot/mlbot/jobs/store"
)

const repo = "github:acme/model"

// newRegistry returns a registry on the test Redis with an artifact store
// in a temporary directory.
func newRegistry(t *testing.T) *registry.Registry {
	t.Helper()
	rdb, prefix := registrytest.Redis(t)
	return registry.New(store.New(rdb, prefix), &registry.ArtifactStore{Dir: t.TempDir()})
}

// writeFiles creates files (slash paths → content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func blobs(t *testing.T, s *registry.ArtifactStore) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(s.Dir, "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestRegistryRecordNumbersVersionsPerRepo(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"model.pt": "weights"})

	created := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for i, run := range []string{"run-a", "run-b", "run-c"} {
		v, err := r.Record(ctx, registry.Version{
			Repo: "github:Acme/Model", SHA: fmt.Sprintf("sha%d", i), RunID: run,
			Metrics: map[string]float64{"accuracy": 0.9 + float64(i)/100},
			Created: created.Add(time.Duration(i) * time.Hour), Reason: "push to main", Branch: "main", Passed: true,
		}, dir, []string{"model.pt"})
		if err != nil {
			t.Fatal(err)
		}
		if v.Number != i+1 || v.Repo != repo {
			t.Fatalf("run %s: version %d of %q, want %d of %q", run, v.Number, v.Repo, i+1, repo)
		}
	}
	// Another repository counts from 1.
	other, err := r.Record(ctx, registry.Version{Repo: "gitlab:acme/model", RunID: "run-a"}, dir, []string{"model.pt"})
	if err != nil || other.Number != 1 {
		t.Fatalf("other repo: version %d, %v; want 1", other.Number, err)
	}

	list, err := r.List(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	var numbers []int
	for _, v := range list {
		numbers = append(numbers, v.Number)
	}
	if !reflect.DeepEqual(numbers, []int{3, 2, 1}) {
		t.Fatalf("List order %v, want [3 2 1]", numbers)
	}
	want := registry.Version{
		Repo: repo, Number: 2, SHA: "sha1", RunID: "run-b",
		Metrics:   map[string]float64{"accuracy": 0.91},
		Artifacts: []registry.Artifact{{Path: "model.pt", Size: 7, SHA256: digest([]byte("weights"))}},
		Created:   created.Add(time.Hour), Reason: "push to main", Branch: "main", Passed: true,
	}
	got, err := r.Get(ctx, repo, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*got, want) {
		t.Fatalf("Get(2) = %+v\nwant %+v", *got, want)
	}
	if byRun, err := r.ByRun(ctx, repo, "run-b"); err != nil || !reflect.DeepEqual(byRun, got) {
		t.Fatalf("ByRun(run-b) = %+v, %v; want version 2", byRun, err)
	}
	if v, err := r.ByRun(ctx, repo, "run-z"); v != nil || err != nil {
		t.Fatalf("ByRun(unknown) = %+v, %v; want nil, nil", v, err)
	}
	if _, err := r.Get(ctx, repo, 9); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("Get(9) error %v, want ErrNotFound", err)
	}
	repos, err := r.Repos(ctx)
	if err != nil || !reflect.DeepEqual(repos, []string{repo, "gitlab:acme/model"}) {
		t.Fatalf("Repos = %v, %v", repos, err)
	}
}

func TestRegistryRecordIsIdempotentPerRun(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"model.pt": "first"})
	v := registry.Version{Repo: repo, SHA: "abc", RunID: "run-1", Reason: "push to main"}

	first, err := r.Record(ctx, v, dir, []string{"model.pt"})
	if err != nil {
		t.Fatal(err)
	}
	// A second execution of the task finds the version recorded, even
	// when the working copy is gone.
	os.RemoveAll(dir)
	again, err := r.Record(ctx, v, dir, []string{"model.pt"})
	if err != nil {
		t.Fatalf("recording the same run again: %v", err)
	}
	if !reflect.DeepEqual(again, first) {
		t.Fatalf("second Record = %+v, want the first %+v", again, first)
	}

	// Executions racing each other get one number between them.
	dir2 := t.TempDir()
	writeFiles(t, dir2, map[string]string{"model.pt": "second"})
	v.RunID = "run-2"
	var wg sync.WaitGroup
	got := make([]registry.Version, 8)
	errs := make([]error, len(got))
	for i := range got {
		wg.Go(func() { got[i], errs[i] = r.Record(ctx, v, dir2, []string{"model.pt"}) })
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if got[i].Number != 2 || !reflect.DeepEqual(got[i], got[0]) {
			t.Fatalf("concurrent Record %d = %+v, want version 2 like %+v", i, got[i], got[0])
		}
	}
	if list, _ := r.List(ctx, repo); len(list) != 2 {
		t.Fatalf("%d versions after recording two runs, want 2", len(list))
	}
}

func TestArtifactDigestsAndSizes(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	dir := t.TempDir()
	big := make([]byte, 3<<20+17) // several copy buffers
	rng := rand.NewChaCha8([32]byte{1})
	rng.Read(big)
	files := map[string][]byte{
		"empty.bin":        {},
		"model/weights.pt": big,
		"model/vocab.txt":  []byte("a\nb\n"),
	}
	for p, b := range files {
		writeFiles(t, dir, map[string]string{p: string(b)})
	}
	v, err := r.Record(ctx, registry.Version{Repo: repo, RunID: "run"}, dir, []string{"empty.bin", "model"})
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Artifacts) != len(files) {
		t.Fatalf("artifacts %+v, want %d", v.Artifacts, len(files))
	}
	for _, a := range v.Artifacts {
		b := files[a.Path]
		if a.Size != int64(len(b)) || a.SHA256 != digest(b) {
			t.Errorf("%s: size %d sha256 %s, want %d %s", a.Path, a.Size, a.SHA256, len(b), digest(b))
		}
		if !r.Store().Has(a.SHA256) {
			t.Errorf("%s: store lacks %s", a.Path, a.SHA256)
		}
		stored, err := os.ReadFile(filepath.Join(r.Store().Dir, "sha256", a.SHA256))
		if err != nil || digest(stored) != a.SHA256 {
			t.Errorf("%s: stored blob wrong (%v)", a.Path, err)
		}
	}

	// Put on its own gives the same answer.
	size, d, err := r.Store().Put(filepath.Join(dir, "model", "weights.pt"))
	if err != nil || size != int64(len(big)) || d != digest(big) {
		t.Fatalf("Put = %d, %s, %v; want %d, %s", size, d, err, len(big), digest(big))
	}
	if r.Store().Has("not-a-digest") || r.Store().Has(digest([]byte("never stored"))) {
		t.Fatal("Has reports bytes that were never stored")
	}
}

func TestArtifactIdenticalContentStoredOnce(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.pt": "same", "b/c.pt": "same", "d.pt": "other"})
	for i, names := range [][]string{{"a.pt", "b/c.pt"}, {"a.pt", "d.pt"}} {
		if _, err := r.Record(ctx, registry.Version{Repo: repo, RunID: fmt.Sprint("run", i)}, dir, names); err != nil {
			t.Fatal(err)
		}
	}
	got := blobs(t, r.Store())
	if len(got) != 2 {
		t.Fatalf("store holds %v, want the two distinct contents once each", got)
	}
	if tmp, _ := os.ReadDir(filepath.Join(r.Store().Dir, "tmp")); len(tmp) != 0 {
		t.Fatalf("temporary files left behind: %v", tmp)
	}
}

func TestArtifactRestore(t *testing.T) {
	store := &registry.ArtifactStore{Dir: t.TempDir()}
	src := filepath.Join(t.TempDir(), "model.pt")
	content := []byte("the evaluated weights")
	os.WriteFile(src, content, 0o644)
	size, d, err := store.Put(src)
	if err != nil {
		t.Fatal(err)
	}
	good := registry.Artifact{Path: "model/model.pt", Size: size, SHA256: d}

	tests := []struct {
		name    string
		art     registry.Artifact
		prepare func(t *testing.T, dest string) // before Restore
		corrupt []byte                          // replaces the stored blob
		wantErr error                           // nil: must succeed; errAny: any error
	}{
		{name: "restores the bytes", art: good},
		{name: "replaces an existing file", art: good, prepare: func(t *testing.T, dest string) {
			writeFiles(t, dest, map[string]string{"model/model.pt": "stale"})
		}},
		{name: "corrupted blob", art: good, corrupt: []byte("the evaluated weightz"), wantErr: registry.ErrDigestMismatch},
		{name: "truncated blob", art: good, corrupt: []byte("the evaluated"), wantErr: registry.ErrDigestMismatch},
		{name: "longer blob", art: good, corrupt: append([]byte("the evaluated weights"), '!'), wantErr: registry.ErrDigestMismatch},
		{name: "wrong recorded size", art: registry.Artifact{Path: "m.pt", Size: size - 1, SHA256: d}, wantErr: registry.ErrDigestMismatch},
		{name: "dot-dot path", art: registry.Artifact{Path: "../escape.pt", Size: size, SHA256: d}, wantErr: errAny},
		{name: "dot-dot inside path", art: registry.Artifact{Path: "model/../../escape.pt", Size: size, SHA256: d}, wantErr: errAny},
		{name: "absolute path", art: registry.Artifact{Path: "/tmp/escape.pt", Size: size, SHA256: d}, wantErr: errAny},
		{name: "empty path", art: registry.Artifact{Path: "", Size: size, SHA256: d}, wantErr: errAny},
		{name: "digest that is a path", art: registry.Artifact{Path: "m.pt", Size: size, SHA256: "../../etc/passwd"}, wantErr: errAny},
		{name: "blob not in store", art: registry.Artifact{Path: "m.pt", Size: 1, SHA256: digest([]byte("x"))}, wantErr: fs.ErrNotExist},
		{name: "symlink out of the destination", art: good, prepare: func(t *testing.T, dest string) {
			if err := os.Symlink(t.TempDir(), filepath.Join(dest, "model")); err != nil {
				t.Fatal(err)
			}
		}, wantErr: errAny},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dest := t.TempDir()
			if tc.prepare != nil {
				tc.prepare(t, dest)
			}
			if tc.corrupt != nil {
				blob := filepath.Join(store.Dir, "sha256", d)
				os.Chmod(blob, 0o644)
				if err := os.WriteFile(blob, tc.corrupt, 0o644); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.WriteFile(blob, content, 0o444) })
			}
			err := store.Restore(tc.art, dest)
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("Restore: %v", err)
			case tc.wantErr == nil:
				got, err := os.ReadFile(filepath.Join(dest, filepath.FromSlash(tc.art.Path)))
				if err != nil || string(got) != string(content) {
					t.Fatalf("restored %q, %v; want %q", got, err, content)
				}
			case err == nil:
				t.Fatalf("Restore succeeded, want an error")
			case tc.wantErr != errAny && !errors.Is(err, tc.wantErr):
				t.Fatalf("Restore error %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr != nil {
				// A refused restore leaves nothing a deploy could pick up.
				filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
					if err == nil && d.Type().IsRegular() {
						t.Errorf("Restore left %s behind", p)
					}
					return nil
				})
			}
		})
	}
}

// errAny stands for "some error" in a table of expected errors.
var errAny = errors.New("any error")

func TestRegistryArtifactNames(t *testing.T) {
	outside := t.TempDir()
	writeFiles(t, outside, map[string]string{"secret.key": "do not ship"})
	tests := []struct {
		name    string
		names   []string
		prepare func(t *testing.T, dir string)
		want    []string // artifact paths
		wantErr error
	}{
		{name: "plain file", names: []string{"model.pt"}, want: []string{"model.pt"}},
		{name: "glob", names: []string{"ckpt/*.pt"}, want: []string{"ckpt/a.pt", "ckpt/b.pt"}},
		{name: "double star", names: []string{"**/*.pt"}, want: []string{"ckpt/a.pt", "ckpt/b.pt", "ckpt/deep/c.pt", "model.pt"}},
		{name: "double star under a directory", names: []string{"ckpt/**"}, want: []string{"ckpt/a.pt", "ckpt/b.pt", "ckpt/deep/c.pt", "ckpt/notes.txt"}},
		{name: "directory", names: []string{"ckpt/deep/"}, want: []string{"ckpt/deep/c.pt"}},
		{name: "overlapping names once", names: []string{"model.pt", "*.pt", "./model.pt"}, want: []string{"model.pt"}},
		{name: "symlink inside the working copy", names: []string{"link.pt"}, prepare: func(t *testing.T, dir string) {
			os.Symlink("model.pt", filepath.Join(dir, "link.pt"))
		}, want: []string{"link.pt"}},
		{name: "missing file", names: []string{"model.pt", "nope.pt"}, wantErr: fs.ErrNotExist},
		{name: "glob matching nothing", names: []string{"ckpt/*.onnx"}, wantErr: fs.ErrNotExist},
		{name: "double star matching nothing", names: []string{"missing/**/*.pt"}, wantErr: fs.ErrNotExist},
		{name: "parent directory", names: []string{"../secret.key"}, wantErr: errAny},
		{name: "absolute path", names: []string{filepath.Join(outside, "secret.key")}, wantErr: errAny},
		{name: "symlink out of the working copy", names: []string{"stolen.key"}, prepare: func(t *testing.T, dir string) {
			os.Symlink(filepath.Join(outside, "secret.key"), filepath.Join(dir, "stolen.key"))
		}, wantErr: errAny},
		{name: "fifo", names: []string{"pipe"}, prepare: func(t *testing.T, dir string) {
			if err := syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o644); err != nil {
				t.Skip("no FIFOs here:", err)
			}
		}, wantErr: errAny},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			r := newRegistry(t)
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{
				"model.pt": "m", "ckpt/a.pt": "a", "ckpt/b.pt": "b", "ckpt/deep/c.pt": "c", "ckpt/notes.txt": "n",
			})
			if tc.prepare != nil {
				tc.prepare(t, dir)
			}
			v, err := r.Record(ctx, registry.Version{Repo: repo, RunID: fmt.Sprint("run", i)}, dir, tc.names)
			if tc.wantErr != nil {
				if err == nil || (tc.wantErr != errAny && !errors.Is(err, tc.wantErr)) {
					t.Fatalf("Record error %v, want %v", err, tc.wantErr)
				}
				if !errors.Is(err, registry.ErrBadArtifact) {
					t.Fatalf("Record error %v does not wrap ErrBadArtifact", err)
				}
				if list, _ := r.List(ctx, repo); len(list) != 0 {
					t.Fatalf("a failed Record left versions %+v", list)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range v.Artifacts {
				got = append(got, a.Path)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("artifacts %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRegistryDeployHistory(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	save := func(d registry.Deploy) {
		t.Helper()
		if err := r.SaveDeploy(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(ds []registry.Deploy) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.ID+"="+d.State)
		}
		return out
	}

	save(registry.Deploy{ID: "d1", Repo: repo, Env: "production", Version: 1, State: deploystate.Succeeded, Reason: "merge of #1", Requested: t0})
	save(registry.Deploy{ID: "d2", Repo: repo, Env: "production", Version: 2, State: deploystate.Queued, Reason: "merge of #2", Requested: t0.Add(time.Minute)})
	save(registry.Deploy{ID: "s1", Repo: repo, Env: "staging", Version: 2, State: deploystate.Succeeded, Requested: t0.Add(2 * time.Minute)})

	cur, err := r.Current(ctx, repo, "production")
	if err != nil || cur == nil || cur.ID != "d1" {
		t.Fatalf("Current while d2 is queued = %+v, %v; want d1", cur, err)
	}
	// d2 succeeds: an update keeps its place and becomes current.
	save(registry.Deploy{ID: "d2", Repo: repo, Env: "production", Version: 2, State: deploystate.Succeeded, Reason: "merge of #2",
		Requested: t0.Add(time.Minute), Started: t0.Add(2 * time.Minute), Finished: t0.Add(3 * time.Minute), HostID: 42})
	if cur, _ := r.Current(ctx, repo, "production"); cur == nil || cur.ID != "d2" || cur.HostID != 42 {
		t.Fatalf("Current after d2 succeeded = %+v, want d2", cur)
	}
	// It is rolled back: the previous success is current again.
	d2, err := r.GetDeploy(ctx, "d2")
	if err != nil {
		t.Fatal(err)
	}
	d2.State = deploystate.RolledBack
	d2.Requested = time.Time{} // kept from the stored deploy
	save(*d2)
	save(registry.Deploy{ID: "d3", Repo: repo, Env: "production", Version: 1, State: deploystate.Failed, Reason: "/rollback by @maria", Requested: t0.Add(4 * time.Minute)})
	if cur, _ := r.Current(ctx, repo, "production"); cur == nil || cur.ID != "d1" {
		t.Fatalf("Current after rollback of d2 = %+v, want d1", cur)
	}
	got, err := r.Deploys(ctx, repo, "production")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"d3=failed", "d2=rolled_back", "d1=succeeded"}; !reflect.DeepEqual(ids(got), want) {
		t.Fatalf("Deploys = %v, want %v", ids(got), want)
	}
	if !got[1].Requested.Equal(t0.Add(time.Minute)) {
		t.Fatalf("update lost Requested: %v", got[1].Requested)
	}
	envs, err := r.Environments(ctx, repo)
	if err != nil || !reflect.DeepEqual(envs, []string{"production", "staging"}) {
		t.Fatalf("Environments = %v, %v", envs, err)
	}
	if cur, err := r.Current(ctx, repo, "canary"); cur != nil || err != nil {
		t.Fatalf("Current of an environment never deployed = %+v, %v; want nil, nil", cur, err)
	}
	if _, err := r.GetDeploy(ctx, "nope"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("GetDeploy(unknown) error %v, want ErrNotFound", err)
	}
	if err := r.SaveDeploy(ctx, registry.Deploy{Repo: repo, Env: "production"}); err == nil {
		t.Fatal("SaveDeploy without an id succeeded")
	}
}

func TestRegistryDeployHistoryIsCapped(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	// The only success is the oldest: Current must page past 200 failures
	// until it is trimmed.
	for i := range 205 {
		state := deploystate.Failed
		if i == 0 {
			state = deploystate.Succeeded
		}
		id := fmt.Sprintf("d%03d", i)
		if err := r.SaveDeploy(ctx, registry.Deploy{ID: id, Repo: repo, Env: "production", State: state, Requested: t0.Add(time.Duration(i) * time.Second)}); err != nil {
			t.Fatal(err)
		}
		if i == 199 {
			if cur, err := r.Current(ctx, repo, "production"); err != nil || cur == nil || cur.ID != "d000" {
				t.Fatalf("Current with 200 deploys = %+v, %v; want d000", cur, err)
			}
		}
	}
	got, err := r.Deploys(ctx, repo, "production")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 200 || got[0].ID != "d204" || got[199].ID != "d005" {
		t.Fatalf("history holds %d deploys, %s…%s; want 200, d204…d005", len(got), got[0].ID, got[len(got)-1].ID)
	}
	if _, err := r.GetDeploy(ctx, "d000"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("trimmed deploy still stored (%v)", err)
	}
	if cur, err := r.Current(ctx, repo, "production"); cur != nil || err != nil {
		t.Fatalf("Current = %+v, %v; want nil once the success is trimmed", cur, err)
	}
}
