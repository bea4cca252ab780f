package report

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/mlbot/mlbot/internal/workspace"
)

// Limits of per-example results. They come from untrusted evaluation code
// and are kept with the run in Redis, so each is bounded.
const (
	// MaxExamplesFileBytes bounds the examples file (pipeline.examples).
	MaxExamplesFileBytes = 32 << 20
	// MaxExamples bounds the examples (lines) of one file.
	MaxExamples = 1_000_000
	// MaxExampleFields bounds the distinct numeric fields of one file.
	MaxExampleFields = 32
	// MaxExampleIDLen bounds one id, in bytes.
	MaxExampleIDLen = 256
	// MaxExamplesBlobBytes bounds the encoded, compressed results stored
	// with a run (EncodeExamples).
	MaxExamplesBlobBytes = 32 << 20
	// maxExampleLine bounds one line of the file.
	maxExampleLine = 1 << 20
)

// Examples are a run's per-example results: for each example its id and
// the value of each numeric field. Fields[name][i] belongs to IDs[i].
type Examples struct {
	IDs    []string
	Fields map[string][]float64
	// Partial names the fields left out because some example lacks them
	// (or has a non-finite value), with how many examples do: a mean over
	// a subset would not be the metric.
	Partial map[string]int
}

// Len is the number of examples.
func (e *Examples) Len() int { return len(e.IDs) }

// FieldNames returns the fields in name order.
func (e *Examples) FieldNames() []string {
	names := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// Means returns each field's mean over the examples: the metric it
// stands for.
func (e *Examples) Means() map[string]float64 {
	out := make(map[string]float64, len(e.Fields))
	for k, v := range e.Fields {
		var s float64
		for _, x := range v {
			s += x
		}
		out[k] = s / float64(len(v))
	}
	return out
}

// ReadExamples reads the examples file name from dir through package
// workspace, like ReadFiles: inside dir only, a regular file of at most
// MaxExamplesFileBytes.
func ReadExamples(ctx context.Context, dir, name string) (*Examples, error) {
	ws, err := workspace.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("examples directory: %w", err)
	}
	defer ws.Close()
	data, err := ws.ReadFile(ctx, name, MaxExamplesFileBytes)
	var tooLarge *workspace.TooLargeError
	if errors.As(err, &tooLarge) {
		return nil, fmt.Errorf("examples file %q: %w; the limit is %d MiB: write fewer examples or fields", name, err, MaxExamplesFileBytes>>20)
	}
	if err != nil {
		return nil, fmt.Errorf("examples file %q: %w", name, err)
	}
	e, err := ParseExamples(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("examples file %q: %w", name, err)
	}
	return e, nil
}

// ParseExamples reads JSON Lines: one object per non-blank line, with an
// "id" (a string, or a number, which stands for its shortest decimal
// text) unique in the file, and numeric fields. Nested objects flatten to
// "a.b" like metric files; strings, booleans and nulls are left out. A
// field missing from some example is left out too and named in Partial.
func ParseExamples(r io.Reader) (*Examples, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxExampleLine)
	e := &Examples{Fields: map[string][]float64{}}
	seen := map[string]int{}
	counts := map[string]int{}
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if len(e.IDs) == MaxExamples {
			return nil, fmt.Errorf("more than %d examples", MaxExamples)
		}
		id, values, err := parseExample(b)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if first, dup := seen[id]; dup {
			return nil, fmt.Errorf("line %d: id %s repeats line %d", line, strconv.Quote(id), first)
		}
		seen[id] = line
		i := len(e.IDs)
		e.IDs = append(e.IDs, id)
		for k, v := range values {
			col, ok := e.Fields[k]
			if !ok {
				if len(e.Fields) == MaxExampleFields {
					return nil, fmt.Errorf("line %d: more than %d numeric fields", line, MaxExampleFields)
				}
				col = make([]float64, i, max(i+1, 1024))
				for j := range col {
					col[j] = math.NaN()
				}
			}
			for len(col) < i {
				col = append(col, math.NaN())
			}
			e.Fields[k] = append(col, v)
			counts[k]++
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("line %d: longer than %d bytes", line+1, maxExampleLine)
		}
		return nil, err
	}
	if len(e.IDs) == 0 {
		return nil, errors.New("no examples")
	}
	for k, n := range counts {
		if n < len(e.IDs) {
			if e.Partial == nil {
				e.Partial = map[string]int{}
			}
			e.Partial[k] = n
			delete(e.Fields, k)
		}
	}
	return e, nil
}

// parseExample reads one line's id and numeric fields.
func parseExample(b []byte) (string, map[string]float64, error) {
	dec := json.NewDecoder(bytes.NewReader(jsonNonFinite(b)))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return "", nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", nil, errors.New("more than one JSON value on the line")
	}
	raw, ok := obj["id"]
	if !ok {
		return "", nil, errors.New(`no "id"`)
	}
	var id string
	switch v := raw.(type) {
	case string:
		id = v
	case json.Number:
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil || !finite(f) {
			return "", nil, fmt.Errorf("id %s is not a usable number", v)
		}
		id = strconv.FormatFloat(f, 'f', -1, 64)
	default:
		return "", nil, errors.New(`"id" must be a string or a number`)
	}
	if id == "" || len(id) > MaxExampleIDLen {
		return "", nil, fmt.Errorf("id must be 1 to %d bytes", MaxExampleIDLen)
	}
	// The fields are flattened as a metrics file is (nested keys a.b),
	// in document order; the id is not a field.
	values := map[string]float64{}
	if err := flattenJSON(b, values); err != nil {
		return "", nil, fmt.Errorf("not a JSON object: %w", err)
	}
	delete(values, "id")
	return id, values, nil
}

