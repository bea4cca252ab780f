package report

import (
	"context"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFlatten(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]float64
		wantErr string
	}{
		{
			name: "json flat",
			in:   `{"accuracy": 0.95, "loss": 0.12}`,
			want: map[string]float64{"accuracy": 0.95, "loss": 0.12},
		},
		{
			name: "json exponent and large integers",
			in:   `{"lr": 1e-3, "tiny": 2.5E-7, "steps": 12345678901234567890, "n": 60000}`,
			want: map[string]float64{"lr": 0.001, "tiny": 2.5e-7, "steps": 12345678901234567890, "n": 60000},
		},
		{
			name: "json nested and lists",
			in:   `{"eval": {"top": {"acc": 0.9}}, "per_class": [0.5, 0.75, {"f1": 0.25}]}`,
			want: map[string]float64{"eval.top.acc": 0.9, "per_class.0": 0.5, "per_class.1": 0.75, "per_class.2.f1": 0.25},
		},
		{
			name: "json non-numbers left out",
			in:   `{"ok": true, "model": "resnet", "note": null, "acc": 1, "tags": ["a", 2]}`,
			want: map[string]float64{"acc": 1, "tags.1": 2},
		},
		{
			name: "json NaN and Infinity as Python writes them",
			in:   `{"loss": NaN, "grad": Infinity, "low": -Infinity, "acc": 0.5, "s": "NaN, Infinity"}`,
			want: map[string]float64{"acc": 0.5},
		},
		{
			name: "json out of float range dropped",
			in:   `{"huge": 1e400, "acc": 0.5}`,
			want: map[string]float64{"acc": 0.5},
		},
		{
			name: "json indented with tabs",
			in:   "{\n\t\"acc\": 0.5,\n\t\"m\": {\n\t\t\"f1\": 0.25\n\t}\n}\n",
			want: map[string]float64{"acc": 0.5, "m.f1": 0.25},
		},
		{
			name: "json byte order mark",
			in:   "\xef\xbb\xbf{\"acc\": 0.5}",
			want: map[string]float64{"acc": 0.5},
		},
		{
			name: "yaml nested",
			in:   "accuracy: 0.95\neval:\n  top5: 0.99\n  loss: 1e-3\n",
			want: map[string]float64{"accuracy": 0.95, "eval.top5": 0.99, "eval.loss": 0.001},
		},
		{
			name: "yaml lists",
			in:   "per_class:\n  - 0.1\n  - 0.2\n  - {f1: 0.3}\n",
			want: map[string]float64{"per_class.0": 0.1, "per_class.1": 0.2, "per_class.2.f1": 0.3},
		},
		{
			name: "yaml non-numbers and non-finite",
			in:   "quoted: \"0.5\"\nflag: yes\non: true\nempty: ~\nnan: .nan\ninf: -.inf\nint: 7\n",
			want: map[string]float64{"int": 7},
		},
		{
			name: "yaml anchors and merge keys",
			in:   "defaults: &d {a: 1, b: 2}\nrun:\n  <<: *d\n  b: 3\ncopy: *d\n",
			want: map[string]float64{"defaults.a": 1, "defaults.b": 2, "run.a": 1, "run.b": 3, "copy.a": 1, "copy.b": 2},
		},
		{
			name: "yaml flow mapping that is not json",
			in:   "{acc: 0.5, loss: 2}",
			want: map[string]float64{"acc": 0.5, "loss": 2},
		},
		{
			name: "empty mapping",
			in:   "{}",
			want: map[string]float64{},
		},
		{
			// Two paths to one name: the later wins, on every run, as in
			// YAML (once Go's map order picked one at random).
			name: "json names that flatten alike, later wins",
			in:   `{"a.b": 1, "a": {"b": 2}, "c": {"d": 3}, "c.d": 4, "e": 5, "e": 6}`,
			want: map[string]float64{"a.b": 2, "c.d": 4, "e": 6},
		},
		{
			name: "yaml names that flatten alike, later wins",
			in:   "a.b: 1\na: {b: 2}\n",
			want: map[string]float64{"a.b": 2},
		},
		{name: "json truncated", in: `{"acc": 1, "m": [1`, wantErr: "invalid JSON"},
		{name: "json missing comma", in: `{"acc": 1 "b": 2}`, wantErr: "invalid JSON"},
		{name: "json nested too deep", in: `{"a":` + strings.Repeat("[", 300) + strings.Repeat("]", 300) + "}", wantErr: "nested deeper than 256"},
		{name: "top level list", in: `[1, 2]`, wantErr: "not a mapping"},
		{name: "top level scalar", in: "42\n", wantErr: "not a mapping"},
		{name: "empty file", in: "", wantErr: "empty document"},
		{name: "invalid json", in: `{"acc": }`, wantErr: "invalid JSON"},
		{name: "json trailing data", in: `{"acc": 1} {"b": 2}`, wantErr: "invalid JSON"},
		{name: "invalid yaml", in: "acc: [1, 2\n", wantErr: "invalid YAML"},
		{
			name:    "alias expansion bomb",
			in:      bomb(),
			wantErr: "values",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := 0; tt.wantErr == "" && i < 20; i++ { // map order must not matter: try several
				if got, err := Flatten([]byte(tt.in)); err == nil && !maps.Equal(got, tt.want) {
					t.Fatalf("Flatten() = %v, want %v", got, tt.want)
				}
			}
			got, err := Flatten([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Flatten() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Flatten() error = %v", err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("Flatten() = %v, want %v", got, tt.want)
			}
		})
	}
}

