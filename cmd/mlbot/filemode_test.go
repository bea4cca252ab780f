package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeRefusesSharedCredentialFiles starts mlbot serve and worker with
// each file that holds a credential left readable by group or others: it
// refuses at once, naming the file and `chmod 600`.
func TestServeRefusesSharedCredentialFiles(t *testing.T) {
	write := func(t *testing.T, name, body string, mode os.FileMode) string {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(name, mode); err != nil {
			t.Fatal(err)
		}
		return name
	}
	tests := []struct {
		name string
		// setup writes the file in dir and returns its path and the
		// command's arguments.
		setup func(t *testing.T, dir string) (string, []string)
	}{
		{"config file with a webhook secret", func(t *testing.T, dir string) (string, []string) {
			f := write(t, filepath.Join(dir, "mlbot.yml"), "github_webhook_secret: s3cret\nallow_all_repos: true\n", 0o644)
			return f, []string{"--config", f}
		}},
		{"config file with a token, group-readable", func(t *testing.T, dir string) (string, []string) {
			f := write(t, filepath.Join(dir, "mlbot.yml"), "gitlab_token: glpat-x\ngitlab_webhook_secret: s\nallow_all_repos: true\n", 0o640)
			return f, []string{"--config", f}
		}},
		{"GitHub App private key", func(t *testing.T, dir string) (string, []string) {
			f := write(t, filepath.Join(dir, "app.pem"), "-----BEGIN RSA PRIVATE KEY-----\n", 0o644)
			return f, []string{"--github-app-id", "7", "--github-app-private-key-file", f}
		}},
		{"task.key in the data directory", func(t *testing.T, dir string) (string, []string) {
			f := write(t, filepath.Join(dir, "data", "task.key"), strings.Repeat("k", 64)+"\n", 0o644)
			return f, nil
		}},
	}
	for _, cmd := range []string{"serve", "worker"} {
		for _, tc := range tests {
			t.Run(cmd+"/"+tc.name, func(t *testing.T) {
				cliClearEnv(t)
				dir := t.TempDir()
				file, args := tc.setup(t, dir)
				t.Setenv("MLBOT_DATA_DIR", filepath.Join(dir, "data"))
				t.Setenv("MLBOT_LISTEN", cliFreeAddr(t))
				if !strings.Contains(strings.Join(args, " "), "--config") {
					t.Setenv("MLBOT_GITHUB_WEBHOOK_SECRET", "s3cret")
					t.Setenv("MLBOT_ALLOW_ALL_REPOS", "true")
				}
				start := time.Now()
				code, out, errs := cliRun(t, append([]string{cmd}, args...)...)
				if code != 1 {
					t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, out, errs)
				}
				if d := time.Since(start); d > 10*time.Second {
					t.Errorf("refusing took %s", d)
				}
				for _, want := range []string{file, "readable or writable by group or others", "chmod 600 " + file} {
					if !strings.Contains(errs, want) {
						t.Errorf("stderr lacks %q:\n%s", want, errs)
					}
				}
				if strings.Contains(errs, "s3cret") || strings.Contains(errs, "glpat-x") {
					t.Errorf("stderr leaks a secret:\n%s", errs)
				}
			})
		}
	}
}
