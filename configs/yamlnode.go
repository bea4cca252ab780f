package configs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

const (
	// maxMergeDepth bounds "<<" merge keys that merge mappings which merge
	// mappings, so a hostile file cannot make the walk deep.
	maxMergeDepth = 8
	// maxPairs bounds the key/value pairs visited in one file. Aliases and
	// merges let a small file describe an exponentially large mapping (the
	// "billion laughs" shape); real configs have a few dozen pairs.
	maxPairs = 10000
	// maxErrors bounds the errors returned, so that a PR comment quoting them
	// stays readable and under the code host's size limit.
	maxErrors = 50
)

// decoder walks a yaml.Node tree and collects positioned errors instead of
// stopping at the first one.
type decoder struct {
	file   string
	errs   ConfigErrors
	budget int
	// overBudget records that maxPairs was hit, so the error is reported once.
	overBudget bool
}

func newDecoder(file string) *decoder {
	return &decoder{file: file, budget: maxPairs}
}

// errorf records a problem at node n, or at the top of the file when n has no
// position (an empty document).
func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	line, col := 1, 1
	if n != nil && n.Line > 0 {
		line, col = n.Line, n.Column
	}
	d.errs = append(d.errs, &ConfigError{File: d.file, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)})
}

// finish returns the collected errors in file order, without the duplicates
// that a mapping merged or aliased in several places produces, or nil.
func (d *decoder) finish() error {
	if len(d.errs) == 0 {
		return nil
	}
	sort.SliceStable(d.errs, func(i, j int) bool {
		a, b := d.errs[i], d.errs[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	out := make(ConfigErrors, 0, len(d.errs))
	seen := make(map[ConfigError]bool)
	for _, e := range d.errs {
		if seen[*e] {
			continue
		}
		seen[*e] = true
		out = append(out, e)
	}
	if len(out) > maxErrors {
		first := out[maxErrors]
		more := len(out) - maxErrors
		out = append(out[:maxErrors], &ConfigError{File: d.file, Line: first.Line, Col: first.Col,
			Msg: fmt.Sprintf("too many errors; %d more not shown", more)})
	}
	return out
}

// yamlLineRE matches yaml.v3 syntax errors, which carry a line but no column.
var yamlLineRE = regexp.MustCompile(`(?s)^yaml: line (\d+): (.*)$`)

// unknownAnchorRE matches the one common yaml.v3 error that has no line.
var unknownAnchorRE = regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`)

// maxSyntaxScan bounds how many lines past yaml.v3's reported line
// syntaxLine re-parses, since each attempt parses the file again.
const maxSyntaxScan = 50

// syntaxError converts a yaml.v3 parse error into a positioned ConfigError.
func (d *decoder) syntaxError(err error, data []byte) {
	msg := err.Error()
	line, col := 1, 1
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		msg = m[2]
		if n, convErr := strconv.Atoi(m[1]); convErr == nil && n > 0 {
			line = syntaxLine(data, n, msg)
		}
		if text, ok := nthLine(data, line); ok {
			col = len(text) - len(strings.TrimLeft(text, " ")) + 1
			// Tabs in indentation are the usual cause of a baffling "found
			// character that cannot start any token"; point at the tab.
			if strings.HasPrefix(text[col-1:], "\t") {
				msg += " (YAML does not allow tabs for indentation; use spaces)"
			}
		}
	} else if m := unknownAnchorRE.FindStringSubmatch(msg); m != nil {
		msg = fmt.Sprintf("alias *%s refers to no anchor &%s defined before it", m[1], m[1])
		if i := bytes.Index(data, []byte("*"+m[1])); i >= 0 {
			line, col = position(data, i)
		}
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	d.errs = append(d.errs, &ConfigError{File: d.file, Line: line, Col: col, Msg: "invalid YAML: " + msg})
}

// syntaxLine finds the line a yaml.v3 syntax error is really on. yaml.v3
// reports the 0-based line of the construct being parsed for parser errors
// (one less than the line a user sees, and often not the offending line), so
// the offending line is at or after the reported one. It is found as the
// first line such that the file cut after it fails with the same message;
// when none does within maxSyntaxScan lines, the reported line stands.
func syntaxLine(data []byte, reported int, msg string) int {
	for l, ln := range yamlLines(data) {
		if l+1 >= reported+maxSyntaxScan {
			break
		}
		if l+1 < reported {
			continue
		}
		if err := parseAll(data[:ln.end]); err != nil {
			if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil && m[2] == msg {
				return l + 1
			}
		}
	}
	return reported
}

// parseAll parses every document of data and returns the first error.
func parseAll(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// isEmptyNull reports whether n is the implicit null yaml.v3 makes of a
// value left out entirely (not even "~" or "null").
func isEmptyNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null" && n.Value == "" && n.Style == 0
}

// nthLine returns the 1-based line n of data without its line break.
func nthLine(data []byte, n int) (string, bool) {
	lines := yamlLines(data)
	if n < 1 || n > len(lines) {
		return "", false
	}
	return string(lines[n-1].text), true
}

// A yamlLine is one line of a file as YAML counts them.
type yamlLine struct {
	text []byte // the line without its break
	end  int    // offset just past the line's break
}

// yamlLines splits data into lines the way yaml.v3 numbers them, so that
// positions computed here agree with the ones yaml.v3 reports: a line
// ends at CR LF, LF, a bare CR, NEL (U+0085), LS (U+2028) or PS (U+2029).
// Splitting at LF alone put the errors of a file with bare-CR line ends
// past its last line (found by FuzzParseRepoConfig).
func yamlLines(data []byte) []yamlLine {
	var out []yamlLine
	start := 0
	for i := 0; i < len(data); {
		n := lineBreak(data[i:])
		if n == 0 {
			i++
			continue
		}
		out = append(out, yamlLine{text: data[start:i], end: i + n})
		i += n
		start = i
	}
	if start < len(data) {
		out = append(out, yamlLine{text: data[start:], end: len(data)})
	}
	return out
}

// lineBreak returns the length of the YAML line break data starts with,
// or 0.
func lineBreak(data []byte) int {
	switch {
	case len(data) >= 2 && data[0] == '\r' && data[1] == '\n':
		return 2
	case len(data) >= 1 && (data[0] == '\r' || data[0] == '\n'):
		return 1
	case len(data) >= 2 && data[0] == 0xC2 && data[1] == 0x85:
		return 2
	case len(data) >= 3 && data[0] == 0xE2 && data[1] == 0x80 && (data[2] == 0xA8 || data[2] == 0xA9):
		return 3
	}
	return 0
}

// position returns the 1-based line and byte column of offset off in data.
func position(data []byte, off int) (line, col int) {
	line, start := 1, 0
	for _, ln := range yamlLines(data) {
		if ln.end > off {
			break
		}
		line, start = line+1, ln.end
	}
	return line, off - start + 1
}

// parseDocument parses data as exactly one YAML document and returns its
// root node, or nil when the file holds no content at all. ok is false when
// a syntax error was recorded.
func (d *decoder) parseDocument(data []byte) (root *yaml.Node, ok bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, true
		}
		d.syntaxError(err, data)
		return nil, false
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		d.syntaxError(err, data)
		return nil, false
	default:
		// A second document is almost always a stray "---" that would
		// otherwise silently discard everything after it.
		// It is reported at its content, or, when it has none (a "---"
		// at the end of the file), at the "---": yaml.v3 places an empty
		// document's implicit null past the end of the file (found by
		// FuzzParseRepoConfig).
		at := &extra
		if len(extra.Content) > 0 && !isEmptyNull(extra.Content[0]) {
			at = extra.Content[0]
		}
		d.errorf(at, "only one YAML document is allowed; remove the extra \"---\" or merge the documents")
	}
	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		return nil, true
	}
	return doc.Content[0], true
}

// resolve follows aliases to the node they name. The parser rejects alias
// cycles, but the loop is bounded anyway.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// isNull reports whether n is absent or an explicit null ("~", "null" or no
// value at all), which mlbot treats like a key that is not there.
func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// describe names what a node holds, for "X expected, got Y" messages.
func describe(n *yaml.Node) string {
	n = resolve(n)
	switch {
	case n == nil || n.Kind == 0:
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	}
	switch n.ShortTag() {
	case "!!null":
		return "nothing"
	case "!!str":
		return fmt.Sprintf("string %q", n.Value)
	case "!!int", "!!float":
		return "number " + n.Value
	case "!!bool":
		return "boolean " + n.Value
	default:
		return fmt.Sprintf("%s %q", n.ShortTag(), n.Value)
	}
}

// pair is one key/value of a mapping, both as written in the file.
type pair struct {
	key, value *yaml.Node
}

// mapping returns the key/value pairs of n in file order, following aliases
// and "<<" merge keys, and reports duplicate keys, which yaml.v3 does not
// reject when building a node tree.
func (d *decoder) mapping(n *yaml.Node, where string) ([]pair, bool) {
	m := resolve(n)
	if m == nil || m.Kind != yaml.MappingNode {
		d.errorf(n, "%s: mapping expected, got %s", displayPath(where), describe(n))
		return nil, false
	}
	return d.pairs(m, where, 0), true
}

func (d *decoder) pairs(m *yaml.Node, where string, depth int) []pair {
	// Explicit keys win over merged ones wherever they appear, as the YAML
	// merge-key convention specifies, so collect them first.
	explicit := make(map[string]*yaml.Node)
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := resolve(m.Content[i])
		if isMergeKey(k) {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.errorf(m.Content[i], "%s: keys must be plain strings, got %s", displayPath(where), describe(k))
			continue
		}
		if prev, dup := explicit[k.Value]; dup {
			d.errorf(m.Content[i], "duplicate key %q%s (first set at line %d)", k.Value, inWhere(where), prev.Line)
			continue
		}
		explicit[k.Value] = m.Content[i]
	}
	var out []pair
	taken := make(map[string]bool)
	for i := 0; i+1 < len(m.Content); i += 2 {
		if d.budget--; d.budget < 0 {
			if !d.overBudget {
				d.overBudget = true
				d.errorf(m.Content[i], "file is too complex: more than %d keys after expanding aliases and merges", maxPairs)
			}
			return out
		}
		k, v := m.Content[i], m.Content[i+1]
		rk := resolve(k)
		if isMergeKey(rk) {
			if depth >= maxMergeDepth {
				d.errorf(k, "%s: merge keys nested more than %d deep", displayPath(where), maxMergeDepth)
				continue
			}
			for _, src := range mergeSources(v) {
				rs := resolve(src)
				if rs == nil || rs.Kind != yaml.MappingNode {
					d.errorf(src, "%s: \"<<\" merges a mapping or a list of mappings, got %s", displayPath(where), describe(src))
					continue
				}
				for _, p := range d.pairs(rs, where, depth+1) {
					name := resolve(p.key).Value
					if _, ok := explicit[name]; ok || taken[name] {
						continue
					}
					taken[name] = true
					out = append(out, p)
				}
			}
			continue
		}
		if rk.Kind != yaml.ScalarNode || explicit[rk.Value] != k {
			continue // reported above
		}
		taken[rk.Value] = true
		out = append(out, pair{key: k, value: v})
	}
	return out
}

func isMergeKey(k *yaml.Node) bool {
	return k != nil && k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge"
}

// mergeSources lists the mappings a "<<" value names: one mapping or alias,
// or a list of them, earlier ones taking precedence.
func mergeSources(v *yaml.Node) []*yaml.Node {
	if r := resolve(v); r != nil && r.Kind == yaml.SequenceNode {
		return r.Content
	}
	return []*yaml.Node{v}
}

// field is one known key of a mapping and how to decode its value.
type field struct {
	name string
	// decode is called with the key and its non-null value.
	decode func(key, value *yaml.Node)
}

// object decodes mapping n against fields, reporting unknown keys with a
// suggestion. It returns every known key present, including those whose
// value is null, so callers can tell "missing" from "empty".
func (d *decoder) object(n *yaml.Node, where string, fields []field) (map[string]pair, bool) {
	ps, ok := d.mapping(n, where)
	if !ok {
		return nil, false
	}
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	present := make(map[string]pair)
	for _, p := range ps {
		name := resolve(p.key).Value
		i := indexOf(names, name)
		if i < 0 {
			d.errorf(p.key, "unknown key %q%s%s", name, inWhere(where), didYouMean(name, names))
			continue
		}
		present[name] = p
		if !isNull(p.value) {
			fields[i].decode(p.key, p.value)
		}
	}
	return present, true
}

// require reports each of names that is absent from present, at the node
// that introduced the mapping, and a required key given no value at its key.
func (d *decoder) require(present map[string]pair, at *yaml.Node, where string, names ...string) {
	for _, name := range names {
		p, ok := present[name]
		switch {
		case !ok:
			d.errorf(at, "missing required key %q%s", name, inWhere(where))
		case isNull(p.value):
			d.errorf(p.key, "%s: a value is required", joinPath(where, name))
		}
	}
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// joinPath builds the dotted path used to name a value in messages.
func joinPath(where, key string) string {
	if where == "" {
		return key
	}
	return where + "." + key
}

// inWhere renders the " in pipeline" part of a message; the top level of the
// file has no name of its own.
func inWhere(where string) string {
	if where == "" {
		return " at top level"
	}
	return " in " + where
}

func displayPath(where string) string {
	if where == "" {
		return "top level"
	}
	return where
}

// str decodes a string. Numbers and booleans are accepted as their text,
// as yaml.v3 does for string fields: "command: true" is a valid command.
func (d *decoder) str(n *yaml.Node, path string) (string, bool) {
	v := resolve(n)
	if v == nil || v.Kind != yaml.ScalarNode || v.ShortTag() == "!!null" {
		d.errorf(n, "%s: string expected, got %s", path, describe(n))
		return "", false
	}
	return v.Value, true
}

// number decodes a finite int or float. Quoted numbers are refused, since a
// gate of "0.9" in quotes is more likely a mistake than intent.
func (d *decoder) number(n *yaml.Node, path string) (*float64, bool) {
	v := resolve(n)
	if v == nil || v.Kind != yaml.ScalarNode || (v.ShortTag() != "!!int" && v.ShortTag() != "!!float") {
		d.errorf(n, "%s: number expected, got %s", path, describe(n))
		return nil, false
	}
	var f float64
	if err := v.Decode(&f); err != nil {
		d.errorf(n, "%s: number expected: %v", path, err)
		return nil, false
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		d.errorf(n, "%s: finite number expected, got %s", path, v.Value)
		return nil, false
	}
	return &f, true
}

// integer decodes a whole number.
func (d *decoder) integer(n *yaml.Node, path string) (int, bool) {
	v := resolve(n)
	var i int
	if v == nil || v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int" || v.Decode(&i) != nil {
		d.errorf(n, "%s: whole number expected, got %s", path, describe(n))
		return 0, false
	}
	return i, true
}

// boolean decodes true or false. YAML 1.1 spellings such as "yes" and "on"
// are refused rather than guessed, because yaml.v3 reads them as strings.
func (d *decoder) boolean(n *yaml.Node, path string) (bool, bool) {
	v := resolve(n)
	var b bool
	if v == nil || v.Kind != yaml.ScalarNode || v.ShortTag() != "!!bool" || v.Decode(&b) != nil {
		d.errorf(n, "%s: boolean expected (true or false), got %s", path, describe(n))
		return false, false
	}
	return b, true
}

// duration decodes a Go duration string such as "2h" or "90s".
func (d *decoder) duration(n *yaml.Node, path string) (time.Duration, bool) {
	s, ok := d.str(n, path)
	if !ok {
		return 0, false
	}
	dur, err := time.ParseDuration(s)
	if err != nil {
		d.errorf(n, "%s: invalid duration %q: use a number with a unit, like \"2h\", \"90m\" or \"30s\"", path, s)
		return 0, false
	}
	return dur, true
}

// strList decodes a list of strings. check, when not nil, validates each item
// and reports its own error; items it refuses are dropped.
func (d *decoder) strList(n *yaml.Node, path string, check func(item string, at *yaml.Node) bool) ([]string, bool) {
	v := resolve(n)
	if v == nil || v.Kind != yaml.SequenceNode {
		hint := ""
		if v != nil && v.Kind == yaml.ScalarNode {
			hint = fmt.Sprintf(" (write [%s])", v.Value)
		}
		d.errorf(n, "%s: list expected, got %s%s", path, describe(n), hint)
		return nil, false
	}
	var out []string
	ok := true
	for i, item := range v.Content {
		s, good := d.str(item, fmt.Sprintf("%s[%d]", path, i))
		if good && check != nil {
			good = check(s, item)
		}
		if !good {
			ok = false
			continue
		}
		out = append(out, s)
	}
	return out, ok
}
