package configs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigFileWithSecretsMustBePrivate loads config files as another
// account on the host would find them: a file holding a credential that
// group or others can read or write is refused, naming the file and the
// fix; a private one, or one holding no credential, loads.
func TestConfigFileWithSecretsMustBePrivate(t *testing.T) {
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		holds   string // the key the error names; "" when the load succeeds
	}{
		{"token readable by others", "github_token: ghp_x\n", 0o644, "github_token"},
		{"webhook secret readable by group", "gitlab_webhook_secret: s\n", 0o640, "gitlab_webhook_secret"},
		{"task key writable by group", "task_key: " + strings.Repeat("k", 32) + "\n", 0o620, "task_key"},
		{"api token readable by others", "api_token: " + strings.Repeat("a", 16) + "\n", 0o604, "api_token"},
		{"redis password readable by others", "redis_url: redis://:pw@redis:6379/0\n", 0o644, "redis_url"},
		{"token in a private file", "github_token: ghp_x\ngitlab_token: glpat\n", 0o600, ""},
		{"token in a file only its owner reads", "github_token: ghp_x\n", 0o400, ""},
		{"no credential, shared file", "listen: \":9090\"\nredis_url: redis://redis:6379/0\nsecrets: [HF_TOKEN]\n", 0o644, ""},
		{"null token, shared file", "github_token:\n", 0o644, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := filepath.Join(t.TempDir(), "mlbot.yml")
			if err := os.WriteFile(name, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(name, tt.mode); err != nil {
				t.Fatal(err)
			}
			_, err := load(t, []string{"--config", name}, map[string]string{"HF_TOKEN": "x"})
			if tt.holds == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("a config file with mode %#o holding %s was accepted", tt.mode, tt.holds)
			}
			for _, want := range []string{"config file " + name, "chmod 600 " + name, tt.holds} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

// TestReadPrivateFile reads a key file through a symbolic link, as secret
// mounts present them: the mode of the file read is what counts.
func TestReadPrivateFile(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "app.pem")
	if err := os.WriteFile(key, []byte("KEY"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.pem")
	if err := os.Symlink(key, link); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{key, link} {
		if b, err := ReadPrivateFile(name, "private key"); err != nil || string(b) != "KEY" {
			t.Fatalf("ReadPrivateFile(%s) = %q, %v", name, b, err)
		}
	}
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{key, link} {
		_, err := ReadPrivateFile(name, "private key")
		if err == nil || !strings.Contains(err.Error(), "private key "+name) || !strings.Contains(err.Error(), "chmod 600 "+name) {
			t.Errorf("ReadPrivateFile(%s) of a 0644 file: %v, want a refusal naming the file and chmod 600", name, err)
		}
	}
	if _, err := ReadPrivateFile(filepath.Join(dir, "absent"), "private key"); err == nil {
		t.Error("a missing file was read")
	}
}
