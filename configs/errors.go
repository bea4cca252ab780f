package configs

import (
	"fmt"
	"strings"
)

// ConfigError is one problem found in a configuration file, located at the
// YAML node that caused it so that a user can jump straight to it.
type ConfigError struct {
	// File is the name the caller gave for the file, such as ".mlbot.yml".
	File string
	// Line and Col are 1-based; Col is 1 when the YAML parser only reports a line.
	Line, Col int
	// Msg describes the problem and, where it can, how to fix it.
	Msg string
}

// Error formats the problem as "file:line:col: msg", the form editors and CI
// logs turn into a link.
func (e *ConfigError) Error() string {
	if e.File == "" {
		return fmt.Sprintf("%d:%d: %s", e.Line, e.Col, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// ConfigErrors is every problem found in one file, in file order. Parsing
// reports all of them at once so a user fixes a file in one round trip rather
// than one push per mistake.
type ConfigErrors []*ConfigError

// Error joins the individual errors with newlines.
func (es ConfigErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes the individual errors so that errors.As can find a
// *ConfigError inside a ConfigErrors.
func (es ConfigErrors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}
