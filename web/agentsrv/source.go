package agentsrv

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"

	"github.com/mlbot/mlbot/internal/workspace"
)

// excluded is the name left out of a source archive wherever it appears:
// git's own directory (or, in a worktree or submodule, the file pointing
// to it). It holds the repository's configuration, where a credential may
// sit, and nothing a training needs that the checked-out files lack.
const excluded = ".git"

// writeSource writes the checkout in dir to w as an uncompressed tar
// archive of regular files, directories and symbolic links, without any
// .git. The walk never follows a symbolic link: a link is stored as a
// link, with its target as written, for the agent to judge. Every name is
// resolved through os.Root, so nothing outside dir is read, and a file is
// read only when the handle opened is the very file the walk saw. Devices,
// FIFOs and sockets, which git cannot check out, are left out with a
// warning.
func writeSource(ctx context.Context, dir string, w io.Writer, log *slog.Logger) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	ws, err := workspace.Open(dir)
	if err != nil {
		return err
	}
	defer ws.Close()
	tw := tar.NewWriter(w)
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		if path.Base(p) == excluded {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		info, err := root.Lstat(p)
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: p, ModTime: info.ModTime(), Format: tar.FormatPAX}
		switch mode := info.Mode(); {
		case mode.IsDir():
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, p+"/", 0o755
			return tw.WriteHeader(hdr)
		case mode&fs.ModeSymlink != 0:
			target, err := root.Readlink(p)
			if err != nil {
				return err
			}
			hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, target, 0o777
			return tw.WriteHeader(hdr)
		case mode.IsRegular():
			return writeFile(ctx, tw, ws, hdr, info)
		default:
			log.Warn("agent source: not archived: neither a file, a directory nor a link", "path", p, "mode", mode.String())
			return nil
		}
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// writeFile writes the regular file hdr.Name of ws, which the walk saw as
// info, into tw.
func writeFile(ctx context.Context, tw *tar.Writer, ws *workspace.Dir, hdr *tar.Header, info fs.FileInfo) error {
	f, err := ws.Open(hdr.Name)
	if err != nil {
		return err
	}
	defer f.Close()
	if !os.SameFile(info, f.Info()) {
		return fmt.Errorf("%s changed while the source was archived", hdr.Name)
	}
	hdr.Typeflag, hdr.Size, hdr.Mode = tar.TypeReg, f.Size(), 0o644
	if info.Mode()&0o111 != 0 {
		hdr.Mode = 0o755
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	n, err := io.Copy(tw, f.Reader(ctx, hdr.Size))
	if err != nil {
		return fmt.Errorf("%s: %w", hdr.Name, err)
	}
	if n != hdr.Size {
		return fmt.Errorf("%s: shrank from %d to %d bytes while the source was archived", hdr.Name, hdr.Size, n)
	}
	return nil
}
