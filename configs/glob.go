package configs

import (
	"fmt"
	"path"
	"strings"
)

// matchGlob reports whether the slash-separated name matches pattern. A
// segment that is exactly "**" matches any number of segments, including
// none; any other segment is matched by path.Match, so "*" never crosses a
// slash. Malformed segments match nothing; validateGlob reports them earlier.
//
// Matching is dynamic programming over segments rather than backtracking,
// because patterns come from untrusted .mlbot.yml files and a pattern such as
// "**/a/**/a/**/a/..." would otherwise take exponential time.
func matchGlob(pattern, name string) bool {
	pat := strings.Split(pattern, "/")
	segs := strings.Split(name, "/")
	// next[j] holds whether pat[i+1:] matches segs[j:]; cur is the row for pat[i:].
	next := make([]bool, len(segs)+1)
	cur := make([]bool, len(segs)+1)
	next[len(segs)] = true
	for i := len(pat) - 1; i >= 0; i-- {
		for j := len(segs); j >= 0; j-- {
			switch {
			case pat[i] == "**":
				cur[j] = next[j] || (j < len(segs) && cur[j+1])
			case j == len(segs):
				cur[j] = false
			default:
				ok, err := path.Match(pat[i], segs[j])
				cur[j] = err == nil && ok && next[j+1]
			}
		}
		next, cur = cur, next
	}
	return next[0]
}

// validateGlob reports a pattern that path.Match would reject, so that a
// typo such as an unclosed "[" is an error at load time instead of a pattern
// that silently never matches.
func validateGlob(pattern string) error {
	if pattern == "" {
		return fmt.Errorf("empty pattern")
	}
	for _, seg := range strings.Split(pattern, "/") {
		if seg == "**" {
			continue
		}
		if _, err := path.Match(seg, ""); err != nil {
			return fmt.Errorf("bad pattern segment %q: %w", seg, err)
		}
	}
	return nil
}

// cleanRelPath strips the "./" and "/" prefixes people write for paths
// relative to the repository root, so that "./model/**" and "model/**" mean
// the same thing and match git's "model/x.py".
func cleanRelPath(p string) string {
	for {
		switch {
		case strings.HasPrefix(p, "./"):
			p = p[2:]
		case strings.HasPrefix(p, "/"):
			p = p[1:]
		default:
			return p
		}
	}
}
