package git_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlbot/mlbot/bot/forgesim"
	"github.com/mlbot/mlbot/runners/git"
)

// TestFetchCredentialInNoProcess attacks the credential the way a process
// left behind by a training would: while mlbot fetches over HTTP from a
// server that needs the token (and answers slowly, so git and
// git-remote-http stay alive), it reads /proc/<pid>/environ and
// /proc/<pid>/cmdline of every process on the machine, over and over. The
// token must be in none of them, in no form, and in no file the fetch
// leaves in the workspace or in $TMPDIR.
func TestFetchCredentialInNoProcess(t *testing.T) {
	raw := make([]byte, 16)
	rand.Read(raw)
	tok := "tok" + hex.EncodeToString(raw)
	auth := basic(tok)
	secrets := []string{
		tok, auth,
		strings.TrimPrefix(auth, "Basic "),
		"x-access-token:" + tok,
	}

	f := newFixture(t)
	root := t.TempDir()
	f.bare(t, root, "repo.git")
	tmp := filepath.Join(t.TempDir(), "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", tmp)

	var authorized, refused atomic.Int64
	backend := forgesim.GitHTTPBackend(root, func(h string) bool {
		if h == auth {
			authorized.Add(1)
			return true
		}
		refused.Add(1)
		return false
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Keep the request in flight long enough to be seen.
		time.Sleep(300 * time.Millisecond)
		backend.ServeHTTP(w, r)
	}))
	defer srv.Close()

	sc := &procScanner{secrets: secrets}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc.run(stop)
	}()

	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "w")
	co := git.Checkout{URL: srv.URL + "/repo.git", Auth: auth, Dir: dir}
	fetchErr := co.Fetch(ctx, f.c4, f.c5)
	var showErr, checkoutErr error
	var content []byte
	if fetchErr == nil {
		// Both fetch file contents lazily, with the credential again.
		content, showErr = co.ShowFile(ctx, f.c5, "model/train.py")
		checkoutErr = co.Checkout(ctx, f.c4)
	}
	close(stop)
	wg.Wait()

	if fetchErr != nil {
		t.Fatalf("Fetch: %v", fetchErr)
	}
	if showErr != nil || string(content) != "print('v1')\n" {
		t.Errorf("ShowFile = %q, %v", content, showErr)
	}
	if checkoutErr != nil {
		t.Fatalf("Checkout: %v", checkoutErr)
	}
	if got := readFile(t, filepath.Join(dir, "model/train.py")); got != "print('v2')\n" {
		t.Errorf("model/train.py = %q", got)
	}
	if authorized.Load() == 0 {
		t.Error("the server saw no request with the credential")
	}
	// Preemptive: git sends the header with its first request, as it must
	// for hosts that answer 404 instead of 401 to anonymous requests.
	if n := refused.Load(); n > 0 {
		t.Errorf("%d requests came without the credential", n)
	}

	for _, leak := range sc.leaks() {
		t.Errorf("credential readable by another process: %s", leak)
	}
	// The scan must have watched git at work, reading its environment:
	// otherwise it proves nothing.
	if sc.helpers.Load() == 0 {
		t.Fatalf("the scan (%d sweeps) never saw git-remote-http's environment while fetching", sc.sweeps.Load())
	}

	assertNoFileHolds(t, dir, secrets)
	assertNoFileHolds(t, tmp, secrets)
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("left in $TMPDIR after the fetch: %v", left)
	}
}

// procScanner reads every process's environment and command line.
type procScanner struct {
	secrets []string
	sweeps  atomic.Int64
	helpers atomic.Int64 // git-remote-http environments read

	mu    sync.Mutex
	found []string
	seen  map[string]bool
}

func (s *procScanner) run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		s.sweep()
		time.Sleep(time.Millisecond)
	}
}

func (s *procScanner) sweep() {
	s.sweeps.Add(1)
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, e := range entries {
		pid := e.Name()
		if pid[0] < '0' || pid[0] > '9' {
			continue
		}
		// Processes of other users, and those that exited, are not
		// readable: skip them.
		cmdline, _ := os.ReadFile("/proc/" + pid + "/cmdline")
		environ, err := os.ReadFile("/proc/" + pid + "/environ")
		if err == nil && len(environ) > 0 && bytes.Contains(cmdline, []byte("remote-http")) {
			s.helpers.Add(1)
		}
		for _, sec := range s.secrets {
			for what, b := range map[string][]byte{"environ": environ, "cmdline": cmdline} {
				if bytes.Contains(b, []byte(sec)) {
					s.report("/proc/" + pid + "/" + what + " of " + strings.ReplaceAll(string(cmdline), "\x00", " "))
				}
			}
		}
	}
}

func (s *procScanner) report(leak string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.seen[leak] {
		if s.seen == nil {
			s.seen = map[string]bool{}
		}
		s.seen[leak] = true
		s.found = append(s.found, leak)
	}
}

func (s *procScanner) leaks() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.found
}

// assertNoFileHolds fails if any file under dir holds one of secrets.
func assertNoFileHolds(t *testing.T, dir string, secrets []string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, sec := range secrets {
			if bytes.Contains(b, []byte(sec)) {
				t.Errorf("%s holds the credential", path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
