package agent

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// entry is one member of a test archive.
type entry struct {
	name string
	typ  byte
	body string
	link string
}

func archive(t *testing.T, entries ...entry) *bytes.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body)), Linkname: e.link}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(buf.Bytes())
}

// TestUnpackRefusesHostileArchives feeds unpack archives made to write
// outside the workdir, or to make things other than files, directories
// and links, and checks each is refused with nothing written outside.
func TestUnpackRefusesHostileArchives(t *testing.T) {
	file := func(name string) entry { return entry{name: name, typ: tar.TypeReg, body: "pwned"} }
	tests := []struct {
		name    string
		entries []entry
	}{
		{"absolute path", []entry{file("/tmp/pwned")}},
		{"dot-dot", []entry{file("../pwned")}},
		{"dot-dot inside", []entry{file("a/../../pwned")}},
		{"dot-dot directory", []entry{{name: "../d/", typ: tar.TypeDir}}},
		{"absolute link", []entry{{name: "passwd", typ: tar.TypeSymlink, link: "/etc/passwd"}}},
		{"link climbing out", []entry{{name: "a/up", typ: tar.TypeSymlink, link: "../../.."}}},
		{"file through a link to outside", []entry{{name: "out", typ: tar.TypeSymlink, link: "../outside"}, file("out/pwned")}},
		{"file through a link inside", []entry{{name: "d/", typ: tar.TypeDir}, {name: "l", typ: tar.TypeSymlink, link: "d"}, file("l/pwned")}},
		{"hard link", []entry{file("a"), {name: "b", typ: tar.TypeLink, link: "a"}}},
		{"character device", []entry{{name: "null", typ: tar.TypeChar}}},
		{"FIFO", []entry{{name: "fifo", typ: tar.TypeFifo}}},
		{"backslash", []entry{file(`..\pwned`)}},
		{"empty name", []entry{file("")}},
		{"file where a directory is", []entry{{name: "d/", typ: tar.TypeDir}, file("d/x"), file("d")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			outside := filepath.Join(parent, "outside")
			if err := os.Mkdir(outside, 0o755); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(parent, "workspace")
			err := unpack(archive(t, tt.entries...), dir)
			var refused *refusedError
			if !errors.As(err, &refused) {
				t.Fatalf("unpack = %v, want a refusal", err)
			}
			if left, _ := os.ReadDir(outside); len(left) != 0 {
				t.Errorf("written outside the workdir: %v", left)
			}
			if _, err := os.Stat(filepath.Join(parent, "pwned")); err == nil {
				t.Error("written beside the workdir")
			}
			if _, err := os.Stat("/tmp/pwned"); err == nil {
				t.Error("written to /tmp/pwned")
			}
		})
	}
}

func TestUnpack(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "workspace")
	err := unpack(archive(t,
		entry{name: "data/", typ: tar.TypeDir},
		entry{name: "data/x.csv", typ: tar.TypeReg, body: "a,b\n"},
		entry{name: "deep/er/y.txt", typ: tar.TypeReg, body: "y"},
		entry{name: "current", typ: tar.TypeSymlink, link: "data/x.csv"},
		entry{name: "deep/er/up", typ: tar.TypeSymlink, link: "../../data"},
	), dir)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"data/x.csv": "a,b\n", "deep/er/y.txt": "y", "current": "a,b\n", "deep/er/up/x.csv": "a,b\n"} {
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", p, b, err, want)
		}
	}
	if target, err := os.Readlink(filepath.Join(dir, "current")); err != nil || target != "data/x.csv" {
		t.Errorf("current links to %q, %v", target, err)
	}
	// A truncated download is a read error, which a fresh fetch may cure.
	full := archive(t, entry{name: "big", typ: tar.TypeReg, body: strings.Repeat("x", 10000)})
	b := make([]byte, 5000)
	n, _ := full.Read(b)
	err = unpack(bytes.NewReader(b[:n]), filepath.Join(t.TempDir(), "w"))
	var refused *refusedError
	if err == nil || errors.As(err, &refused) {
		t.Errorf("unpack of a truncated archive = %v, want a read error, not a refusal", err)
	}
}
