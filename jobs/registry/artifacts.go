package registry

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/mlbot/mlbot/internal/workspace"
)

// Artifact is one file of a model version, as recorded when the version was
// made. Path is slash-separated and relative to the run's working copy.
type Artifact struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// ArtifactStore keeps artifact bytes content-addressed, as Dir/sha256/<hex>.
// Dir may be a volume shared by many workers: every write goes to a
// temporary file on the same volume and is renamed into place, so a reader
// never sees a partial file, and two workers storing the same bytes at once
// both succeed with one copy. Identical content is stored once. Blobs are
// written read-only (0444) in directories of mode 0750: a blob's name is its
// content, and a stray write must fail rather than change what a later
// deploy ships (Restore checks the digest regardless).
type ArtifactStore struct {
	Dir string
	// MaxFileBytes bounds one artifact's size; 0 means
	// DefaultMaxFileBytes.
	MaxFileBytes int64
	// MaxRunBytes bounds the size of all artifacts of one run together;
	// 0 means DefaultMaxRunBytes.
	MaxRunBytes int64
}

// The limits an ArtifactStore applies when its own are zero. Sizes are
// apparent sizes: a sparse file counts with its holes, since that is what
// a copy of it takes.
const (
	DefaultMaxFileBytes int64 = 2 << 30
	DefaultMaxRunBytes  int64 = 10 << 30
)

// limits returns the per-file and per-run limits in force.
func (s *ArtifactStore) limits() (perFile, perRun int64) {
	perFile, perRun = s.MaxFileBytes, s.MaxRunBytes
	if perFile <= 0 {
		perFile = DefaultMaxFileBytes
	}
	if perRun <= 0 {
		perRun = DefaultMaxRunBytes
	}
	return perFile, perRun
}

// ErrDigestMismatch is wrapped by Restore when the stored bytes are not the
// bytes that were recorded.
var ErrDigestMismatch = errors.New("registry: artifact digest mismatch")

// LimitError is returned by Record, wrapped together with ErrBadArtifact,
// when an artifact is larger than the store's per-file limit or brings the
// run's artifacts over the per-run limit. Nothing of the run is stored then.
type LimitError struct {
	// Path is the artifact that went over, relative to the working copy.
	Path string
	// Size is the artifact's size, or for a per-run limit the run's total
	// with it; 0 when the file grew past the limit while it was copied.
	Size int64
	// Limit is the limit that was exceeded, and PerRun tells which one.
	Limit  int64
	PerRun bool
}

func (e *LimitError) Error() string {
	which := "per-file"
	if e.PerRun {
		which = "per-run"
	}
	switch {
	case e.Size == 0:
		return fmt.Sprintf("artifact %s grew past the %s artifact limit of %s while it was stored", e.Path, which, sizeText(e.Limit))
	case e.PerRun:
		return fmt.Sprintf("artifact %s brings the run's artifacts to %s, over the per-run artifact limit of %s", e.Path, sizeText(e.Size), sizeText(e.Limit))
	}
	return fmt.Sprintf("artifact %s is %s, over the per-file artifact limit of %s", e.Path, sizeText(e.Size), sizeText(e.Limit))
}

// checkLimits returns a *LimitError when an artifact of size bytes is over
// the per-file limit, or over the per-run limit after total bytes stored.
func checkLimits(path string, size, total, perFile, perRun int64) error {
	if size > perFile {
		return &LimitError{Path: path, Size: size, Limit: perFile}
	}
	if size > perRun-total {
		return &LimitError{Path: path, Size: total + size, Limit: perRun, PerRun: true}
	}
	return nil
}

// sizeText writes n bytes for people: "1.5 GiB (1610612736 bytes)".
func sizeText(n int64) string {
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	if n < 1<<10 {
		return fmt.Sprintf("%d bytes", n)
	}
	v, u := float64(n)/1024, 0
	for v >= 1024 && u < len(units)-1 {
		v, u = v/1024, u+1
	}
	return fmt.Sprintf("%.1f %s (%d bytes)", v, units[u], n)
}

