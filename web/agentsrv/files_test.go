package agentsrv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlbot/mlbot/runners/agentapi"
)

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// TestPutFileRefusesPaths attacks the upload path: traversal in every
// spelling, absolute paths, and files the job does not name.
func TestPutFileRefusesPaths(t *testing.T) {
	f := newFixture(t)
	tok := f.reopenToken(t, runA)
	const body = `{"accuracy": 0.9}`
	tests := []struct {
		name, path string
		want       int
	}{
		{"a metric file", "metrics/metrics.json", http.StatusCreated},
		{"a metric file named ./eval/extra.json", "metrics/eval/extra.json", http.StatusCreated},
		{"an artifact", "artifacts/model.pt", http.StatusCreated},
		{"a file of an artifact directory", "artifacts/out/sub/w.bin", http.StatusCreated},
		{"a match of **", "artifacts/ckpt/1/2/w.bin", http.StatusCreated},
		{"an escaped name", "artifacts/out/a%20b.bin", http.StatusCreated},
		{"dot-dot", "metrics/../x", http.StatusBadRequest},
		{"dot-dot to a listed name", "metrics/eval/../metrics.json", http.StatusBadRequest},
		{"absolute", "metrics//etc/passwd", http.StatusBadRequest},
		{"climbing out", "artifacts/out/../../b", http.StatusBadRequest},
		{"encoded dot-dot", "artifacts/%2e%2e/model.pt", http.StatusBadRequest},
		{"encoded slashes", "artifacts/out%2F..%2F..%2Fsecret", http.StatusBadRequest},
		{"encoded absolute", "artifacts/%2Fetc%2Fpasswd", http.StatusBadRequest},
		{"dot", "artifacts/out/./a.bin", http.StatusBadRequest},
		{"trailing slash", "artifacts/out/", http.StatusBadRequest},
		{"backslash", "artifacts/out/..%5C..%5Cx", http.StatusBadRequest},
		{"NUL", "artifacts/out/a%00b", http.StatusBadRequest},
		{"empty", "artifacts/", http.StatusBadRequest},
		{"metric not listed", "metrics/other.json", http.StatusBadRequest},
		{"metric under an artifact's name", "metrics/model.pt", http.StatusBadRequest},
		{"artifact not listed", "artifacts/train.py", http.StatusBadRequest},
		{"artifact beside a pattern", "artifacts/ckpt/1/w.txt", http.StatusBadRequest},
		{"artifact under a metric's name", "artifacts/metrics.json", http.StatusBadRequest},
		{"unknown kind", "logs/metrics.json", http.StatusNotFound},
	}
	for _, tt := range tests {
		code, _, msg := f.do(t, http.MethodPut, agentapi.PathFiles+tt.path, tok, strings.NewReader(body),
			map[string]string{agentapi.HeaderDigest: digest(body)})
		if code != tt.want {
			t.Errorf("%s: PUT %s = %d %s, want %d", tt.name, tt.path, code, strings.TrimSpace(msg), tt.want)
		}
	}
	// Only the accepted files are anywhere to be collected.
	out := t.TempDir()
	if err := f.hub.Collect(context.Background(), runA, out); err != nil {
		t.Fatal(err)
	}
	got := listFiles(t, out)
	want := []string{"ckpt/1/2/w.bin", "eval/extra.json", "metrics.json", "model.pt", "out/a b.bin", "out/sub/w.bin"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("collected %q, want %q", got, want)
	}
}

