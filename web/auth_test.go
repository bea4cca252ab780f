package web

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestRequireBearer sends what a caller without the token would try: no
// header, another scheme, a wrong token, the token's prefix, the token with
// something appended, the bare token.
func TestRequireBearer(t *testing.T) {
	const token = "s3cret-token-0123456789"
	h := requireBearer(token, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("inside"))
	}))
	tests := []struct {
		name string
		auth string
		want int
	}{
		{"no header", "", http.StatusUnauthorized},
		{"basic scheme", "Basic " + token, http.StatusUnauthorized},
		{"wrong token", "Bearer nope", http.StatusUnauthorized},
		{"prefix of the token", "Bearer " + token[:10], http.StatusUnauthorized},
		{"token with a suffix", "Bearer " + token + "x", http.StatusUnauthorized},
		{"bare token", token, http.StatusUnauthorized},
		{"empty bearer", "Bearer ", http.StatusUnauthorized},
		{"bearer token", "Bearer " + token, http.StatusOK},
		{"scheme in any case", "bearer " + token, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/api/v1/models", nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d", rec.Code, tc.want)
			}
			if tc.want == http.StatusUnauthorized {
				if got := rec.Header().Get("WWW-Authenticate"); got != `Bearer realm="mlbot"` {
					t.Errorf("WWW-Authenticate = %q", got)
				}
				if rec.Body.String() == "inside" {
					t.Errorf("the handler behind the check ran")
				}
			}
		})
	}
}
