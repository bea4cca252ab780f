package github

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/mlbot/mlbot/bot/forgesim"
)

// noRedirects is a client that stops at each redirect, as a test that
// plays the browser must.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// TestOAuthLogin logs in through the simulator the way mlbot's pages do:
// the client's authorization URL, the simulator's sign-in page, the code
// sent back, the token exchange with the PKCE verifier and GET /user; and
// each way a login is refused.
func TestOAuthLogin(t *testing.T) {
	sim := NewSimulator()
	sim.AddToken("bot-token") // a strict simulator: tokens are checked
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	const callback = "https://mlbot.example.com/login/github/callback"
	sim.AddOAuthApp("client-1", "secret-1", callback)
	o, err := NewOAuth(OAuthOptions{APIURL: srv.URL + "/", ClientID: "client-1", ClientSecret: "secret-1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// signIn returns the callback URL the browser comes back to.
	signIn := func(t *testing.T, state, verifier, redirect, login string) url.Values {
		t.Helper()
		loc, err := forgesim.SignIn(noRedirects, o.AuthCodeURL(state, verifier, redirect), login)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(loc.String(), callback) {
			t.Fatalf("sent to %s, not the callback", loc)
		}
		if got := loc.Query().Get("state"); got != state {
			t.Errorf("state came back as %q, want %q", got, state)
		}
		return loc.Query()
	}

	t.Run("login", func(t *testing.T) {
		verifier := oauth2.GenerateVerifier()
		q := signIn(t, "state-1", verifier, callback, "Maria")
		u, err := o.Exchange(ctx, q.Get("code"), verifier, callback)
		if err != nil {
			t.Fatal(err)
		}
		if u.Forge != "github" || u.Login != "Maria" || u.PermissionName != "Maria" || u.ID != sim.OAuthUserID("maria") || u.ID == 0 {
			t.Errorf("user = %+v", u)
		}
		// The code was good once.
		if _, err := o.Exchange(ctx, q.Get("code"), verifier, callback); err == nil || !strings.Contains(err.Error(), "bad_verification_code") {
			t.Errorf("second exchange of a code: %v, want bad_verification_code", err)
		}
	})
	t.Run("a redirect below the callback", func(t *testing.T) {
		verifier := oauth2.GenerateVerifier()
		q := signIn(t, "state-2", verifier, callback+"/deeper", "rita")
		if _, err := o.Exchange(ctx, q.Get("code"), verifier, callback+"/deeper"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("another verifier", func(t *testing.T) {
		q := signIn(t, "state-3", oauth2.GenerateVerifier(), callback, "maria")
		if _, err := o.Exchange(ctx, q.Get("code"), oauth2.GenerateVerifier(), callback); err == nil || !strings.Contains(err.Error(), "bad_verification_code") {
			t.Errorf("exchange with another verifier: %v, want bad_verification_code", err)
		}
	})
	t.Run("another redirect URI at the exchange", func(t *testing.T) {
		verifier := oauth2.GenerateVerifier()
		q := signIn(t, "state-4", verifier, callback, "maria")
		if _, err := o.Exchange(ctx, q.Get("code"), verifier, callback+"/x"); err == nil {
			t.Errorf("exchange with another redirect URI succeeded")
		}
	})
	t.Run("wrong client secret", func(t *testing.T) {
		bad, _ := NewOAuth(OAuthOptions{APIURL: srv.URL + "/", ClientID: "client-1", ClientSecret: "guess"})
		verifier := oauth2.GenerateVerifier()
		q := signIn(t, "state-5", verifier, callback, "maria")
		if _, err := bad.Exchange(ctx, q.Get("code"), verifier, callback); err == nil || !strings.Contains(err.Error(), "incorrect_client_credentials") {
			t.Errorf("exchange with a wrong secret: %v, want incorrect_client_credentials", err)
		}
	})
	t.Run("the user cancels", func(t *testing.T) {
		q := signIn(t, "state-6", oauth2.GenerateVerifier(), callback, "")
		if q.Get("error") != "access_denied" || q.Get("code") != "" {
			t.Errorf("cancel came back with %v", q)
		}
	})
	t.Run("a foreign redirect URI", func(t *testing.T) {
		loc, err := forgesim.SignIn(noRedirects, o.AuthCodeURL("state-7", oauth2.GenerateVerifier(), "https://evil.example.com/login/github/callback"), "maria")
		if err != nil {
			t.Fatal(err)
		}
		// GitHub sends the error to the registered callback, never to
		// the foreign URI.
		if !strings.HasPrefix(loc.String(), callback+"?") || loc.Query().Get("error") != "redirect_uri_mismatch" {
			t.Errorf("sent to %s", loc)
		}
	})
	t.Run("an unknown client", func(t *testing.T) {
		other, _ := NewOAuth(OAuthOptions{APIURL: srv.URL + "/", ClientID: "nobody", ClientSecret: "x"})
		resp, err := noRedirects.Get(other.AuthCodeURL("s", oauth2.GenerateVerifier(), callback))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("authorize for an unknown client = %d, want 404", resp.StatusCode)
		}
	})
	t.Run("a user's token reaches no repository", func(t *testing.T) {
		verifier := oauth2.GenerateVerifier()
		q := signIn(t, "state-8", verifier, callback, "maria")
		token, err := o.flow.Token(ctx, q.Get("code"), verifier, callback)
		if err != nil {
			t.Fatal(err)
		}
		resp, _ := do(t, http.MethodGet, srv.URL+"/repos/acme/model/collaborators/maria/permission", token, "")
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("a user's token read a repository: %d", resp.StatusCode)
		}
		resp, body := do(t, http.MethodGet, srv.URL+"/user", "bot-token", "")
		if resp.StatusCode != http.StatusOK || body["login"] != sim.BotLogin {
			t.Errorf("GET /user with the bot's token = %d %v", resp.StatusCode, body)
		}
	})
}

func TestOAuthWebRoot(t *testing.T) {
	tests := []struct{ api, want string }{
		{"https://api.github.com/", "https://github.com"},
		{"https://ghe.example.com/api/v3/", "https://ghe.example.com"},
		{"http://127.0.0.1:8080/", "http://127.0.0.1:8080"},
	}
	for _, tc := range tests {
		got, err := webRoot(tc.api)
		if err != nil || got != tc.want {
			t.Errorf("webRoot(%q) = %q, %v; want %q", tc.api, got, err, tc.want)
		}
	}
}
