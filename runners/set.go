package runners

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Local is the name of the runner that runs steps on the worker's own
// machine, each in a sandbox; `runner: local` in .mlbot.yml, and the
// default.
const Local = "local"

// ErrUnknownRunner is wrapped by Set.Get's error for a name the set does
// not hold.
var ErrUnknownRunner = errors.New("unknown runner")

// Set maps the runner names a repository may ask for in .mlbot.yml
// ("local", later "docker", "kubernetes") to the runners of this process.
// The composition root builds it once; it is the one place a name becomes
// a runner.
type Set map[string]Runner

// Get returns the runner named name, or an error wrapping
// ErrUnknownRunner that names the runners the set holds.
func (s Set) Get(name string) (Runner, error) {
	if r, ok := s[name]; ok && r != nil {
		return r, nil
	}
	known := "none"
	if names := s.Names(); len(names) > 0 {
		known = strings.Join(names, ", ")
	}
	return nil, fmt.Errorf("%w %q: this mlbot has %s", ErrUnknownRunner, name, known)
}

// Names returns the names of the set's runners, sorted.
func (s Set) Names() []string {
	names := make([]string, 0, len(s))
	for name, r := range s {
		if r != nil {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}
