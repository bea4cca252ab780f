package workspace

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// ExpandArtifacts turns the artifact names of a .mlbot.yml into the
// sorted, distinct regular files they name in fsys (a Dir's FS): a name
// without glob metacharacters is a file, or a directory standing for every
// regular file beneath it; a name with them is a pattern of path.Match
// segments in which "**" stands for any number of directories, and each
// match is taken the same way. Names must be relative paths inside fsys;
// a name that matches nothing, or names a FIFO or device, is an error.
func ExpandArtifacts(fsys fs.FS, names []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	// add records p, or every regular file beneath it when it is a
	// directory. fs.Stat follows symbolic links (within the root only), so
	// a link to a file in the working copy counts as that file; a FIFO or
	// device is refused, because reading one could block or never end.
	add := func(name, p string) error {
		st, err := fs.Stat(fsys, p)
		if err != nil {
			return fmt.Errorf("artifact %q: %w", name, err)
		}
		switch {
		case st.Mode().IsRegular():
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
			return nil
		case st.IsDir():
			return fs.WalkDir(fsys, p, func(q string, d fs.DirEntry, err error) error {
				if err != nil {
					return fmt.Errorf("artifact %q: %w", name, err)
				}
				if d.IsDir() {
					return nil
				}
				qs, err := fs.Stat(fsys, q)
				if err != nil {
					return fmt.Errorf("artifact %q: %s: %w", name, q, err)
				}
				if qs.Mode().IsRegular() && !seen[q] {
					seen[q] = true
					out = append(out, q)
				}
				return nil
			})
		default:
			return fmt.Errorf("artifact %q: %s is not a regular file or directory", name, p)
		}
	}
	for _, name := range names {
		pat := path.Clean(strings.TrimSpace(name))
		if !fs.ValidPath(pat) {
			return nil, fmt.Errorf("artifact %q: must be a relative path inside the working copy", name)
		}
		if !hasMeta(pat) {
			if err := add(name, pat); err != nil {
				return nil, err
			}
			continue
		}
		matches, err := glob(fsys, pat)
		if err != nil {
			return nil, fmt.Errorf("artifact %q: %w", name, err)
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("artifact %q matched no files: %w", name, fs.ErrNotExist)
		}
		for _, m := range matches {
			if err := add(name, m); err != nil {
				return nil, err
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[\`) }

// glob matches pat in fsys; unlike fs.Glob it understands "**" as any
// number of directories, the way .mlbot.yml's paths do.
func glob(fsys fs.FS, pat string) ([]string, error) {
	if !strings.Contains(pat, "**") {
		return fs.Glob(fsys, pat)
	}
	segs := strings.Split(pat, "/")
	// Walk only below the pattern's literal prefix: "model/**/*.pt" need
	// not read the whole checkout.
	start := 0
	for start < len(segs) && !hasMeta(segs[start]) {
		start++
	}
	base := "."
	if start > 0 {
		base = path.Join(segs[:start]...)
	}
	if _, err := fs.Stat(fsys, base); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	var out []string
	err := fs.WalkDir(fsys, base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		ok, err := matchSegs(segs, strings.Split(p, "/"))
		if err != nil {
			return err
		}
		if ok && p != "." {
			out = append(out, p)
		}
		return nil
	})
	return out, err
}

// matchSegs matches path segments against pattern segments, "**" matching
// zero or more whole segments.
func matchSegs(pat, parts []string) (bool, error) {
	if len(pat) == 0 {
		return len(parts) == 0, nil
	}
	if pat[0] == "**" {
		for i := 0; i <= len(parts); i++ {
			if ok, err := matchSegs(pat[1:], parts[i:]); ok || err != nil {
				return ok, err
			}
		}
		return false, nil
	}
	if len(parts) == 0 {
		return false, nil
	}
	ok, err := path.Match(pat[0], parts[0])
	if !ok || err != nil {
		return false, err
	}
	return matchSegs(pat[1:], parts[1:])
}

// ArtifactCovers reports whether ExpandArtifacts(fsys, names) could name
// the file at rel (slash-separated) in some fsys: rel is, or lies beneath,
// a name or a match of a pattern. rel must be clean and relative.
func ArtifactCovers(names []string, rel string) bool {
	if !fs.ValidPath(rel) || rel == "." {
		return false
	}
	parts := strings.Split(rel, "/")
	for _, name := range names {
		pat := path.Clean(strings.TrimSpace(name))
		if !fs.ValidPath(pat) {
			continue
		}
		if !hasMeta(pat) {
			if rel == pat || pat == "." || strings.HasPrefix(rel, pat+"/") {
				return true
			}
			continue
		}
		segs := strings.Split(pat, "/")
		for k := 1; k <= len(parts); k++ {
			if ok, err := matchSegs(segs, parts[:k]); ok && err == nil {
				return true
			}
		}
	}
	return false
}