// listFiles lists the regular files under dir, slash-separated, sorted.
func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPutFileDigestAndSize checks that a file is kept only when its bytes
// are the digest's and within the limits, streamed or not.
func TestPutFileDigestAndSize(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	job := testJob()
	job.MaxArtifactBytes = 1000
	c := f.open(t, runA, job, time.Hour)
	tok := f.reopenToken(t, runB)
	small := strings.Repeat("m", 1000)
	tests := []struct {
		name, kind, path, body, digest string
		chunked                        bool
		want                           int
	}{
		{"artifact at the limit", agentapi.KindArtifacts, "model.pt", small, digest(small), false, http.StatusCreated},
		{"artifact digest mismatch", agentapi.KindArtifacts, "out/a.bin", "abc", digest("abd"), false, http.StatusBadRequest},
		{"metric digest mismatch", agentapi.KindMetrics, "metrics.json", "{}", digest("{ }"), false, http.StatusBadRequest},
		{"malformed digest", agentapi.KindArtifacts, "out/a.bin", "abc", "md5:00", false, http.StatusBadRequest},
		{"digest of the wrong length", agentapi.KindArtifacts, "out/a.bin", "abc", "sha256:abcd", false, http.StatusBadRequest},
		{"artifact over the limit", agentapi.KindArtifacts, "out/b.bin", small + "!", digest(small + "!"), false, http.StatusRequestEntityTooLarge},
		{"artifact over the limit, streamed", agentapi.KindArtifacts, "out/c.bin", small + "!", digest(small + "!"), true, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		var body io.Reader = strings.NewReader(tt.body)
		size := int64(len(tt.body))
		if tt.chunked {
			body, size = io.MultiReader(body), -1 // hides the length: sent chunked
		}
		err := c.PutFile(ctx, tt.kind, tt.path, tt.digest, size, body)
		var se *agentapi.StatusError
		switch {
		case tt.want == http.StatusCreated && err != nil:
			t.Errorf("%s: %v, want 201", tt.name, err)
		case tt.want != http.StatusCreated && (!errors.As(err, &se) || se.Code != tt.want):
			t.Errorf("%s: %v, want %d", tt.name, err, tt.want)
		}
	}
	big := strings.Repeat("{}", agentapi.MaxMetricFileBytes/2) + " "
	if code, _, _ := f.do(t, http.MethodPut, agentapi.PathFiles+"metrics/metrics.json", tok, strings.NewReader(big),
		map[string]string{agentapi.HeaderDigest: digest(big)}); code != http.StatusRequestEntityTooLarge {
		t.Errorf("metric file over %d bytes: %d, want 413", agentapi.MaxMetricFileBytes, code)
	}
	// Of all that, only the good artifact is kept: nothing in tmp, one file
	// under artifacts, one record.
	run := filepath.Join(f.dataDir, "agent", runA)
	if left, _ := os.ReadDir(filepath.Join(run, tmpName)); len(left) != 0 {
		t.Errorf("%d files left in tmp", len(left))
	}
	if got := listFiles(t, filepath.Join(run, artifactsName)); len(got) != 1 || got[0] != "model.pt" {
		t.Errorf("stored artifacts %q, want model.pt", got)
	}
	st, err := os.Stat(filepath.Join(run, artifactsName, "model.pt"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("stored artifact: %v, %v; want mode 0600", st.Mode(), err)
	}
	arts, err := f.store.AgentArtifacts(ctx, runA)
	if err != nil || len(arts) != 1 || arts["model.pt"].Digest != digest(small) || arts["model.pt"].Size != 1000 {
		t.Errorf("artifact records %+v, %v", arts, err)
	}
	if m, _ := f.store.AgentMetrics(ctx, runA); len(m) != 0 {
		t.Errorf("metric files kept: %q", m)
	}
}

// TestCollect writes what the agent uploaded into a directory holding
// symbolic links: a link in a file's place is replaced, never written
// through; one in a parent's place is an error.
func TestCollect(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	c := f.open(t, runA, testJob(), time.Hour)
	files := map[string]struct{ kind, body string }{
		"metrics.json":     {agentapi.KindMetrics, `{"accuracy": 0.93}`},
		"eval/extra.json":  {agentapi.KindMetrics, `{"f1": 0.8}`},
		"model.pt":         {agentapi.KindArtifacts, strings.Repeat("\x00\x01weights", 5000)},
		"out/deep/x/y.bin": {agentapi.KindArtifacts, "y"},
	}
	for p, fl := range files {
		if err := c.PutFile(ctx, fl.kind, p, digest(fl.body), int64(len(fl.body)), strings.NewReader(fl.body)); err != nil {
			t.Fatalf("PutFile %s: %v", p, err)
		}
	}
	dst := t.TempDir()
	outside := t.TempDir()
	writeFiles(t, outside, map[string]string{"secret": "keep me"})
	writeFiles(t, dst, map[string]string{"eval/old.json": "{}"})
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dst, "metrics.json")); err != nil {
		t.Fatal(err)
	}
	if err := f.hub.Collect(ctx, runA, dst); err != nil {
		t.Fatal(err)
	}
	for p, fl := range files {
		b, err := os.ReadFile(filepath.Join(dst, filepath.FromSlash(p)))
		if err != nil || string(b) != fl.body {
			t.Errorf("collected %s: %d bytes, %v; want the uploaded %d", p, len(b), err, len(fl.body))
		}
	}
	if st, _ := os.Lstat(filepath.Join(dst, "metrics.json")); st == nil || !st.Mode().IsRegular() {
		t.Errorf("metrics.json is not a regular file after Collect")
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "secret")); string(b) != "keep me" {
		t.Errorf("the link's target was written through: %q", b)
	}
	// Collect is repeatable, and refuses a parent that is a link.
	dst2 := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dst2, "out")); err != nil {
		t.Fatal(err)
	}
	if err := f.hub.Collect(ctx, runA, dst2); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("Collect through a linked parent: %v, want a refusal", err)
	}
	if left, _ := os.ReadDir(outside); len(left) != 1 {
		t.Errorf("Collect wrote into the link's target: %d entries", len(left))
	}
	// A stored copy that is not what was uploaded is an error.
	if err := os.WriteFile(filepath.Join(f.dataDir, "agent", runA, artifactsName, "model.pt"), []byte("tampered"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.hub.Collect(ctx, runA, t.TempDir()); err == nil || !strings.Contains(err.Error(), "digest") {
		t.Errorf("Collect of a changed copy: %v, want a digest error", err)
	}
}
