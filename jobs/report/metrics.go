package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	"gopkg.in/yaml.v3"

	"github.com/mlbot/mlbot/internal/workspace"
)

// MaxFileSize is the largest metrics file ReadFiles accepts. Metric files
// come from untrusted training code, so a runaway or hostile file must not
// exhaust the worker's memory.
const MaxFileSize = 10 << 20

// maxNodes bounds how many YAML nodes Flatten visits. Aliases let a few
// kilobytes of YAML expand into billions of nodes ("billion laughs"), and
// the parse tree is walked by hand here, so yaml.v3's own guard does not
// apply.
const maxNodes = 1_000_000

// maxDepth bounds nesting, for the same reason as maxNodes and to keep the
// recursion off the stack limit.
const maxDepth = 256

// Flatten parses a metrics document, JSON or YAML, into flat metric names
// and values. Nested mappings join their keys with dots ("a.b.c") and list
// items use their index ("per_class.3"). Only numbers are kept: booleans,
// strings and nulls are left out, and so are NaN and infinities, because
// none of them can be diffed or gated. A top level that is not a mapping is
// an error.
func Flatten(data []byte) (map[string]float64, error) {
	out := map[string]float64{}
	trimmed := bytes.TrimSpace(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")))
	if looksJSON(trimmed) {
		// JSON goes through encoding/json rather than the YAML parser:
		// yaml.v3 rejects tab indentation that JSON allows, reads a
		// leading-zero number as octal, and takes `{"a": }` as a null.
		if err := flattenJSON(trimmed, out); err != nil {
			return nil, fmt.Errorf("invalid JSON: %w", err)
		}
		return out, nil
	}
	if err := flattenYAML(data, out); err != nil {
		return nil, err
	}
	return out, nil
}

// looksJSON tells a JSON object from a YAML flow mapping ("{a: 1}"): JSON
// keys are quoted.
func looksJSON(data []byte) bool {
	if len(data) == 0 || data[0] != '{' {
		return false
	}
	rest := bytes.TrimLeft(data[1:], " \t\r\n")
	return len(rest) == 0 || rest[0] == '"' || rest[0] == '}'
}

// flattenJSON walks the document token by token, in document order, so
// that when two paths flatten to one name ({"a.b": 1, "a": {"b": 2}}) the
// later one wins, as it does in YAML and for a repeated JSON key. Decoding
// into a map first, as this once did, let Go's random map order pick the
// winner: the same file could gate differently from one run to the next
// (found while writing FuzzFlatten's determinism property).
func flattenJSON(data []byte, out map[string]float64) error {
	dec := json.NewDecoder(bytes.NewReader(jsonNonFinite(data)))
	dec.UseNumber() // keeps 1e-3 and 20-digit integers exact until ParseFloat
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != json.Delim('{') {
		return errors.New("top level is not a mapping")
	}
	if err := walkJSON(dec, "", tok, out, 0); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("unexpected data after the top-level object")
	}
	return nil
}

// walkJSON flattens the value that starts with tok, reading the rest of it
// from dec. Nesting is bounded by maxDepth, as in YAML: Token, unlike
// Decode, has no bound of its own.
func walkJSON(dec *json.Decoder, prefix string, tok json.Token, out map[string]float64, depth int) error {
	switch v := tok.(type) {
	case json.Delim:
		if depth > maxDepth {
			return fmt.Errorf("nested deeper than %d levels", maxDepth)
		}
		for i := 0; dec.More(); i++ {
			key := strconv.Itoa(i)
			if v == '{' {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				key, _ = k.(string) // the decoder only lets strings be keys
			}
			next, err := dec.Token()
			if err != nil {
				return err
			}
			if err := walkJSON(dec, join(prefix, key), next, out, depth+1); err != nil {
				return err
			}
		}
		_, err := dec.Token() // the closing delimiter
		return err
	case json.Number:
		// ParseFloat returns ±Inf with ErrRange for 1e400; finite() drops it.
		f, _ := strconv.ParseFloat(string(v), 64)
		if finite(f) && prefix != "" {
			out[prefix] = f
		}
	}
	return nil
}

