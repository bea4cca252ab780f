package git

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCredentialFile checks the file git reads the header from: private,
// parsed back exactly, and scoped to the clone URL, so that a submodule or
// alternate elsewhere does not receive the credential.
func TestCredentialFile(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	const clone = `https://git.example.com/acme/mo"d\el.git`
	const auth = `Basic eC1hY2Nlc3MtdG9rZW46c2VjcmV0"\`
	path, done, err := credentialFile(clone, auth)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700 | os.ModeDir} {
		if st, err := os.Stat(p); err != nil || st.Mode() != want {
			t.Errorf("%s: mode %v, %v; want %v", p, st.Mode(), err, want)
		}
	}
	tests := []struct {
		url, want string
	}{
		{clone, "Authorization: " + auth},
		{clone + "/info/refs", "Authorization: " + auth},
		{"https://git.example.com/acme/other.git", ""},
		{"https://evil.example/acme/mo\"d\\el.git", ""},
		{"http://git.example.com/acme/mo\"d\\el.git", ""},
	}
	for _, tt := range tests {
		out, _ := exec.Command("git", "config", "--file", path, "--get-urlmatch", "http.extraHeader", tt.url).Output()
		if got := strings.TrimSuffix(string(out), "\n"); got != tt.want {
			t.Errorf("header for %s = %q, want %q", tt.url, got, tt.want)
		}
	}
	done()
	if _, err := os.Stat(filepath.Dir(path)); !os.IsNotExist(err) {
		t.Errorf("credential directory left after done: %v", err)
	}
}