// bomb is a "billion laughs" document: nine levels of nine aliases each.
func bomb() string {
	var b strings.Builder
	b.WriteString("a0: &a0 [1, 2, 3, 4, 5, 6, 7, 8, 9]\n")
	for i := 1; i <= 9; i++ {
		prev := "*a" + string(rune('0'+i-1))
		b.WriteString("a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [" +
			strings.Repeat(prev+", ", 8) + prev + "]\n")
	}
	return b.String()
}

func TestReadFiles(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "work")
	write(t, filepath.Join(dir, "metrics.json"), `{"accuracy": 0.9, "loss": 0.5}`)
	write(t, filepath.Join(dir, "eval", "extra.yaml"), "loss: 0.4\nf1: 0.8\n")
	write(t, filepath.Join(dir, "bad.json"), `{"accuracy": }`)
	write(t, filepath.Join(dir, "list.json"), `[1]`)
	write(t, filepath.Join(root, "secret.json"), `{"token": 1}`)
	symlink(t, filepath.Join(root, "secret.json"), filepath.Join(dir, "escape.json"))
	symlink(t, "../../secret.json", filepath.Join(dir, "eval", "rel-escape.json"))
	symlink(t, "metrics.json", filepath.Join(dir, "inside.json"))
	symlink(t, "/etc/passwd", filepath.Join(dir, "passwd.json"))
	symlink(t, root, filepath.Join(dir, "up"))
	big := filepath.Join(dir, "big.json")
	write(t, big, "")
	if err := os.Truncate(big, MaxFileSize+1); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		files   []string
		want    map[string]float64
		wantErr string
	}{
		{name: "none", files: nil, want: map[string]float64{}},
		{
			name:  "later files win",
			files: []string{"metrics.json", "eval/extra.yaml"},
			want:  map[string]float64{"accuracy": 0.9, "loss": 0.4, "f1": 0.8},
		},
		{
			name:  "symlink inside the directory",
			files: []string{"inside.json"},
			want:  map[string]float64{"accuracy": 0.9, "loss": 0.5},
		},
		{name: "absolute path", files: []string{filepath.Join(root, "secret.json")}, wantErr: "secret.json"},
		{name: "dot dot", files: []string{"../secret.json"}, wantErr: `"../secret.json"`},
		{name: "dot dot inside a path", files: []string{"eval/../../secret.json"}, wantErr: "inside the workspace"},
		{name: "symlink escaping by absolute target", files: []string{"escape.json"}, wantErr: `"escape.json"`},
		{name: "symlink escaping by relative target", files: []string{"eval/rel-escape.json"}, wantErr: `"eval/rel-escape.json"`},
		{name: "symlink to /etc/passwd", files: []string{"passwd.json"}, wantErr: `"passwd.json"`},
		{name: "symlinked intermediate directory out of the checkout", files: []string{"up/secret.json"}, wantErr: `"up/secret.json"`},
		{name: "dot dot to /etc/passwd", files: []string{"../../etc/passwd"}, wantErr: "inside the workspace"},
		{name: "missing file", files: []string{"metrics.json", "nope.json"}, wantErr: `"nope.json"`},
		{name: "directory", files: []string{"eval"}, wantErr: "not a regular file"},
		{name: "too large", files: []string{"big.json"}, wantErr: "limit"},
		{name: "invalid content names the file", files: []string{"bad.json"}, wantErr: `metrics file "bad.json": invalid JSON`},
		{name: "not a mapping names the file", files: []string{"list.json"}, wantErr: `"list.json"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadFiles(context.Background(), dir, tt.files)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ReadFiles() error = %v, want one containing %q", err, tt.wantErr)
				}
				if got != nil {
					t.Errorf("ReadFiles() = %v with an error, want nil", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadFiles() error = %v", err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("ReadFiles() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestReadFilesMissingDir(t *testing.T) {
	_, err := ReadFiles(context.Background(), filepath.Join(t.TempDir(), "nope"), []string{"m.json"})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadFiles() error = %v, want fs.ErrNotExist", err)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Skipf("symlinks unavailable: %v", err)
	}
}
