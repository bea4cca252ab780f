package agentsrv

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/mlbot/mlbot/internal/workspace"
	"github.com/mlbot/mlbot/jobs/store"
	"github.com/mlbot/mlbot/runners/agentapi"
)

// cleanRel reports whether rel is a clean, relative, slash-separated path
// that stays where it is put: no "..", no "." or empty element, no
// leading slash, no backslash or control character.
func cleanRel(rel string) bool {
	return rel != "." && fs.ValidPath(rel) && !strings.ContainsFunc(rel, func(r rune) bool {
		return r == '\\' || r < 0x20 || r == 0x7f
	})
}

// parseDigest returns the hex of a "sha256:<hex>" digest.
func parseDigest(d string) (string, bool) {
	hx, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(hx) != 2*sha256.Size {
		return "", false
	}
	if _, err := hex.DecodeString(hx); err != nil {
		return "", false
	}
	return strings.ToLower(hx), true
}

// namesMetric reports whether rel is one of the job's metric files, as
// the pipeline names them (jobs/report.ReadFiles reads each name as is).
func namesMetric(names []string, rel string) bool {
	for _, n := range names {
		if path.Clean(strings.TrimSpace(n)) == rel {
			return true
		}
	}
	return false
}

// putFile serves PUT agentapi.PathFiles + kind + "/" + path.
func (h *Hub) putFile(w http.ResponseWriter, r *http.Request, rn run) {
	// The escaped path, split by hand: an encoded "/" or ".." must reach
	// the checks below as what it decodes to, not be cleaned away first.
	rest := strings.TrimPrefix(r.URL.EscapedPath(), agentapi.PathFiles)
	kind, escaped, _ := strings.Cut(rest, "/")
	rel, err := url.PathUnescape(escaped)
	if err != nil || !cleanRel(rel) {
		http.Error(w, "the path must be clean, relative and inside the workdir", http.StatusBadRequest)
		return
	}
	want, ok := parseDigest(r.Header.Get(agentapi.HeaderDigest))
	if !ok {
		http.Error(w, agentapi.HeaderDigest+` must be "sha256:<hex>"`, http.StatusBadRequest)
		return
	}
	switch kind {
	case agentapi.KindMetrics:
		if !namesMetric(rn.job.Metrics, rel) {
			http.Error(w, "the job names no metric file "+rel, http.StatusBadRequest)
			return
		}
		h.putMetric(w, r, rn, rel, want)
	case agentapi.KindArtifacts:
		if !workspace.ArtifactCovers(rn.job.Artifacts, rel) {
			http.Error(w, "the job's artifacts do not name "+rel, http.StatusBadRequest)
			return
		}
		limit := rn.job.MaxArtifactBytes
		if limit <= 0 {
			limit = DefaultMaxArtifactBytes
		}
		h.putArtifact(w, r, rn, rel, want, limit)
	case agentapi.KindExamples:
		// Streamed and collected like an artifact, within its own limit;
		// the pipeline reads it from the checkout as after a local run.
		if rn.job.Examples == "" || path.Clean(strings.TrimSpace(rn.job.Examples)) != rel {
			http.Error(w, "the job names no examples file "+rel, http.StatusBadRequest)
			return
		}
		h.putArtifact(w, r, rn, rel, want, agentapi.MaxExamplesFileBytes)
	default:
		http.Error(w, "unknown kind of file "+kind, http.StatusNotFound)
	}
}

// tooLarge answers 413 for a file over limit bytes.
func tooLarge(w http.ResponseWriter, rel string, limit int64) {
	http.Error(w, fmt.Sprintf("%s: more than %d bytes", rel, limit), http.StatusRequestEntityTooLarge)
}

// putMetric stores a metric file in the store.
func (h *Hub) putMetric(w http.ResponseWriter, r *http.Request, rn run, rel, want string) {
	const limit = agentapi.MaxMetricFileBytes
	if r.ContentLength > limit {
		tooLarge(w, rel, limit)
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		tooLarge(w, rel, limit)
		return
	}
	if err != nil {
		http.Error(w, "reading the file: "+err.Error(), http.StatusBadRequest)
		return
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != want {
		http.Error(w, rel+": the digest does not match the bytes", http.StatusBadRequest)
		return
	}
	switch err := h.store.PutAgentMetric(r.Context(), rn.id, rel, data); {
	case errors.Is(err, store.ErrAgentLimit):
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
	case err != nil:
		h.storeError(w, rn, "storing a metric file", err)
	default:
		w.WriteHeader(http.StatusCreated)
	}
}

// putArtifact streams an artifact (or the examples file) of at most
// limit bytes to a temporary file of the run's directory, hashing it on
// the way, and moves it to artifacts/<rel> when its size and digest are
// right; otherwise nothing of it is kept.
func (h *Hub) putArtifact(w http.ResponseWriter, r *http.Request, rn run, rel, want string, limit int64) {
	if r.ContentLength > limit {
		tooLarge(w, rel, limit)
		return
	}
	run := h.runDir(rn.id)
	tmp, err := os.CreateTemp(filepath.Join(run, tmpName), "artifact-*")
	if err != nil {
		h.log.Error("agent API: a file for an artifact", "run", rn.id, "err", err)
		http.Error(w, "cannot store the artifact", http.StatusInternalServerError)
		return
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, sum), http.MaxBytesReader(w, r.Body, limit))
	if cerr := tmp.Close(); err == nil && cerr != nil {
		h.log.Error("agent API: writing an artifact", "run", rn.id, "err", cerr)
		http.Error(w, "cannot store the artifact", http.StatusInternalServerError)
		return
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		tooLarge(w, rel, limit)
		return
	}
	if err != nil {
		http.Error(w, "reading the artifact: "+err.Error(), http.StatusBadRequest)
		return
	}
	got := hex.EncodeToString(sum.Sum(nil))
	if got != want {
		http.Error(w, rel+": the digest does not match the bytes", http.StatusBadRequest)
		return
	}
	if err := h.placeArtifact(run, tmp.Name(), rel); err != nil {
		http.Error(w, rel+": "+err.Error(), http.StatusConflict)
		return
	}
	switch err := h.store.AddAgentArtifact(r.Context(), rn.id, rel, store.AgentArtifact{Digest: "sha256:" + got, Size: n}); {
	case errors.Is(err, store.ErrAgentLimit):
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
	case err != nil:
		h.storeError(w, rn, "recording an artifact", err)
	default:
		w.WriteHeader(http.StatusCreated)
	}
}

