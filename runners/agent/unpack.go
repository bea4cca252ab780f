package agent

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/mlbot/mlbot/internal/workspace"
)

// unpack extracts the tar archive r into dir (created if missing). It
// trusts nothing in the archive: every name must be a clean relative path
// (no "..", not absolute), only regular files, directories and symbolic
// links are accepted, a link's target must stay inside dir, and nothing
// is written through a symbolic link. Every name is resolved through
// os.Root, so even a mistake here cannot write outside dir. The first
// refusal ends the extraction with an error naming the entry.
func unpack(r io.Reader, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if errors.Is(err, tar.ErrHeader) {
			return &refusedError{fmt.Errorf("source archive: %w", err)}
		}
		if err != nil {
			return fmt.Errorf("source archive: %w", err)
		}
		err = unpackEntry(root, readErrors{tr}, hdr)
		var re readError
		if errors.As(err, &re) {
			return fmt.Errorf("source archive: %q: %w", hdr.Name, err)
		}
		if err != nil {
			return &refusedError{fmt.Errorf("source archive: %q: %w", hdr.Name, err)}
		}
	}
}

// unpackEntry writes one entry of the archive.
func unpackEntry(root *os.Root, r io.Reader, hdr *tar.Header) error {
	name := hdr.Name
	if hdr.Typeflag == tar.TypeDir {
		name = strings.TrimSuffix(name, "/")
	}
	if name == "" || name == "." || !fs.ValidPath(name) || strings.Contains(name, `\`) {
		return errors.New("not a clean relative path")
	}
	if err := workspace.MkdirParents(root, name); err != nil {
		return err
	}
	local := filepath.FromSlash(name)
	switch hdr.Typeflag {
	case tar.TypeDir:
		st, err := root.Lstat(local)
		if err == nil {
			if !st.IsDir() {
				return errors.New("exists and is not a directory")
			}
			return nil
		}
		return root.Mkdir(local, 0o755)
	case tar.TypeReg:
		if err := removeFile(root, local); err != nil {
			return err
		}
		mode := fs.FileMode(0o644)
		if hdr.Mode&0o111 != 0 {
			mode = 0o755
		}
		f, err := root.OpenFile(local, os.O_WRONLY|os.O_CREATE|os.O_EXCL|noFollow, mode)
		if err != nil {
			return err
		}
		n, err := io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil && n != hdr.Size {
			err = fmt.Errorf("%d bytes of %d", n, hdr.Size)
		}
		return err
	case tar.TypeSymlink:
		target := hdr.Linkname
		if target == "" || path.IsAbs(target) || strings.Contains(target, `\`) ||
			!filepath.IsLocal(filepath.FromSlash(path.Join(path.Dir(name), target))) {
			return fmt.Errorf("symbolic link to %q leaves the workdir", target)
		}
		if err := removeFile(root, local); err != nil {
			return err
		}
		return root.Symlink(target, local)
	default:
		return fmt.Errorf("type %q: only files, directories and symbolic links are accepted", hdr.Typeflag)
	}
}

// removeFile removes a regular file or link at name, so that an entry
// replaces it; anything else in the way is an error.
func removeFile(root *os.Root, name string) error {
	st, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.IsDir() {
		return errors.New("exists and is a directory")
	}
	return root.Remove(name)
}

// refusedError is unpack's refusal of an archive for what it holds, as
// opposed to a failure to read it: fetching it again cannot help.
type refusedError struct{ err error }

func (e *refusedError) Error() string { return e.err.Error() }
func (e *refusedError) Unwrap() error { return e.err }

// readErrors marks the errors of reading the archive (the download cut
// short), which a fresh download may cure, apart from those of writing.
type readErrors struct{ r io.Reader }

func (r readErrors) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = readError{err}
	}
	return n, err
}

// readError is an error of reading the archive.
type readError struct{ err error }

func (e readError) Error() string { return e.err.Error() }
func (e readError) Unwrap() error { return e.err }