// jsonNonFinite replaces the bare NaN, Infinity and -Infinity tokens that
// Python's json.dump writes by default with null, so a metrics file with
// one diverged value still yields its other metrics.
func jsonNonFinite(data []byte) []byte {
	if !bytes.Contains(data, []byte("NaN")) && !bytes.Contains(data, []byte("Infinity")) {
		return data
	}
	var b bytes.Buffer
	inString, escaped := false, false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			b.WriteByte(c)
			continue
		}
		if c == '"' {
			inString = true
			b.WriteByte(c)
			continue
		}
		matched := false
		for _, tok := range []string{"-Infinity", "Infinity", "NaN"} {
			if bytes.HasPrefix(data[i:], []byte(tok)) {
				b.WriteString("null")
				i += len(tok) - 1
				matched = true
				break
			}
		}
		if !matched {
			b.WriteByte(c)
		}
	}
	return b.Bytes()
}

func flattenYAML(data []byte, out map[string]float64) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("invalid YAML: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return errors.New("empty document; want a mapping of metrics")
	}
	top := resolveAlias(doc.Content[0])
	if top.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: top level is not a mapping", top.Line)
	}
	w := yamlWalker{out: out}
	return w.walk("", top, 0)
}

type yamlWalker struct {
	out   map[string]float64
	nodes int
}

func (w *yamlWalker) walk(prefix string, n *yaml.Node, depth int) error {
	n = resolveAlias(n)
	w.nodes++
	if w.nodes > maxNodes {
		return fmt.Errorf("more than %d values (alias expansion?)", maxNodes)
	}
	if depth > maxDepth {
		return fmt.Errorf("line %d: nested deeper than %d levels", n.Line, maxDepth)
	}
	switch n.Kind {
	case yaml.MappingNode:
		// Merge keys ("<<: *defaults") are walked first so the mapping's
		// own keys override them, as YAML specifies.
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i]; k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
				if err := w.walk(prefix, n.Content[i+1], depth+1); err != nil {
					return err
				}
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := resolveAlias(n.Content[i])
			if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" {
				continue // a list or mapping as a key names no metric
			}
			if err := w.walk(join(prefix, k.Value), n.Content[i+1], depth+1); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if err := w.walk(join(prefix, strconv.Itoa(i)), c, depth+1); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		if f, ok := yamlNumber(n); ok && prefix != "" {
			w.out[prefix] = f
		}
	}
	return nil
}

// yamlNumber converts an int or float scalar; quoted numbers are strings
// and stay out.
func yamlNumber(n *yaml.Node) (float64, bool) {
	switch n.ShortTag() {
	case "!!int", "!!float":
	default:
		return 0, false
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return 0, false
	}
	var f float64
	switch v := v.(type) {
	case int:
		f = float64(v)
	case int64:
		f = float64(v)
	case uint64:
		f = float64(v)
	case float64:
		f = v
	default:
		return 0, false
	}
	return f, finite(f)
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	// Bounded: yaml.v3 rejects alias cycles while parsing, and a chain of
	// aliases to aliases is at most as long as the document.
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// ReadFiles reads the named metrics files from dir and merges their
// flattened metrics; a metric in a later file replaces the same name from
// an earlier one. dir is a checkout in which untrusted code ran, and the
// worker may hold other secrets on disk, so every file is read through
// package workspace: names must stay inside dir (absolute paths, ".."
// escapes and symbolic links leaving dir, in any component, are refused),
// each file must be a regular file when opened (a FIFO, even one swapped in
// while mlbot reads, is refused rather than waited on) of at most
// MaxFileSize bytes, and reading stops when ctx ends. Errors name the
// offending file.
func ReadFiles(ctx context.Context, dir string, files []string) (map[string]float64, error) {
	out := map[string]float64{}
	if len(files) == 0 {
		return out, nil
	}
	ws, err := workspace.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("metrics directory: %w", err)
	}
	defer ws.Close()
	for _, name := range files {
		data, err := ws.ReadFile(ctx, name, MaxFileSize)
		if err != nil {
			return nil, fmt.Errorf("metrics file %q: %w", name, err)
		}
		m, err := Flatten(data)
		if err != nil {
			return nil, fmt.Errorf("metrics file %q: %w", name, err)
		}
		for k, v := range m {
			out[k] = v
		}
	}
	return out, nil
}
