package web

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// RequireBearer lets a request through to next only with the header
// "Authorization: Bearer <token>"; anything else gets 401 with a
// WWW-Authenticate challenge (RFC 6750) naming setting, the variable that
// holds the token. An empty token requires nothing: next is returned.
// mlbot serve guards GET /metrics with it (MLBOT_METRICS_TOKEN).
func RequireBearer(token, setting string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	return requireBearerNamed(token, setting, next)
}

// requireBearer guards /api/v1 with MLBOT_API_TOKEN, as RequireBearer.
func requireBearer(token string, next http.Handler) http.Handler {
	return requireBearerNamed(token, "MLBOT_API_TOKEN", next)
}

// requireBearerNamed does what RequireBearer says, for a token that is
// set. Both sides are hashed before the constant-time comparison, so that
// neither the token's bytes nor its length shows in the time taken.
func requireBearerNamed(token, setting string, next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
		if !ok || !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mlbot"`)
			http.Error(w, "a valid bearer token ("+setting+") is required", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