// blobMagic starts an encoded Examples, naming the format's version.
const blobMagic = "mlbot-examples-1\n"

// Column encodings of a field.
const (
	colFloat64 = 0 // little-endian IEEE 754, one per example
	colBits    = 1 // every value 0 or 1: one bit per example
)

// EncodeExamples returns e in the compact form stored with a run: a
// column per field (a bit per example for fields that are all 0 or 1),
// gzip-compressed. It fails when the result is over MaxExamplesBlobBytes.
func EncodeExamples(e *Examples) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(blobMagic)
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	w := bufio.NewWriter(zw)
	var tmp [binary.MaxVarintLen64]byte
	uvarint := func(x uint64) { w.Write(tmp[:binary.PutUvarint(tmp[:], x)]) }
	str := func(s string) { uvarint(uint64(len(s))); w.WriteString(s) }
	uvarint(uint64(len(e.IDs)))
	for _, id := range e.IDs {
		str(id)
	}
	names := e.FieldNames()
	uvarint(uint64(len(names)))
	for _, name := range names {
		str(name)
		col := e.Fields[name]
		if isBits(col) {
			w.WriteByte(colBits)
			packed := make([]byte, (len(col)+7)/8)
			for i, v := range col {
				if v == 1 {
					packed[i/8] |= 1 << (i % 8)
				}
			}
			w.Write(packed)
			continue
		}
		w.WriteByte(colFloat64)
		var f [8]byte
		for _, v := range col {
			binary.LittleEndian.PutUint64(f[:], math.Float64bits(v))
			w.Write(f[:])
		}
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if buf.Len() > MaxExamplesBlobBytes {
		return nil, fmt.Errorf("the per-example results take %d MiB once compressed, over the limit of %d MiB: write fewer examples or fields",
			buf.Len()>>20, MaxExamplesBlobBytes>>20)
	}
	return buf.Bytes(), nil
}

func isBits(col []float64) bool {
	for _, v := range col {
		if v != 0 && v != 1 {
			return false
		}
	}
	return true
}

// DecodeExamples reads what EncodeExamples wrote, within the limits of
// ParseExamples.
func DecodeExamples(blob []byte) (*Examples, error) {
	rest, ok := bytes.CutPrefix(blob, []byte(blobMagic))
	if !ok {
		return nil, errors.New("examples: not an encoded examples blob")
	}
	zr, err := gzip.NewReader(bytes.NewReader(rest))
	if err != nil {
		return nil, fmt.Errorf("examples: %w", err)
	}
	// The largest a valid blob decompresses to: ids, names and a float64
	// column per field for MaxExamples examples.
	const most = MaxExamples*(MaxExampleIDLen+2+8*MaxExampleFields) + MaxExampleFields*(MaxExampleIDLen+3) + 16
	r := bufio.NewReader(io.LimitReader(zr, most))
	fail := func(what string, err error) (*Examples, error) {
		return nil, fmt.Errorf("examples: %s: %w", what, err)
	}
	str := func(limit uint64) (string, error) {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return "", err
		}
		if n > limit {
			return "", fmt.Errorf("length %d over %d", n, limit)
		}
		b := make([]byte, n)
		_, err = io.ReadFull(r, b)
		return string(b), err
	}
	n, err := binary.ReadUvarint(r)
	if err != nil || n == 0 || n > MaxExamples {
		return fail("count", errors.Join(err, fmt.Errorf("%d examples", n)))
	}
	e := &Examples{IDs: make([]string, n), Fields: map[string][]float64{}}
	for i := range e.IDs {
		if e.IDs[i], err = str(MaxExampleIDLen); err != nil {
			return fail("id", err)
		}
	}
	nf, err := binary.ReadUvarint(r)
	if err != nil || nf > MaxExampleFields {
		return fail("fields", errors.Join(err, fmt.Errorf("%d fields", nf)))
	}
	for range nf {
		name, err := str(1 << 16)
		if err != nil {
			return fail("field name", err)
		}
		kind, err := r.ReadByte()
		if err != nil {
			return fail(name, err)
		}
		col := make([]float64, n)
		switch kind {
		case colBits:
			packed := make([]byte, (n+7)/8)
			if _, err := io.ReadFull(r, packed); err != nil {
				return fail(name, err)
			}
			for i := range col {
				if packed[i/8]&(1<<(i%8)) != 0 {
					col[i] = 1
				}
			}
		case colFloat64:
			var f [8]byte
			for i := range col {
				if _, err := io.ReadFull(r, f[:]); err != nil {
					return fail(name, err)
				}
				col[i] = math.Float64frombits(binary.LittleEndian.Uint64(f[:]))
			}
		default:
			return fail(name, fmt.Errorf("unknown column kind %d", kind))
		}
		e.Fields[name] = col
	}
	return e, nil
}

// quoteID shows an example id in a note: quoted, cut at 40 characters.
func quoteID(id string) string {
	if textLen(id) > 40 {
		id = cutText(id, 39) + "…"
	}
	return strconv.Quote(strings.ToValidUTF8(id, "\uFFFD"))
}
