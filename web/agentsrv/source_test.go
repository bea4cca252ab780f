package agentsrv

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// credential is what a forge token in a checkout's git configuration
// looks like; it must never reach an agent.
const credential = "AUTHORIZATION: basic eC1hY2Nlc3MtdG9rZW46Z2hwX3NlY3JldA=="

// hostileCheckout makes a checkout shaped to leak: a .git holding a
// credential, a nested .git file, links to /etc/passwd and out of the
// checkout, a FIFO, and an executable.
func hostileCheckout(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		".git/config":             "[http]\n\textraHeader = " + credential + "\n",
		".git/mlbot-credential":   credential,
		"vendor/lib/.git":         "gitdir: ../../.git/modules/lib\n",
		"vendor/lib/x.py":         "x = 1\n",
		"train.py":                "print('train')\n",
		"data/train.csv":          "a,b\n1,2\n",
		".mlbot.yml":              "version: 1\n",
		"notes/.gitignore":        "*.tmp\n",
		"notes/.github/workflows": "on: push\n",
	})
	if err := os.Chmod(filepath.Join(dir, "train.py"), 0o755); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"passwd":       "/etc/passwd",
		"escape":       "../../../../etc/shadow",
		"data/current": "train.csv",
		"gitconfig":    ".git/config",
		"dirlink":      "/etc",
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// archived is one entry of a source archive.
type archived struct {
	typ  byte
	mode int64
	link string
	body string
}

func readArchive(t *testing.T, r io.Reader) map[string]archived {
	t.Helper()
	out := map[string]archived{}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[hdr.Name] = archived{typ: hdr.Typeflag, mode: hdr.Mode, link: hdr.Linkname, body: string(b)}
	}
}

// TestSourceArchiveOfAHostileCheckout fetches the source the way an agent
// does and checks that it holds the checkout's files, its links as links,
// and nothing of git's directory.
func TestSourceArchiveOfAHostileCheckout(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	sess, err := f.hub.Open(ctx, runA, testJob(), hostileCheckout(t), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := f.client(t, sess.Token).GetSource(ctx)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("eC1hY2Nlc3MtdG9rZW4")) {
		t.Fatal("the source archive contains the credential")
	}
	got := readArchive(t, bytes.NewReader(raw))
	for name := range got {
		for _, part := range strings.Split(strings.TrimSuffix(name, "/"), "/") {
			if part == ".git" {
				t.Errorf("the archive holds %s", name)
			}
		}
	}
	want := map[string]archived{
		"train.py":                {typ: tar.TypeReg, mode: 0o755, body: "print('train')\n"},
		"data/":                   {typ: tar.TypeDir, mode: 0o755},
		"data/train.csv":          {typ: tar.TypeReg, mode: 0o644, body: "a,b\n1,2\n"},
		"vendor/lib/x.py":         {typ: tar.TypeReg, mode: 0o644, body: "x = 1\n"},
		".mlbot.yml":              {typ: tar.TypeReg, mode: 0o644, body: "version: 1\n"},
		"notes/.gitignore":        {typ: tar.TypeReg, mode: 0o644, body: "*.tmp\n"},
		"notes/.github/workflows": {typ: tar.TypeReg, mode: 0o644, body: "on: push\n"},
		"passwd":                  {typ: tar.TypeSymlink, mode: 0o777, link: "/etc/passwd"},
		"escape":                  {typ: tar.TypeSymlink, mode: 0o777, link: "../../../../etc/shadow"},
		"data/current":            {typ: tar.TypeSymlink, mode: 0o777, link: "train.csv"},
		"gitconfig":               {typ: tar.TypeSymlink, mode: 0o777, link: ".git/config"},
		"dirlink":                 {typ: tar.TypeSymlink, mode: 0o777, link: "/etc"},
	}
	for name, w := range want {
		if g, ok := got[name]; !ok || g != w {
			t.Errorf("%s: archived as %+v (present: %v), want %+v", name, g, ok, w)
		}
	}
	if _, ok := got["pipe"]; ok {
		t.Error("the FIFO was archived")
	}
	for name := range got {
		if strings.HasPrefix(name, "dirlink/") {
			t.Errorf("the walk followed a link to a directory: %s", name)
		}
	}
}
