package workspace

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// MkdirParents makes the parent directories of rel (slash-separated,
// relative to root) that do not exist yet, refusing a parent that is a
// symbolic link or not a directory, so that a file written next cannot
// land outside the directory through a link an earlier entry planted.
// root already refuses to leave its directory; this refuses earlier, with
// an error that names the parent.
func MkdirParents(root *os.Root, rel string) error {
	parts := strings.Split(rel, "/")
	for i := 1; i < len(parts); i++ {
		p := filepath.Join(parts[:i]...)
		st, err := root.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := root.Mkdir(p, 0o755); err != nil {
				return err
			}
		case err != nil:
			return err
		case st.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("%s is a symbolic link: refusing to write through it", p)
		case !st.IsDir():
			return fmt.Errorf("%s is not a directory", p)
		}
	}
	return nil
}
