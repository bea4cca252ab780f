package gitlab

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/mlbot/mlbot/bot/forgesim"
)

var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// TestOAuthLogin logs in through the simulator the way mlbot's pages do,
// and checks each way GitLab refuses a login.
func TestOAuthLogin(t *testing.T) {
	sim := NewSimulator()
	sim.AddToken("bot-token")
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	const callback = "https://mlbot.example.com/login/gitlab/callback"
	sim.AddOAuthApp("app-1", "secret-1", callback)
	o, err := NewOAuth(OAuthOptions{BaseURL: srv.URL, ClientID: "app-1", ClientSecret: "secret-1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	signIn := func(t *testing.T, state, verifier, login string) url.Values {
		t.Helper()
		loc, err := forgesim.SignIn(noRedirects, o.AuthCodeURL(state, verifier, callback), login)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(loc.String(), callback+"?") || loc.Query().Get("state") != state {
			t.Fatalf("sent to %s", loc)
		}
		return loc.Query()
	}

	t.Run("login", func(t *testing.T) {
		verifier := oauth2.GenerateVerifier()
		q := signIn(t, "state-1", verifier, "maria")
		u, err := o.Exchange(ctx, q.Get("code"), verifier, callback)
		if err != nil {
			t.Fatal(err)
		}
		id := sim.UserID("maria")
		if u.Forge != "gitlab" || u.Login != "maria" || u.ID != id || u.PermissionName != "id:"+strconv.FormatInt(id, 10) {
			t.Errorf("user = %+v", u)
		}
		if _, err := o.Exchange(ctx, q.Get("code"), verifier, callback); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
			t.Errorf("second exchange of a code: %v, want invalid_grant", err)
		}
	})
	t.Run("another verifier", func(t *testing.T) {
		q := signIn(t, "state-2", oauth2.GenerateVerifier(), "maria")
		if _, err := o.Exchange(ctx, q.Get("code"), oauth2.GenerateVerifier(), callback); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
			t.Errorf("exchange with another verifier: %v, want invalid_grant", err)
		}
	})
	t.Run("wrong client secret", func(t *testing.T) {
		bad, _ := NewOAuth(OAuthOptions{BaseURL: srv.URL, ClientID: "app-1", ClientSecret: "guess"})
		verifier := oauth2.GenerateVerifier()
		q := signIn(t, "state-3", verifier, "maria")
		if _, err := bad.Exchange(ctx, q.Get("code"), verifier, callback); err == nil || !strings.Contains(err.Error(), "invalid_client") {
			t.Errorf("exchange with a wrong secret: %v, want invalid_client", err)
		}
	})
	t.Run("the user cancels", func(t *testing.T) {
		if q := signIn(t, "state-4", oauth2.GenerateVerifier(), ""); q.Get("error") != "access_denied" || q.Get("code") != "" {
			t.Errorf("cancel came back with %v", q)
		}
	})
	t.Run("refused before the sign-in page", func(t *testing.T) {
		base := srv.URL + "/oauth/authorize?"
		tests := []struct {
			name      string
			query     url.Values
			wantCode  int
			wantError string // in the redirect to the callback
		}{
			{"unknown client", url.Values{"client_id": {"nobody"}, "redirect_uri": {callback}, "response_type": {"code"}}, http.StatusUnauthorized, ""},
			{"foreign redirect URI", url.Values{"client_id": {"app-1"}, "redirect_uri": {"https://evil.example.com/cb"}, "response_type": {"code"}}, http.StatusBadRequest, ""},
			{"redirect URI below the registered one", url.Values{"client_id": {"app-1"}, "redirect_uri": {callback + "/x"}, "response_type": {"code"}}, http.StatusBadRequest, ""},
			{"no response type", url.Values{"client_id": {"app-1"}, "redirect_uri": {callback}}, http.StatusFound, "unsupported_response_type"},
			{"unknown scope", url.Values{"client_id": {"app-1"}, "redirect_uri": {callback}, "response_type": {"code"}, "scope": {"sudo"}}, http.StatusFound, "invalid_scope"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				resp, err := noRedirects.Get(base + tc.query.Encode())
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != tc.wantCode {
					t.Fatalf("status %d, want %d", resp.StatusCode, tc.wantCode)
				}
				if tc.wantError != "" {
					loc, _ := resp.Location()
					if loc == nil || !strings.HasPrefix(loc.String(), callback+"?") || loc.Query().Get("error") != tc.wantError {
						t.Errorf("sent to %v, want the callback with error %s", loc, tc.wantError)
					}
				}
			})
		}
	})
	t.Run("GET /api/v4/user", func(t *testing.T) {
		get := func(header, value string) (int, map[string]any) {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v4/user", nil)
			if header != "" {
				req.Header.Set(header, value)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var m map[string]any
			json.NewDecoder(resp.Body).Decode(&m)
			return resp.StatusCode, m
		}
		if code, m := get("PRIVATE-TOKEN", "bot-token"); code != http.StatusOK || m["username"] != sim.BotUsername {
			t.Errorf("with the bot's token: %d %v", code, m)
		}
		if code, _ := get("Authorization", "Bearer gloas-made-up"); code != http.StatusUnauthorized {
			t.Errorf("with an unknown token: %d, want 401", code)
		}
		if code, _ := get("", ""); code != http.StatusUnauthorized {
			t.Errorf("without a token: %d, want 401", code)
		}
	})
}
