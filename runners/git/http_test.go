package git_test

import (
	"context"
	"encoding/base64"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mlbot/mlbot/bot/forgesim"
	"github.com/mlbot/mlbot/runners/git"
)

const token = "SECRETTOKEN"

func basic(tok string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte("x-access-token:"+tok))
}

// TestFetchHTTPAuth fetches over git's smart HTTP protocol from a server
// that, like GitHub, wants the installation token as Basic credentials.
func TestFetchHTTPAuth(t *testing.T) {
	f := newFixture(t)
	root := t.TempDir()
	f.bare(t, root, "repo.git")
	var authorized atomic.Int64
	mux := http.NewServeMux()
	mux.Handle("/git/", http.StripPrefix("/git", forgesim.GitHTTPBackend(root, func(h string) bool {
		ok := h == basic(token)
		if ok {
			authorized.Add(1)
		}
		return ok
	})))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	url := srv.URL + "/git/repo.git"
	ctx := context.Background()

	tests := []struct {
		name    string
		auth    string
		wantErr bool
	}{
		{"token as header", basic(token), false},
		{"no credential", "", true},
		{"wrong token", basic("WRONGTOKEN"), true},
		{"wrong scheme", "Bearer " + token, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "w")
			co := git.Checkout{URL: url, Auth: tt.auth, Dir: dir}
			err := co.Fetch(ctx, f.c4, f.c5)
			if tt.wantErr {
				if err == nil {
					t.Fatal("Fetch succeeded without the right credential")
				}
				if !errors.Is(err, git.ErrAuth) {
					t.Errorf("error does not wrap ErrAuth: %v", err)
				}
				if !strings.Contains(err.Error(), "credential") {
					t.Errorf("error does not say what is wrong: %v", err)
				}
				assertNoSecret(t, "error", err.Error(), tt.auth)
				assertTreeClean(t, dir, tt.auth)
				return
			}
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			before := authorized.Load()
			// The file contents come now, on demand, with the header again.
			if got, err := co.ShowFile(ctx, f.c4, "data/with space.csv"); err != nil || string(got) != "a,b\n" {
				t.Errorf("Checkout.ShowFile = %q, %v", got, err)
			}
			if err := co.Checkout(ctx, f.c4); err != nil {
				t.Fatalf("Checkout: %v", err)
			}
			if err := co.Worktree(ctx, f.c5, filepath.Join(t.TempDir(), "base")); err != nil {
				t.Fatalf("Worktree: %v", err)
			}
			if authorized.Load() == before {
				t.Error("no authorized request after Fetch: blobs were not fetched lazily")
			}
			if got := readFile(t, filepath.Join(dir, "model/train.py")); got != "print('v2')\n" {
				t.Errorf("model/train.py = %q", got)
			}
			// Without the credential, the query functions still work (they
			// need no file contents) ...
			if files, err := git.ChangedFiles(ctx, dir, f.c5, f.c4); err != nil || len(files) == 0 {
				t.Errorf("ChangedFiles = %q, %v", files, err)
			}
			// ... and a file never fetched fails clearly, not as absent.
			if _, err := git.ShowFile(ctx, dir, f.c1, "data/old.bin"); err == nil || errors.Is(err, fs.ErrNotExist) {
				t.Errorf("ShowFile of an unfetched blob without credential: %v", err)
			} else {
				assertNoSecret(t, "error", err.Error(), tt.auth)
			}
			assertTreeClean(t, dir, tt.auth)
		})
	}
}

// assertNoSecret fails if s holds the token or any form of auth.
func assertNoSecret(t *testing.T, what, s, auth string) {
	t.Helper()
	for _, secret := range []string{token, "WRONGTOKEN", auth, strings.TrimPrefix(strings.TrimPrefix(auth, "Basic "), "Bearer ")} {
		if len(secret) >= 4 && strings.Contains(s, secret) {
			t.Errorf("%s contains %q: %s", what, secret, s)
		}
	}
}

// assertTreeClean fails if any file under dir (the .git directory
// included: config, logs, FETCH_HEAD, packs) holds the credential.
func assertTreeClean(t *testing.T, dir, auth string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, ".git")); err != nil {
		t.Fatalf("no repository in %s: %v", dir, err)
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		assertNoSecret(t, path, string(b), auth)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
