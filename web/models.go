package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/mlbot/mlbot/jobs/registry"
)

// ModelsResponse is the body of GET /api/v1/models.
type ModelsResponse struct {
	Repo string `json:"repo"`
	// Versions are newest first; only the one asked for with ?version=N.
	Versions []registry.Version `json:"versions"`
	// Deployments maps each environment that has a succeeded deploy to
	// the newest one: what runs there now.
	Deployments map[string]registry.Deploy `json:"deployments"`
}

// ErrorResponse is the body of every error answer of Models.
type ErrorResponse struct {
	Error string `json:"error"`
}

// Models serves GET /api/v1/models?repo=<repo>[&version=N], whatever path
// it is mounted at. repo is a repo key ("github:acme/model") or an
// "owner/name" looked up on every forge. It answers 400 without repo, for a
// bad version or an ambiguous name, 404 for an unknown repository or
// version, and 503 when Redis fails, each with an ErrorResponse.
func (s *Server) Models() http.Handler {
	return http.HandlerFunc(s.serveModels)
}

func (s *Server) serveModels(w http.ResponseWriter, req *http.Request) {
	r := s.opts.Models
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, ErrorResponse{"method not allowed"})
		return
	}
	ctx := req.Context()
	q := req.URL.Query()
	name := q.Get("repo")
	if name == "" {
		writeJSON(w, http.StatusBadRequest, ErrorResponse{`missing query parameter "repo" (owner/name or forge:owner/name)`})
		return
	}
	number := 0
	if s := q.Get("version"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			writeJSON(w, http.StatusBadRequest, ErrorResponse{"version must be a positive number, not " + strconv.Quote(s)})
			return
		}
		number = n
	}
	repo, err := r.Resolve(ctx, name)
	if err != nil {
		writeModelsErr(w, err)
		return
	}
	resp := ModelsResponse{Repo: repo, Versions: []registry.Version{}, Deployments: map[string]registry.Deploy{}}
	if number > 0 {
		v, err := r.Get(ctx, repo, number)
		if err != nil {
			writeModelsErr(w, err)
			return
		}
		resp.Versions = append(resp.Versions, *v)
	} else if resp.Versions, err = r.List(ctx, repo); err != nil {
		writeModelsErr(w, err)
		return
	}
	envs, err := r.Environments(ctx, repo)
	if err != nil {
		writeModelsErr(w, err)
		return
	}
	for _, env := range envs {
		d, err := r.Current(ctx, repo, env)
		if err != nil {
			writeModelsErr(w, err)
			return
		}
		if d != nil {
			resp.Deployments[env] = *d
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

// writeModelsErr answers err with the status its kind deserves. Anything but a
// lookup miss comes from Redis, and the client may retry.
func writeModelsErr(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, registry.ErrNotFound):
		writeJSON(w, http.StatusNotFound, ErrorResponse{err.Error()})
	case errors.Is(err, registry.ErrAmbiguous):
		writeJSON(w, http.StatusBadRequest, ErrorResponse{err.Error()})
	default:
		// The Redis error may name internal addresses; keep it out of a
		// public answer.
		writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{"registry unavailable, try again"})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
