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
// both succeed with one copy. Identical content is stored once.
type ArtifactStore struct{ Dir string }

// ErrDigestMismatch is wrapped by Restore when the stored bytes are not the
// bytes that were recorded.
var ErrDigestMismatch = errors.New("registry: artifact digest mismatch")

// Put copies the file at path into the store and returns its size and hex
// SHA-256. It streams the file, so a model of any size costs a small buffer.
func (s *ArtifactStore) Put(path string) (size int64, digest string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", fmt.Errorf("artifact store: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, "", fmt.Errorf("artifact store: %w", err)
	}
	if !st.Mode().IsRegular() {
		return 0, "", fmt.Errorf("artifact store: %s is not a regular file", path)
	}
	return s.put(context.Background(), f)
}

// put streams r into the store.
func (s *ArtifactStore) put(ctx context.Context, r io.Reader) (int64, string, error) {
	if s.Dir == "" {
		return 0, "", errors.New("artifact store: no directory configured")
	}
	tmpDir := filepath.Join(s.Dir, "tmp")
	blobDir := filepath.Join(s.Dir, "sha256")
	for _, d := range []string{tmpDir, blobDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return 0, "", fmt.Errorf("artifact store: %w", err)
		}
	}
	// The temporary file lives in the store, not in os.TempDir, so that the
	// rename below stays on one file system and is atomic.
	tmp, err := os.CreateTemp(tmpDir, "put-*")
	if err != nil {
		return 0, "", fmt.Errorf("artifact store: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), ctxReader{ctx, r})
	if err != nil {
		return 0, "", fmt.Errorf("artifact store: copying: %w", err)
	}
	digest := hex.EncodeToString(h.Sum(nil))
	final := filepath.Join(blobDir, digest)
	if s.Has(digest) {
		// Stored already (by an earlier version or another worker); the
		// deferred cleanup drops our copy.
		return n, digest, nil
	}
	// Flush before the rename makes the name visible: another worker may
	// restore these bytes right after, and a crash must not leave a blob
	// whose name promises bytes it does not hold.
	if err := tmp.Sync(); err != nil {
		return 0, "", fmt.Errorf("artifact store: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return 0, "", fmt.Errorf("artifact store: %w", err)
	}
	// Read-only, because a blob's name is its content.
	if err := os.Chmod(tmp.Name(), 0o444); err != nil {
		return 0, "", fmt.Errorf("artifact store: %w", err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return 0, "", fmt.Errorf("artifact store: %w", err)
	}
	done = true
	return n, digest, nil
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
	src, err := os.Open(s.blob(a.SHA256))
	if err != nil {
		return fmt.Errorf("restore %s: %w", a.Path, err)
	}
	defer src.Close()

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
	n, err := io.Copy(io.MultiWriter(dst, h), io.LimitReader(src, a.Size+1))
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
