package report

import (
	"encoding/json"
	"maps"
	"math"
	"testing"
)

// FuzzFlatten feeds Flatten the inputs of TestFlatten (JSON and YAML,
// nested, with non-numbers, Python's NaN and Infinity, anchors and merge
// keys, malformed documents; not the alias bomb, whose every run walks a
// million nodes and would slow the fuzzer to a crawl) and what the fuzzer
// derives from them. A result has non-empty names and finite values only,
// is the same on every call (a metric's value must not depend on Go's map
// order), and, written back out as a flat JSON object, flattens to
// itself.
func FuzzFlatten(f *testing.F) {
	for _, s := range []string{
		`{"accuracy": 0.95, "loss": 0.12}`,
		`{"lr": 1e-3, "tiny": 2.5E-7, "steps": 12345678901234567890, "n": 60000}`,
		`{"eval": {"top": {"acc": 0.9}}, "per_class": [0.5, 0.75, {"f1": 0.25}]}`,
		`{"ok": true, "model": "resnet", "note": null, "acc": 1, "tags": ["a", 2]}`,
		`{"loss": NaN, "grad": Infinity, "low": -Infinity, "acc": 0.5, "s": "NaN, Infinity"}`,
		`{"huge": 1e400, "acc": 0.5}`,
		"{\n\t\"acc\": 0.5,\n\t\"m\": {\n\t\t\"f1\": 0.25\n\t}\n}\n",
		"\xef\xbb\xbf{\"acc\": 0.5}",
		"accuracy: 0.95\neval:\n  top5: 0.99\n  loss: 1e-3\n",
		"per_class:\n  - 0.1\n  - 0.2\n  - {f1: 0.3}\n",
		"quoted: \"0.5\"\nflag: yes\non: true\nempty: ~\nnan: .nan\ninf: -.inf\nint: 7\n",
		"defaults: &d {a: 1, b: 2}\nrun:\n  <<: *d\n  b: 3\ncopy: *d\n",
		"{acc: 0.5, loss: 2}",
		"{}",
		`[1, 2]`,
		"42\n",
		"",
		`{"acc": }`,
		`{"acc": 1} {"b": 2}`,
		"acc: [1, 2\n",
		"a: &a [1, 2]\nb: [*a, *a]\n",
		`{"a.b": 1, "a": {"b": 2}, "a.c": [3], "a": {"c": {"0": 4}}}`,
		"a.b: 1\na: {b: 2}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Flatten(data)
		if err != nil {
			if got != nil {
				t.Fatalf("Flatten returned metrics and an error: %v", err)
			}
			return
		}
		if got == nil {
			t.Fatal("Flatten returned neither metrics nor an error")
		}
		for k, v := range got {
			if k == "" {
				t.Fatalf("metric with an empty name (value %v)", v)
			}
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("metric %q is %v", k, v)
			}
		}
		for range 3 {
			again, err := Flatten(data)
			if err != nil || !maps.Equal(got, again) {
				t.Fatalf("Flatten is not deterministic:\n%v\n%v (err %v)", got, again, err)
			}
		}
		flat, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Flatten(flat)
		if err != nil || !maps.Equal(got, back) {
			t.Fatalf("flat metrics %s flatten to %v (err %v), want %v", flat, back, err, got)
		}
	})
}