// Put copies the file at path into the store and returns its size and hex
// SHA-256. It streams the file, so a model of any size costs a small buffer;
// a file over the per-file limit gives a *LimitError.
func (s *ArtifactStore) Put(path string) (size int64, digest string, err error) {
	ws, err := workspace.Open(filepath.Dir(path))
	if err != nil {
		return 0, "", fmt.Errorf("artifact store: %w", err)
	}
	defer ws.Close()
	f, err := ws.Open(filepath.Base(path))
	if err != nil {
		return 0, "", fmt.Errorf("artifact store: %s: %w", path, err)
	}
	defer f.Close()
	perFile, _ := s.limits()
	if err := checkLimits(path, f.Size(), 0, perFile, perFile); err != nil {
		return 0, "", err
	}
	st, err := s.stage(context.Background(), f.Reader(context.Background(), perFile))
	if tl := (*workspace.TooLargeError)(nil); errors.As(err, &tl) {
		return 0, "", &LimitError{Path: path, Limit: perFile}
	}
	if err != nil {
		return 0, "", err
	}
	if err := st.commit(); err != nil {
		return 0, "", err
	}
	return st.size, st.digest, nil
}

// staged is an artifact copied into the store's tmp directory and digested,
// not yet under its name.
type staged struct {
	s      *ArtifactStore
	tmp    string
	size   int64
	digest string
	done   bool
}

