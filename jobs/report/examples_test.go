package report

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseExamples(t *testing.T) {
	e, err := ParseExamples(strings.NewReader(`{"id": "img-17", "accuracy": 1, "loss": 0.25}

{"id": 18, "accuracy": 0, "loss": 0.75, "label": "cat", "ok": true, "nested": {"f1": 0.5}}
{"id": 19.0, "accuracy": 1, "loss": NaN, "nested": {"f1": 1}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(e.IDs, []string{"img-17", "18", "19"}) {
		t.Errorf("ids %q", e.IDs)
	}
	if !reflect.DeepEqual(e.Fields["accuracy"], []float64{1, 0, 1}) {
		t.Errorf("accuracy %v", e.Fields["accuracy"])
	}
	// loss is not finite in one example and nested.f1 missing in one:
	// both are left out, and said to be.
	if _, ok := e.Fields["loss"]; ok {
		t.Errorf("loss kept: %v", e.Fields["loss"])
	}
	if !reflect.DeepEqual(e.Partial, map[string]int{"loss": 2, "nested.f1": 2}) {
		t.Errorf("partial %v", e.Partial)
	}
	if m := e.Means(); math.Abs(m["accuracy"]-2.0/3) > 1e-12 || len(m) != 1 {
		t.Errorf("means %v", m)
	}

	for _, tc := range []struct{ name, in, want string }{
		{"no id", `{"accuracy": 1}`, `line 1: no "id"`},
		{"bad id", `{"id": [1], "accuracy": 1}`, `line 1: "id" must be a string or a number`},
		{"empty id", `{"id": "", "accuracy": 1}`, "line 1: id must be 1 to 256 bytes"},
		{"long id", `{"id": "` + strings.Repeat("x", 300) + `"}`, "line 1: id must be 1 to 256 bytes"},
		{"duplicate id", "{\"id\": 1}\n{\"id\": \"2\"}\n{\"id\": 1.0}", "line 3: id \"1\" repeats line 1"},
		{"not JSON", "{\"id\": 1}\nnot json", "line 2: not a JSON object"},
		{"two values", `{"id": 1} {"id": 2}`, "line 1: more than one JSON value"},
		{"a list", `[1, 2]`, "line 1: not a JSON object"},
		{"empty", "\n\n", "no examples"},
		{"too many fields", func() string {
			var b strings.Builder
			b.WriteString(`{"id": 1`)
			for i := range MaxExampleFields + 1 {
				fmt.Fprintf(&b, `, "f%d": 1`, i)
			}
			return b.String() + "}"
		}(), "more than 32 numeric fields"},
		{"long line", `{"id": 1, "x": "` + strings.Repeat("a", maxExampleLine) + `"}`, "line 1: longer than"},
	} {
		if _, err := ParseExamples(strings.NewReader(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestReadExamplesLimit(t *testing.T) {
	dir := t.TempDir()
	big := bytes.Repeat([]byte(`{"id": 1}`+"\n"), MaxExamplesFileBytes/10+1)
	if err := os.WriteFile(filepath.Join(dir, "ex.jsonl"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadExamples(context.Background(), dir, "ex.jsonl")
	if err == nil || !strings.Contains(err.Error(), "the limit is 32 MiB") {
		t.Errorf("error %v, want the 32 MiB limit named", err)
	}
	if _, err := ReadExamples(context.Background(), dir, "../ex.jsonl"); err == nil {
		t.Error("a path leaving the checkout was read")
	}
	if _, err := ReadExamples(context.Background(), dir, "missing.jsonl"); err == nil || !strings.Contains(err.Error(), "missing.jsonl") {
		t.Errorf("missing file: %v", err)
	}
}

func TestEncodeExamples(t *testing.T) {
	const n = 100_000
	e := &Examples{IDs: make([]string, n), Fields: map[string][]float64{"accuracy": make([]float64, n), "loss": make([]float64, n)}}
	for i := range n {
		e.IDs[i] = fmt.Sprintf("img-%06d", i)
		e.Fields["accuracy"][i] = float64(i % 3 % 2)
		e.Fields["loss"][i] = 1 / float64(i+1)
	}
	blob, err := EncodeExamples(e)
	if err != nil {
		t.Fatal(err)
	}
	// Ids compress; a 0/1 field is a bit per example; a float column 8 bytes.
	if len(blob) > 1_200_000 {
		t.Errorf("100,000 examples × 2 fields take %d bytes", len(blob))
	}
	got, err := DecodeExamples(blob)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.IDs, e.IDs) || !reflect.DeepEqual(got.Fields, e.Fields) {
		t.Error("decoded examples differ from the encoded ones")
	}
	for _, bad := range [][]byte{nil, []byte("garbage"), []byte(blobMagic + "not gzip"), blob[:len(blob)/2]} {
		if _, err := DecodeExamples(bad); err == nil {
			t.Errorf("decoding %d bytes of a broken blob succeeded", len(bad))
		}
	}
}

// TestReadExamplesStaysInTheWorkspace attacks the examples path the way a
// pull request's .mlbot.yml could: a symlink and a ../ path to a file of
// the worker's outside the checkout are refused, never read into the run.
func TestReadExamplesStaysInTheWorkspace(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret.jsonl")
	if err := os.WriteFile(secret, []byte(`{"id": 1, "accuracy": 1}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	dir := filepath.Join(root, "work")
	if err := os.MkdirAll(filepath.Join(dir, "eval"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, "eval", "examples.jsonl")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"eval/examples.jsonl", "../../" + filepath.Base(outside) + "/secret.jsonl", secret} {
		if e, err := ReadExamples(context.Background(), dir, name); err == nil {
			t.Errorf("ReadExamples(%q) read a file outside the workspace: %d examples", name, e.Len())
		}
	}
}
