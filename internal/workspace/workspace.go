// Package workspace reads files that untrusted code wrote: the metrics
// files, artifacts and .mlbot.yml of a checkout in which a pull request's
// training may have run. Such a training (or a process it left behind) can
// plant symbolic links to the worker's secrets, FIFOs that block a reader
// forever, or files of any size, and can swap one for another between two
// system calls. Everything here is therefore decided on an open handle:
//
//   - names are resolved by os.Root, one component at a time relative to the
//     directory's descriptor: a symbolic link is followed only when it stays
//     inside the directory, and the kernel never follows one itself;
//   - the file is opened with O_RDONLY|O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC, so
//     opening a FIFO returns at once instead of waiting for a writer;
//   - fstat on that handle must show a regular file, and its size (the
//     apparent size: a sparse file counts in full) is checked against the
//     caller's limit before a byte is read;
//   - reads stop when the context ends and when more than the limit arrives
//     (the file may grow while it is read).
//
// Every error that is the directory's fault (a name that leaves it, a
// missing file, a FIFO, a file over its limit) wraps ErrRefused, so callers
// can fail the run instead of retrying it.
package workspace

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// ErrRefused is wrapped by every error caused by the directory's contents
// rather than by the machine: retrying cannot help.
var ErrRefused = errors.New("workspace: refused")

// ErrNotRegular is wrapped when a name is something other than a regular
// file (a FIFO, socket, device or directory).
var ErrNotRegular = errors.New("not a regular file")

// refused marks err as the directory's fault, keeping its message.
type refused struct{ err error }

func (e refused) Error() string   { return e.err.Error() }
func (e refused) Unwrap() []error { return []error{e.err, ErrRefused} }

// TooLargeError reports a file over its limit. Size is the size fstat
// reported, or 0 when the file grew past the limit while it was read.
type TooLargeError struct {
	Size, Limit int64
}

func (e *TooLargeError) Error() string {
	if e.Size > 0 {
		return fmt.Sprintf("%d bytes, more than the %d-byte limit", e.Size, e.Limit)
	}
	return fmt.Sprintf("grew past the %d-byte limit while being read", e.Limit)
}

// Unwrap makes a TooLargeError a refusal.
func (e *TooLargeError) Unwrap() error { return ErrRefused }

// Dir is an open directory of untrusted files. It is safe for concurrent
// use. Close it when done.
type Dir struct{ root *os.Root }

// Open opens the directory dir. dir itself is the caller's (mlbot's own
// workspace path) and may be reached through symbolic links; only names
// inside it are distrusted.
func Open(dir string) (*Dir, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &Dir{root: root}, nil
}

// Close releases the directory's descriptor.
func (d *Dir) Close() error { return d.root.Close() }

// File is a regular file opened by Dir.Open, with the fstat of its handle.
type File struct {
	f    *os.File
	info fs.FileInfo
}

// Open opens name, a relative path inside the directory, for reading. It
// refuses names that are absolute or leave the directory (also through a
// symbolic link, in any component) and anything that is not a regular file
// when opened; it never blocks on a FIFO.
func (d *Dir) Open(name string) (*File, error) {
	if !local(name) {
		return nil, refused{errors.New("path must be relative and inside the workspace")}
	}
	f, err := d.root.OpenFile(name, openFlags, 0)
	if err != nil {
		return nil, classify(err)
	}
	st, err := f.Stat() // fstat: describes what was opened, not what the name means now
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, refused{fmt.Errorf("%w (%s)", ErrNotRegular, kind(st.Mode()))}
	}
	return &File{f: f, info: st}, nil
}

// Size is the file's apparent size when it was opened: a sparse file counts
// with its holes.
func (f *File) Size() int64 { return f.info.Size() }

// Info is the fstat of the open handle.
func (f *File) Info() fs.FileInfo { return f.info }

// Close closes the file.
func (f *File) Close() error { return f.f.Close() }

// Reader returns a reader of the file's bytes that fails with ctx's error
// once ctx ends (checked before every read, so a copy of a large file stops
// within one buffer) and with a *TooLargeError once more than limit bytes
// have come, having returned exactly limit.
func (f *File) Reader(ctx context.Context, limit int64) io.Reader {
	return &reader{ctx: ctx, r: f.f, left: limit, limit: limit}
}

type reader struct {
	ctx         context.Context
	r           io.Reader
	left, limit int64
}

func (r *reader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	if r.left < 0 {
		return 0, &TooLargeError{Limit: r.limit}
	}
	if int64(len(p)) > r.left+1 {
		p = p[:r.left+1] // one byte past the limit tells a longer file
	}
	n, err := r.r.Read(p)
	r.left -= int64(n)
	if r.left < 0 {
		return n - 1, &TooLargeError{Limit: r.limit}
	}
	return n, err
}

// ReadFile reads all of name (see Open) if it holds at most limit bytes.
// The size is checked on the open handle before reading, and again while
// reading. When ctx ends first, ReadFile returns ctx's error at once and
// abandons the read, which closes the file when it returns.
func (d *Dir) ReadFile(ctx context.Context, name string, limit int64) ([]byte, error) {
	f, err := d.Open(name)
	if err != nil {
		return nil, err
	}
	if f.Size() > limit {
		f.Close()
		return nil, &TooLargeError{Size: f.Size(), Limit: limit}
	}
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		defer f.Close()
		data, err := io.ReadAll(f.Reader(ctx, limit))
		done <- result{data, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, r.err
		}
		return r.data, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// ReadFile opens dir and reads name from it; see Dir.ReadFile.
func ReadFile(ctx context.Context, dir, name string, limit int64) ([]byte, error) {
	d, err := Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.ReadFile(ctx, name, limit)
}

// FS returns the directory as an fs.FS for globbing and walking. Its Open
// resolves names as Dir.Open does and accepts regular files and
// directories only, so a walk that meets a FIFO (or a directory swapped for
// one) gets an error instead of blocking. Stat follows symbolic links that
// stay inside the directory.
func (d *Dir) FS() fs.FS { return dirFS{d.root} }

type dirFS struct{ root *os.Root }

func (fsys dirFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	f, err := fsys.root.OpenFile(name, openFlags, 0)
	if err != nil {
		return nil, classify(err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() && !st.IsDir() {
		f.Close()
		return nil, refused{fmt.Errorf("%s: %w or directory (%s)", name, ErrNotRegular, kind(st.Mode()))}
	}
	return f, nil
}

func (fsys dirFS) Stat(name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrInvalid}
	}
	st, err := fsys.root.Stat(name)
	if err != nil {
		return nil, classify(err)
	}
	return st, nil
}

// local reports whether name is relative and stays inside its directory.
func local(name string) bool {
	return name != "" && !filepath.IsAbs(name) && filepath.IsLocal(name)
}

// classify marks an open error as the directory's fault unless it is the
// machine's (out of descriptors or memory, an I/O error), which a retry
// may cure.
func classify(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.EMFILE, syscall.ENFILE, syscall.ENOMEM, syscall.EIO, syscall.EINTR, syscall.ENOSPC:
			return err
		}
	}
	return refused{err}
}

// kind names a file type for an error message.
func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0, m&fs.ModeCharDevice != 0:
		return "a device"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return m.Type().String()
}