// stage copies r into a temporary file of the store, flushed to disk and
// read-only, and digests it on the way.
func (s *ArtifactStore) stage(ctx context.Context, r io.Reader) (*staged, error) {
	if s.Dir == "" {
		return nil, errors.New("artifact store: no directory configured")
	}
	tmpDir := filepath.Join(s.Dir, "tmp")
	blobDir := filepath.Join(s.Dir, "sha256")
	for _, d := range []string{tmpDir, blobDir} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("artifact store: %w", err)
		}
	}
	// The temporary file lives in the store, not in os.TempDir, so that the
	// rename in commit stays on one file system and is atomic.
	tmp, err := os.CreateTemp(tmpDir, "put-*")
	if err != nil {
		return nil, fmt.Errorf("artifact store: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), ctxReader{ctx, r})
	if err != nil {
		return nil, fmt.Errorf("artifact store: copying: %w", err)
	}
	// Flush before commit's rename makes the name visible: another worker
	// may restore these bytes right after, and a crash must not leave a
	// blob whose name promises bytes it does not hold.
	if err := tmp.Sync(); err != nil {
		return nil, fmt.Errorf("artifact store: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("artifact store: %w", err)
	}
	// Read-only, because a blob's name is its content.
	if err := os.Chmod(tmp.Name(), 0o444); err != nil {
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("artifact store: %w", err)
	}
	ok = true
	return &staged{s: s, tmp: tmp.Name(), size: n, digest: hex.EncodeToString(h.Sum(nil))}, nil
}

// commit puts the staged bytes under their digest, unless the store holds
// them already (from an earlier version or another worker).
func (st *staged) commit() error {
	if st.done {
		return nil
	}
	st.done = true
	if st.s.Has(st.digest) {
		os.Remove(st.tmp)
		return nil
	}
	if err := os.Rename(st.tmp, st.s.blob(st.digest)); err != nil {
		os.Remove(st.tmp)
		return fmt.Errorf("artifact store: %w", err)
	}
	return nil
}

// discard drops staged bytes that will not be committed.
func (st *staged) discard() {
	if !st.done {
		st.done = true
		os.Remove(st.tmp)
	}
}

// Has reports whether the store holds the bytes with hex SHA-256 digest.
func (s *ArtifactStore) Has(digest string) bool {
	if !validDigest(digest) {
		return false
	}
	st, err := os.Stat(s.blob(digest))
	return err == nil && st.Mode().IsRegular()
}

// Restore writes artifact a's bytes to dir/a.Path, creating parent
// directories. It refuses a path that is absolute or leaves dir (also by a
// symbolic link already in dir), and verifies size and SHA-256 while
// copying: on a mismatch it returns an error wrapping ErrDigestMismatch and
// leaves no file behind, so a deploy never ships bytes other than those that
// were evaluated. An existing file at the destination is replaced
// atomically.
func (s *ArtifactStore) Restore(a Artifact, dir string) error {
	rel, err := localPath(a.Path)
	if err != nil {
		return err
	}
	if !validDigest(a.SHA256) {
		return fmt.Errorf("restore %s: invalid sha256 %q", a.Path, a.SHA256)
	}
	// The blob is opened like a workspace file (no link followed, no FIFO
	// waited on, fstat on the handle): the store is mlbot's, but a restore
	// must not trust what happens to be on disk.
	blobs, err := workspace.Open(filepath.Join(s.Dir, "sha256"))
	if err != nil {
		return fmt.Errorf("restore %s: %w", a.Path, err)
	}
	defer blobs.Close()
	f, err := blobs.Open(a.SHA256)
	if err != nil {
		return fmt.Errorf("restore %s: blob %s: %w", a.Path, a.SHA256, err)
	}
	defer f.Close()
	if f.Size() != a.Size {
		return fmt.Errorf("restore %s: stored blob has %d bytes, recorded %d: %w", a.Path, f.Size(), a.Size, ErrDigestMismatch)
	}
	src := f.Reader(context.Background(), a.Size)

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("restore %s: %w", a.Path, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("restore %s: %w", a.Path, err)
	}
	defer root.Close()
	if parent := path.Dir(rel); parent != "." {
		if err := root.MkdirAll(parent, 0o755); err != nil {
			return fmt.Errorf("restore %s: %w", a.Path, err)
		}
	}
	tmpName := path.Join(path.Dir(rel), ".mlbot-restore-"+randomHex(8))
	dst, err := root.OpenFile(tmpName, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("restore %s: %w", a.Path, err)
	}
	ok := false
	defer func() {
		if !ok {
			dst.Close()
			root.Remove(tmpName)
		}
	}()
	h := sha256.New()
	// One byte past the recorded size is enough to tell a longer file.
	n, err := io.Copy(io.MultiWriter(dst, h), src)
	if tl := (*workspace.TooLargeError)(nil); errors.As(err, &tl) {
		n, err = a.Size+1, nil // grew since it was opened; verify reports it
	}
	if err != nil {
		return fmt.Errorf("restore %s: %w", a.Path, err)
	}
	if err := verify(a, n, h); err != nil {
		return err
	}
	if err := dst.Close(); err != nil {
		return fmt.Errorf("restore %s: %w", a.Path, err)
	}
	if err := root.Rename(tmpName, rel); err != nil {
		return fmt.Errorf("restore %s: %w", a.Path, err)
	}
	ok = true
	return nil
}

func verify(a Artifact, n int64, h hash.Hash) error {
	if n != a.Size {
		return fmt.Errorf("restore %s: stored blob has %d bytes or more, recorded %d: %w", a.Path, n, a.Size, ErrDigestMismatch)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != a.SHA256 {
		return fmt.Errorf("restore %s: stored blob has sha256 %s, recorded %s: %w", a.Path, got, a.SHA256, ErrDigestMismatch)
	}
	return nil
}

func (s *ArtifactStore) blob(digest string) string {
	return filepath.Join(s.Dir, "sha256", digest)
}

// localPath checks that p names a file inside a directory and returns it
// slash-separated and clean.
func localPath(p string) (string, error) {
	clean := path.Clean(filepath.ToSlash(p))
	if p == "" || clean == "." || !fs.ValidPath(clean) || !filepath.IsLocal(filepath.FromSlash(clean)) {
		return "", fmt.Errorf("artifact path %q: must be relative and stay inside the directory", p)
	}
	return clean, nil
}

func validDigest(d string) bool {
	if len(d) != sha256.Size*2 || strings.ToLower(d) != d {
		return false
	}
	_, err := hex.DecodeString(d)
	return err == nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// ctxReader stops a long copy when its context is cancelled, so that a
// shutting-down worker does not finish digesting a large model first.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
