package main

import (
	"net/http"
	"strings"
	"testing"
)

// TestGitHubAppAuth runs a pull request through mlbot authenticated as a
// GitHub App: the installation token it mints is what reaches the API and
// git, never the App's key.
func TestGitHubAppAuth(t *testing.T) {
	e, sim := newAppE2E(t, nil)
	e.baseline("0.90")
	h := e.commit("feature", map[string]string{"params": "0.92\n"}, "better")
	e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
	if st := e.final(h); st.State != "success" {
		t.Fatalf("status %+v", st)
	}
	if n := len(sim.Rec.Find(http.MethodPost, "/app/installations/")); n == 0 {
		t.Fatal("no installation token was minted")
	}
	calls := sim.Rec.Find("", "/check-runs")
	if len(calls) == 0 {
		t.Fatal("no check run was set")
	}
	for _, c := range calls {
		auth := c.Header.Get("Authorization")
		if !strings.Contains(auth, "ghs_") {
			t.Errorf("check run call authenticated with %q, want the installation token", auth)
		}
	}
}
