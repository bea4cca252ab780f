package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlbot/mlbot/bot/github"
	"github.com/mlbot/mlbot/configs"
)

// TestGitHubAppAuth runs a pull request through mlbot authenticated as a
// GitHub App: the installation token it mints is what reaches the API and
// git, never the App's key.
func TestGitHubAppAuth(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "app.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(keyFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	const appID, installation = 4711, 99
	var sim *github.Simulator
	e := newE2E(t, "github", func(c *configs.Server) {
		c.GitHubToken, c.GitHubAppID, c.GitHubAppPrivateKeyFile = "", appID, keyFile
	})
	sim = e.sb.host.(*githubHost).sim
	sim.AddApp(appID, &key.PublicKey, installation, e.sb.repo)

	e.baseline("0.90")
	h := e.commit("feature", map[string]string{"params": "0.92\n"}, "better")
	e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
	if st := e.final(h); st.State != "success" {
		t.Fatalf("status %+v", st)
	}
	if n := len(sim.Rec.Find(http.MethodPost, "/app/installations/")); n == 0 {
		t.Fatal("no installation token was minted")
	}
	for _, c := range sim.Rec.Find(http.MethodPost, "/statuses/") {
		auth := c.Header.Get("Authorization")
		if !strings.Contains(auth, "ghs_") {
			t.Errorf("status call authenticated with %q, want the installation token", auth)
		}
	}
}