// placeArtifact moves the uploaded file tmp to artifacts/<rel> of the
// run's directory.
func (h *Hub) placeArtifact(run, tmp, rel string) error {
	root, err := os.OpenRoot(run)
	if err != nil {
		return err
	}
	defer root.Close()
	dst := path.Join(artifactsName, rel)
	if err := root.MkdirAll(path.Dir(dst), 0o700); err != nil {
		return err
	}
	return root.Rename(path.Join(tmpName, filepath.Base(tmp)), dst)
}

// Collect writes the metric files and artifacts run id's agent uploaded
// into dir, at their paths relative to the agent's workdir, creating
// parent directories, so that the pipeline reads them as after a local
// run. It never writes through a symbolic link of dir: one in the place of
// a file is replaced by the file, one in the place of a parent directory
// is an error. Artifacts are copied with their digest checked.
func (h *Hub) Collect(ctx context.Context, id, dir string) error {
	if !validID.MatchString(id) {
		return fmt.Errorf("agentsrv: collect: bad run id %q", id)
	}
	metrics, err := h.store.AgentMetrics(ctx, id)
	if err != nil {
		return fmt.Errorf("agentsrv: collect: %w", err)
	}
	arts, err := h.store.AgentArtifacts(ctx, id)
	if err != nil {
		return fmt.Errorf("agentsrv: collect: %w", err)
	}
	dst, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("agentsrv: collect: %w", err)
	}
	defer dst.Close()
	for _, rel := range sortedKeys(metrics) {
		if err := writeInto(dst, rel, bytes.NewReader(metrics[rel])); err != nil {
			return fmt.Errorf("agentsrv: collect metric file %s: %w", rel, err)
		}
	}
	if len(arts) == 0 {
		return nil
	}
	src, err := os.OpenRoot(filepath.Join(h.runDir(id), artifactsName))
	if err != nil {
		return fmt.Errorf("agentsrv: collect: the uploaded artifacts are not in this mlbot's data directory (is it shared with the one the agent reached?): %w", err)
	}
	defer src.Close()
	for _, rel := range sortedKeys(arts) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := copyArtifact(src, dst, rel, arts[rel]); err != nil {
			return fmt.Errorf("agentsrv: collect artifact %s: %w", rel, err)
		}
	}
	return nil
}

// copyArtifact copies artifact rel from src to dst, checking it is the
// artifact recorded as a.
func copyArtifact(src, dst *os.Root, rel string, a store.AgentArtifact) error {
	f, err := src.Open(filepath.FromSlash(rel))
	if err != nil {
		return err
	}
	defer f.Close()
	sum := sha256.New()
	if err := writeInto(dst, rel, io.TeeReader(f, sum)); err != nil {
		return err
	}
	if got := "sha256:" + hex.EncodeToString(sum.Sum(nil)); got != a.Digest {
		return fmt.Errorf("the stored copy has digest %s, the upload had %s", got, a.Digest)
	}
	return nil
}

// writeInto writes r to the file rel (slash-separated) of root, making
// its parent directories.
func writeInto(root *os.Root, rel string, r io.Reader) error {
	if !cleanRel(rel) {
		return fmt.Errorf("not a clean relative path")
	}
	if err := workspace.MkdirParents(root, rel); err != nil {
		return err
	}
	name := filepath.FromSlash(rel)
	if st, err := root.Lstat(name); err == nil {
		switch {
		case st.Mode()&fs.ModeSymlink != 0:
			// Replaced, never written through.
			if err := root.Remove(name); err != nil {
				return err
			}
		case !st.Mode().IsRegular():
			return fmt.Errorf("%s exists and is not a regular file", rel)
		}
	}
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|noFollow, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
