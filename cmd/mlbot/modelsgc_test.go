package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mlbot/mlbot/internal/redistest"
	"github.com/mlbot/mlbot/jobs/deploystate"
	"github.com/mlbot/mlbot/jobs/registry"
	"github.com/mlbot/mlbot/jobs/store"
)

// TestModelsGC runs `mlbot models gc` against a registry in Redis and an
// artifact store in a data directory, as an operator would against a
// running mlbot: the dry run lists what would go and why the rest stays,
// and changes nothing; the real run removes exactly that.
func TestModelsGC(t *testing.T) {
	ctx := context.Background()
	url := redistest.URL(t, e2eRedisDB)
	opt, _ := redis.ParseURL(url)
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	st := store.New(rdb, store.DefaultPrefix)
	dataDir := t.TempDir()
	reg := registry.New(st, &registry.ArtifactStore{Dir: filepath.Join(dataDir, "artifacts")})
	old := time.Now().Add(-60 * 24 * time.Hour)
	work := t.TempDir()
	for i, v := range []registry.Version{
		{SHA: "1111111aaaa", Reason: "push to main"},
		{SHA: "2222222bbbb", Reason: "push to main"},
		{SHA: "3333333cccc", Reason: "pull request #4", PR: 4},
		{SHA: "4444444dddd", Reason: "push to main"},
	} {
		os.WriteFile(filepath.Join(work, "model.pt"), []byte(strings.Repeat(v.SHA[:1], 100*(i+1))), 0o644)
		v.Repo, v.RunID, v.Created = "github:acme/model", "run-"+v.SHA[:1], old.Add(time.Duration(i)*time.Hour)
		if _, err := reg.Record(ctx, v, work, []string{"model.pt"}); err != nil {
			t.Fatal(err)
		}
	}
	for i, n := range []int{1, 4} {
		if err := reg.SaveDeploy(ctx, registry.Deploy{ID: "d" + strconv.Itoa(n), Repo: "github:acme/model", Env: "production", Version: n,
			State: deploystate.Succeeded, Requested: old.Add(time.Duration(i) * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"models", "gc", "--redis-url", url, "--data-dir", dataDir, "--retention-deploys", "2", "--retention-main", "1", "--retention-days", "30"}
	gc := func(extra ...string) (string, string, int) {
		var stdout, stderr bytes.Buffer
		code := run(ctx, append(append([]string{}, args...), extra...), &stdout, &stderr)
		return stdout.String(), stderr.String(), code
	}
	dry, errOut, code := gc("--dry-run", "-v")
	if code != 0 {
		t.Fatalf("gc --dry-run -v exited %d: %s", code, errOut)
	}
	digest2 := sha256Hex(strings.Repeat("2", 200))
	digest3 := sha256Hex(strings.Repeat("3", 300))
	for _, want := range []string{
		"dry run: nothing is changed",
		"github:acme/model",
		"drop v3 3333333", "pull request #4 300 B",
		"drop v2 2222222", "push to main 200 B",
		"keep v4 4444444", "push to main 400 B runs in production now; one of the last 1 versions of the default branch",
		"keep v1 1111111", "push to main 100 B rollback target in production (deploy 2 of the last 2)",
		"blobs",
		"delete sha256:" + digest2 + " 200 B",
		"delete sha256:" + digest3 + " 300 B",
		"would drop 2 versions and delete 2 blobs, freeing 500 B",
	} {
		if !strings.Contains(squash(dry), want) {
			t.Errorf("dry run output lacks %q:\n%s", want, dry)
		}
	}
	if vs, _ := reg.List(ctx, "github:acme/model"); len(vs) != 4 {
		t.Errorf("the dry run left %d versions of 4", len(vs))
	}
	if !reg.Store().Has(digest2) || !reg.Store().Has(digest3) {
		t.Error("the dry run deleted blobs")
	}
	// Without -v the kept versions are not listed.
	if quiet, _, _ := gc("--dry-run"); strings.Contains(quiet, "keep") || !strings.Contains(quiet, "drop") {
		t.Errorf("gc --dry-run without -v:\n%s", quiet)
	}

	// While another process collects, gc does not run beside it.
	lease, ok, err := st.Lease(ctx, retentionLease, time.Minute)
	if err != nil || !ok {
		t.Fatalf("taking the lease: %v %v", ok, err)
	}
	if _, errOut, code := gc(); code != 1 || !strings.Contains(errOut, "another mlbot process is collecting now") {
		t.Errorf("gc under another's lease exited %d: %s", code, errOut)
	}
	lease.Release()

	out, errOut, code := gc()
	if code != 0 {
		t.Fatalf("gc exited %d: %s", code, errOut)
	}
	if !strings.Contains(squash(out), "dropped 2 versions and deleted 2 blobs, freeing 500 B") || strings.Contains(out, "dry run") {
		t.Errorf("gc output:\n%s", out)
	}
	vs, _ := reg.List(ctx, "github:acme/model")
	if len(vs) != 2 || vs[0].Number != 4 || vs[1].Number != 1 {
		t.Errorf("versions left: %+v, want v4 and v1", vs)
	}
	if reg.Store().Has(digest2) || reg.Store().Has(digest3) {
		t.Error("gc left the dropped versions' blobs")
	}
	restore := t.TempDir()
	for _, v := range vs {
		if err := reg.Store().Restore(v.Artifacts[0], filepath.Join(restore, strconv.Itoa(v.Number))); err != nil {
			t.Errorf("v%d: %v", v.Number, err)
		}
	}
	if out, _, _ := gc("--dry-run"); !strings.Contains(out, "would drop 0 versions and delete 0 blobs, freeing 0 B") {
		t.Errorf("after gc, a dry run still finds work:\n%s", out)
	}
}

// squash collapses runs of spaces, so that table rows match whatever the
// column widths.
func squash(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
